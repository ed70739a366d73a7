"""Model backends behind one call: ``backend(images[B, 3, H, W]) -> preds[B, N, 5 + C]``.

Inputs are letterboxed BGR 0-255 float32 (numpy, or a CUDA array on the GPU path); outputs are the
official decoded form: (cx, cy, w, h) in input pixels, sigmoid objectness and class scores.
On CPU the default is onnxruntime on an export of the loaded (fused) model.
"""

from __future__ import annotations

import abc
import queue
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from streamyolox.inference.export_cache import (
    export_cached,
    onnx_cache_path,
    throwaway_export,
    weights_digest,
)
from streamyolox.model.spec import ModelSpec


class Backend(Protocol):
    name: str
    input_size: tuple[int, int]
    class_names: tuple[str, ...]

    def __call__(self, images: Any, to_host: bool = True) -> Any: ...


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


class ExportBackend(abc.ABC):
    """A CPU runtime on an ONNX file in the official export form (raw reg, sigmoid obj/cls): subclasses run
    the graph (`_run`), the official decode here turns its output into the form every backend returns."""

    name = "export"

    def __init__(self, onnx_path: Path, input_size: tuple[int, int], class_names: tuple[str, ...],
                 concurrency: int = 1) -> None:
        from streamyolox.ops import decode_ref

        self._decode = decode_ref
        self.input_size = input_size
        self.class_names = class_names
        self.onnx_path = onnx_path
        self.concurrency = max(1, int(concurrency))
        # the free call slots: with `concurrency` N, N callers on their own threads run at once, each slot
        # used by one call at a time (an OpenVINO infer request is not thread-safe; a session is)
        self._slots: queue.SimpleQueue[int] = queue.SimpleQueue()
        for slot in range(self.concurrency):
            self._slots.put(slot)

    @abc.abstractmethod
    def _run(self, x: np.ndarray, slot: int = 0) -> np.ndarray:
        """The export's raw output [B, N, 5 + C] for a float32 batch [B, 3, H, W]; `slot` < `concurrency`
        names the call slot that runs it (no two calls at once use one slot)."""

    def __call__(self, images: Any, to_host: bool = True) -> np.ndarray:
        """Thread-safe: up to `concurrency` calls run at once (the runtimes release the GIL), more wait."""
        x = np.ascontiguousarray(images, dtype=np.float32)
        slot = self._slots.get()
        try:
            raw = self._run(x, slot)
        finally:
            self._slots.put(slot)
        return self._decode(raw, self.input_size)


class OrtBackend(ExportBackend):
    """onnxruntime on an ONNX file in the official export form."""

    name = "onnxruntime"

    def __init__(self, onnx_path: Path, input_size: tuple[int, int], class_names: tuple[str, ...],
                 threads: int | None = None, spin: bool = True, concurrency: int = 1) -> None:
        import onnxruntime as ort

        super().__init__(onnx_path, input_size, class_names, concurrency)
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

    def _run(self, x: np.ndarray, slot: int = 0) -> np.ndarray:
        # one session serves every concurrent call: InferenceSession.run is thread-safe
        if self._fixed_batch == 1 and len(x) > 1:  # official exports have a fixed batch of 1
            return np.concatenate([self.session.run(None, {self._input_name: x[i : i + 1]})[0] for i in range(len(x))])
        return self.session.run(None, {self._input_name: x})[0]


@dataclass
class CpuModel:
    """An ONNX export ready for a CPU runtime. `digest`: sha256 of the weights file (None for a model without
    one, whose export is `temporary`: deleted once a session holds the graph)."""

    onnx_path: Path
    input_size: tuple[int, int]
    class_names: tuple[str, ...]
    digest: str | None
    temporary: bool = False


def _cached_export(spec: ModelSpec) -> CpuModel | None:
    """An earlier export of `spec.weights`, found without importing torch: an inference process then holds
    onnxruntime or OpenVINO alone (torch cost each yolox replica ~250 MB RSS and seconds of start-up)."""
    from streamyolox.inference.metadata import class_names_for, default_input_size

    weights = Path(spec.weights) if spec.weights else None
    if weights is None or not weights.is_file():
        return None
    size = tuple(spec.input_size) if spec.input_size else default_input_size(weights, spec.name)
    digest = weights_digest(weights)
    path = onnx_cache_path(weights, spec.name, size, digest)  # type: ignore[arg-type]
    if not path.exists():
        return None
    return CpuModel(path, size, class_names_for(spec), digest)  # type: ignore[arg-type]


def _cpu_model(spec: ModelSpec) -> CpuModel:
    """The export of `spec.weights` (cached, keyed by the file's content), made now if there is none."""
    cached = _cached_export(spec)
    if cached is not None:
        return cached
    from streamyolox.weights import load_model

    loaded = load_model(spec.weights, name=spec.name, device="cpu")
    size = tuple(spec.input_size) if spec.input_size else tuple(loaded.input_size)
    names = tuple(loaded.class_names)
    source = Path(loaded.source_path) if loaded.source_path else None
    if source is not None and source.is_file():
        digest = weights_digest(source)
        path = export_cached(loaded.model, onnx_cache_path(source, spec.name, size, digest), size)  # type: ignore[arg-type]
        return CpuModel(path, size, names, digest)  # type: ignore[arg-type]
    # no weights file (random init): a throw-away export, removed once the session holds the graph
    path = throwaway_export(loaded.model, loaded.name, size)  # type: ignore[arg-type]
    return CpuModel(path, size, names, None, temporary=True)  # type: ignore[arg-type]


def _cpu_backend(name: str, model: CpuModel, threads: int | None, spin: bool, concurrency: int = 1) -> Backend:
    if name == "openvino":
        from streamyolox.inference.openvino_backend import OpenVinoBackend

        return OpenVinoBackend(model.onnx_path, model.input_size, model.class_names, threads, concurrency)
    return OrtBackend(model.onnx_path, model.input_size, model.class_names, threads, spin, concurrency)


def _auto_cpu(spec: ModelSpec, model: CpuModel, threads: int | None, spin: bool, batch: int,
              concurrency: int) -> Backend:
    """`auto` on the CPU: OpenVINO where it is installed and measured faster here, else onnxruntime."""
    from streamyolox.inference import auto_backend
    from streamyolox.inference.openvino_backend import openvino_available

    if model.digest is None or not openvino_available():
        # nothing to choose from, or no stable key to store the choice under (a model without weights)
        return _cpu_backend("onnxruntime", model, threads, spin, concurrency)
    built: dict[str, Backend] = {}

    def build(name: str) -> Backend:
        built[name] = _cpu_backend(name, model, threads, spin, concurrency)
        return built[name]

    key = auto_backend.ChoiceKey.here(model.digest, spec.name, model.input_size, batch, threads, spin, concurrency)
    choice = auto_backend.choose(key, build)
    return built.get(choice) or _cpu_backend(choice, model, threads, spin, concurrency)


def _backend_name(spec: ModelSpec) -> str:
    """`spec.backend` checked against the device; `auto` stays `auto` on the CPU (measured later)."""
    backend = spec.backend
    if backend not in ("auto", "torch", "onnxruntime", "openvino"):
        raise ValueError(f"model.backend: expected auto, torch, onnxruntime or openvino, got {backend!r}")
    cuda = spec.device.startswith("cuda")
    if backend == "auto":
        return "torch" if cuda else "auto"
    if backend in ("onnxruntime", "openvino") and cuda:
        raise ValueError(f"model.backend: {backend} runs on the CPU here; use backend 'torch' for device cuda")
    if backend == "openvino":
        from streamyolox.inference.openvino_backend import require_openvino

        require_openvino()  # the one-line install hint before any export or model load
    return backend


def make_backend(spec: ModelSpec, threads: int | None = None, spin: bool = True, batch: int = 1,
                 concurrency: int = 1) -> Backend:
    """Load `spec.weights` and wrap it in the backend `spec.backend` names.

    `auto`: torch on CUDA; on the CPU the faster of onnxruntime and OpenVINO at `batch` and `threads`
    (measured once per machine and model, see `auto_backend`), onnxruntime when OpenVINO is not installed.
    `concurrency` (onnxruntime, OpenVINO): that many calls may run at once, each on `threads` threads.
    onnxruntime and OpenVINO run one export of the loaded (BN-fused) model, made once and cached.
    """
    backend = _backend_name(spec)
    if backend == "torch" and concurrency > 1:
        raise ValueError(f"concurrency: {concurrency} needs a CPU export backend (onnxruntime or openvino), not torch")
    if backend == "torch":
        from streamyolox.weights import load_model

        loaded = load_model(spec.weights, name=spec.name, device=spec.device)
        size = tuple(spec.input_size) if spec.input_size else tuple(loaded.input_size)
        if threads:
            import torch

            torch.set_num_threads(threads)
        return TorchBackend(loaded.model, size, tuple(loaded.class_names), device=spec.device,  # type: ignore[arg-type]
                            precision=spec.precision)
    model = _cpu_model(spec)
    try:
        if backend == "auto":
            return _auto_cpu(spec, model, threads, spin, batch, concurrency)
        return _cpu_backend(backend, model, threads, spin, concurrency)
    finally:
        if model.temporary:
            model.onnx_path.unlink(missing_ok=True)
