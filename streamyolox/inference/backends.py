"""Model backends behind one call: ``backend(images[B, 3, H, W]) -> preds[B, N, 5 + C]``.

Inputs are letterboxed BGR 0-255 float32 (numpy, or a CUDA array on the GPU path); outputs are the
official decoded form: (cx, cy, w, h) in input pixels, sigmoid objectness and class scores.
On CPU the default is onnxruntime on an export of the loaded (fused) model.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from streamyolox.model.spec import ModelSpec


class Backend(Protocol):
    name: str
    input_size: tuple[int, int]
    class_names: tuple[str, ...]

    def __call__(self, images: Any, to_host: bool = True) -> Any: ...


def _cache_dir() -> Path:
    base = os.environ.get("STREAMYOLOX_CACHE") or Path.home() / ".cache" / "streamyolox"
    path = Path(base) / "onnx"
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass
class TorchBackend:
    """PyTorch eager: fused BN, channels_last on CPU, fp16 on CUDA when asked."""

    model: Any
    input_size: tuple[int, int]
    class_names: tuple[str, ...]
    device: str = "cpu"
    precision: str = "fp32"
    name: str = "torch"

    def __post_init__(self) -> None:
        import torch

        self._torch = torch
        if self.precision not in ("fp32", "tf32", "fp16"):
            raise ValueError(f"model.precision: expected fp32, tf32 or fp16, got {self.precision!r}")
        self._dtype = torch.float16 if self.precision == "fp16" and self.device.startswith("cuda") else torch.float32
        if self.device.startswith("cuda"):
            # cuDNN runs fp32 convolutions in TF32 by default on Ampere and later: on the H200 that moved nano's
            # boxes by ~1 px and scores by ~0.01 against the CPU. fp32 means fp32; tf32 is opt-in.
            tf32 = self.precision == "tf32"
            torch.backends.cudnn.allow_tf32 = tf32
            torch.backends.cuda.matmul.allow_tf32 = tf32
        self.model = self.model.to(self.device, dtype=self._dtype).eval()
        if self.device == "cpu":
            self.model = self.model.to(memory_format=torch.channels_last)

    def __call__(self, images: Any, to_host: bool = True) -> Any:
        """to_host=False keeps a CUDA result on the device (for the GPU postprocess)."""
        torch = self._torch
        x = torch.as_tensor(images, device=self.device).to(self._dtype)
        if self.device == "cpu":
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            out = self.model(x)
        out = out.float()
        return out.cpu().numpy() if to_host or out.device.type == "cpu" else out


class OrtBackend:
    """onnxruntime on an ONNX file in the official export form (raw reg, sigmoid obj/cls)."""

    name = "onnxruntime"

    def __init__(self, onnx_path: Path, input_size: tuple[int, int], class_names: tuple[str, ...],
                 threads: int | None = None, spin: bool = True) -> None:
        import onnxruntime as ort

        from streamyolox.ops import decode_ref

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if not spin:
            # idle intra-op threads sleep instead of spinning: in a pipeline they share the cores with decode
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        inp = self.session.get_inputs()[0]
        self._input_name = inp.name
        self._fixed_batch = inp.shape[0] if isinstance(inp.shape[0], int) else None
        self._decode = decode_ref
        self.input_size = input_size
        self.class_names = class_names
        self.onnx_path = onnx_path

    def __call__(self, images: Any, to_host: bool = True) -> np.ndarray:
        x = np.ascontiguousarray(images, dtype=np.float32)
        if self._fixed_batch == 1 and len(x) > 1:  # official exports have a fixed batch of 1
            raw = np.concatenate([self.session.run(None, {self._input_name: x[i : i + 1]})[0] for i in range(len(x))])
        else:
            raw = self.session.run(None, {self._input_name: x})[0]
        return self._decode(raw, self.input_size)


def _onnx_cache_path(weights: Path, name: str, size: tuple[int, int]) -> Path:
    """Where the export of (weights file, model name, input size) lives; a changed file gets a new one."""
    weights = weights.resolve()
    stamp = f"{weights}:{weights.stat().st_mtime_ns}:{name}:{size[0]}x{size[1]}"
    return _cache_dir() / f"{weights.stem}-{hashlib.sha1(stamp.encode()).hexdigest()[:16]}.onnx"


def _export(model: Any, path: Path, size: tuple[int, int]) -> Path:
    from streamyolox.weights import export_onnx

    tmp = path.with_suffix(f".{os.getpid()}.tmp")  # replicas may export at once: the last rename wins
    export_onnx(model, tmp, input_size=size, dynamic_batch=True, decode=False)
    tmp.replace(path)
    return path


def _cached_ort(spec: ModelSpec, threads: int | None, spin: bool) -> OrtBackend | None:
    """onnxruntime straight from an earlier export of `spec.weights`, without importing torch: an inference
    process then holds onnxruntime alone (torch cost each yolox replica ~250 MB RSS and seconds of start-up)."""
    from streamyolox.inference.metadata import class_names_for, default_input_size

    weights = Path(spec.weights) if spec.weights else None
    if weights is None or not weights.is_file():
        return None
    size = tuple(spec.input_size) if spec.input_size else default_input_size(weights, spec.name)
    path = _onnx_cache_path(weights, spec.name, size)  # type: ignore[arg-type]
    if not path.exists():
        return None
    return OrtBackend(path, size, class_names_for(spec), threads, spin)  # type: ignore[arg-type]


def make_backend(spec: ModelSpec, threads: int | None = None, spin: bool = True) -> Backend:
    """Load `spec.weights` and wrap it in the backend `spec.backend` names (`auto`: onnxruntime on CPU,
    torch on CUDA). onnxruntime runs an export of the loaded (BN-fused) model, made once and cached."""
    backend = spec.backend
    if backend == "auto":
        backend = "torch" if spec.device.startswith("cuda") else "onnxruntime"
    if backend not in ("torch", "onnxruntime"):
        raise ValueError(f"model.backend: expected auto, torch or onnxruntime, got {backend!r}")
    if backend == "onnxruntime" and spec.device.startswith("cuda"):
        raise ValueError("model.backend: onnxruntime runs on the CPU here; use backend 'torch' for device cuda")
    if backend == "onnxruntime":
        cached = _cached_ort(spec, threads, spin)
        if cached is not None:
            return cached
    from streamyolox.weights import load_model

    loaded = load_model(spec.weights, name=spec.name, device="cpu" if backend == "onnxruntime" else spec.device)
    size = tuple(spec.input_size) if spec.input_size else tuple(loaded.input_size)
    names = tuple(loaded.class_names)
    if threads:
        import torch

        torch.set_num_threads(threads)
    if backend == "torch":
        return TorchBackend(loaded.model, size, names, device=spec.device, precision=spec.precision)  # type: ignore[arg-type]
    source = Path(loaded.source_path) if loaded.source_path else None
    if source is not None and source.is_file():
        path = _onnx_cache_path(source, spec.name, size)  # type: ignore[arg-type]
        if not path.exists():
            _export(loaded.model, path, size)  # type: ignore[arg-type]
        return OrtBackend(path, size, names, threads, spin)  # type: ignore[arg-type]
    # no weights file (random init): a throw-away export, removed once the session holds the graph
    path = _export(loaded.model, _cache_dir() / f"{loaded.name}-{os.getpid()}.onnx", size)  # type: ignore[arg-type]
    try:
        return OrtBackend(path, size, names, threads, spin)  # type: ignore[arg-type]
    finally:
        path.unlink(missing_ok=True)
