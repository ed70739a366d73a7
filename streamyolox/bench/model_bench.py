"""`streamyolox bench model`: each backend x batch size x input size, with onnxruntime's bare model as baseline.

Backends (CPU unless named):
- `ort-bare`: the baseline, onnxruntime on the shared official ONNX export (batch 1, its fixed size), the
  same thread count as the rest.
- `torch-fp32`: PyTorch eager, NCHW, BN unfused (what a plain `model(x)` does).
- `torch-cl-fused`: PyTorch with BN folded into the convs and channels_last tensors.
- `onnxruntime`: onnxruntime on our own export of the loaded model (dynamic batch), one file per input size.
- `onnxruntime-nospin`: the same with `session.intra_op.allow_spinning=0`: idle threads sleep instead of
  spinning, which leaves the cores to the other stages of a pipeline (slower alone, faster under contention).
- `openvino`: OpenVINO's CPU plugin on the same export, with the settings of the pipeline's backend (fp32,
  LATENCY hint, `threads` inference threads, no core pinning); skipped when openvino is not installed.
- `torch-cuda-fp16`: PyTorch fp16 on CUDA, fused, when a GPU exists (skipped otherwise).

Inputs are deterministic pseudo-random 0..255 images: a convolution's cost does not depend on pixel values.
Every backend returns the same thing, the undecoded head output [B, N, 5 + C] as a numpy array.
"""

from __future__ import annotations

import copy
import functools
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from streamyolox.bench.harness import Result, measure

SUITE = "model"
BACKENDS = ("torch-fp32", "torch-cl-fused", "onnxruntime", "onnxruntime-nospin", "openvino", "torch-cuda-fp16")
BASELINE = "ort-bare"

Forward = Callable[[np.ndarray], Any]


@dataclass
class ModelBenchConfig:
    """What `bench model` runs. `weights`: a .pth path or zoo name; `bare_onnx`: the baseline's ONNX file."""

    model: str = "yolox-nano"
    weights: str | None = None
    bare_onnx: Path | None = None
    backends: Sequence[str] = BACKENDS
    batches: Sequence[int] = (1, 4, 8)
    sizes: Sequence[int] = (320, 416, 640)
    threads: int = 2
    repeats: int = 20
    warmup: int = 3
    onnx_dir: Path | None = None  # keep our exports here and reuse them (None: a temporary folder)


def make_input(batch: int, size: int, seed: int = 0) -> np.ndarray:
    """float32 [batch, 3, size, size] in 0..255, the letterboxed-BGR form every backend takes."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(batch, 3, size, size)).astype(np.float32)


def ort_session(path: Path, threads: int, spinning: bool = True) -> Any:
    """onnxruntime CPU session with `threads` intra-op threads (sequential execution, full graph opts);
    `spinning=False` lets idle pool threads sleep (`session.intra_op.allow_spinning=0`)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def ort_forward(session: Any) -> Forward:
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x})[0]


def bench_ort_bare(onnx_path: Path, threads: int, repeats: int, warmup: int) -> Result:
    """The baseline: the bare exported model at batch 1 under onnxruntime (no pre/post-processing)."""
    session = ort_session(onnx_path, threads)
    shape = session.get_inputs()[0].shape
    size = int(shape[2]) if isinstance(shape[2], int) else 416
    forward, x = ort_forward(session), make_input(1, size)
    timing = measure(lambda: forward(x), repeats=repeats, warmup=warmup, items=1)
    return Result.from_timing(SUITE, f"{BASELINE} b1 {size}", timing,
                              params={"backend": BASELINE, "batch": 1, "input_size": size,
                                      "threads": threads, "onnx": str(onnx_path)})


def openvino_forward(path: Path, threads: int) -> Forward:
    """OpenVINO on the CPU with the pipeline backend's compile settings; returns the raw head output."""
    import openvino as ov

    from streamyolox.inference.openvino_backend import compile_config

    core = ov.Core()
    request = core.compile_model(core.read_model(str(path)), "CPU", compile_config(threads)).create_infer_request()
    return lambda x: request.infer({0: x}, share_inputs=True)[0]


def _torch_forward(model: Any, device: str = "cpu", fp16: bool = False, channels_last: bool = False) -> Forward:
    import torch

    dtype = torch.float16 if fp16 else torch.float32
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(device=device, dtype=dtype, memory_format=fmt).eval()

    def forward(x: np.ndarray) -> Any:
        with torch.inference_mode():
            t = torch.from_numpy(x).to(device=device, dtype=dtype).contiguous(memory_format=fmt)
            out = model(t, decode=False)  # the bare model, like the ONNX export (decoding is an op)
            return out.float().cpu().numpy()  # to host: what a pipeline stage has to do

    return forward


class BackendFactory:
    """Builds each backend's forward for one input size from one loaded model (copied per backend)."""

    def __init__(self, cfg: ModelBenchConfig, tmp: Path) -> None:
        from streamyolox.weights import load_model

        self.cfg = cfg
        self.tmp = tmp
        self.loaded = load_model(cfg.weights, name=cfg.model, device="cpu", fuse=False)

    def _export(self, model: Any, size: int) -> Path:
        """Our dynamic-batch export at `size`, shared by the onnxruntime and OpenVINO cases."""
        from streamyolox.weights import export_onnx

        path = self.tmp / f"{self.cfg.model}-{Path(str(self.cfg.weights)).stem}-{size}-dynamic.onnx"
        if not path.exists():
            export_onnx(model.fuse(), path, input_size=(size, size), dynamic_batch=True, decode=False)
        return path

    def forward(self, backend: str, size: int) -> Forward:
        model = copy.deepcopy(self.loaded.model).eval()
        if backend == "torch-fp32":
            return _torch_forward(model)
        if backend == "torch-cl-fused":
            return _torch_forward(model.fuse(), channels_last=True)
        if backend == "torch-cuda-fp16":
            return _torch_forward(model.fuse(), device="cuda", fp16=True)
        if backend in ("onnxruntime", "onnxruntime-nospin"):
            path = self._export(model, size)
            return ort_forward(ort_session(path, self.cfg.threads, spinning=backend == "onnxruntime"))
        if backend == "openvino":
            return openvino_forward(self._export(model, size), self.cfg.threads)
        raise ValueError(f"bench model: unknown backend {backend!r} (expected one of {', '.join(BACKENDS)})")


def _skip_reason(backend: str) -> str | None:
    if backend == "torch-cuda-fp16":
        import torch

        if not torch.cuda.is_available():
            return "no CUDA GPU"
    if backend == "openvino":
        from streamyolox.inference.openvino_backend import INSTALL_HINT, openvino_available

        if not openvino_available():
            return f"openvino not installed: {INSTALL_HINT}"
    return None


def run_model_bench(cfg: ModelBenchConfig, log: Callable[[str], None] = lambda s: None) -> list[Result]:
    """Baseline first, then every backend x size x batch; rows compare with the baseline (`ratio`)."""
    import torch

    torch.set_num_threads(cfg.threads)
    results: list[Result] = []
    base_name = None
    if cfg.bare_onnx is not None:
        log(f"model: {BASELINE} on {cfg.bare_onnx}")
        base = bench_ort_bare(cfg.bare_onnx, cfg.threads, cfg.repeats, cfg.warmup)
        results.append(base)
        base_name = base.name
    with tempfile.TemporaryDirectory(prefix="streamyolox-bench-") as tmp:
        backends = BackendFactory(cfg, cfg.onnx_dir or Path(tmp))
        for backend in cfg.backends:
            reason = _skip_reason(backend)
            for size in cfg.sizes:
                forward = None if reason else backends.forward(backend, size)
                for batch in cfg.batches:
                    name = f"{backend} b{batch} {size}"
                    params = {"backend": backend, "batch": batch, "input_size": size, "threads": cfg.threads}
                    if forward is None:
                        results.append(Result(SUITE, name, params=params, skipped=reason))
                        continue
                    log(f"model: {name}")
                    x = make_input(batch, size)
                    timing = measure(functools.partial(forward, x), repeats=cfg.repeats, warmup=cfg.warmup,
                                     items=batch)
                    results.append(Result.from_timing(SUITE, name, timing, params=params, ref=base_name))
    return results
