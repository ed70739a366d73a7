"""OpenVINO on the CPU, on the same cached ONNX export that onnxruntime runs (raw reg, sigmoid obj/cls).

Settings (measured on the 2-core AMD EPYC where a number is given):
- `INFERENCE_PRECISION_HINT=f32`: on a CPU with AVX512-BF16 or AMX OpenVINO's default is bf16, which moved
  nano's scores by up to 0.09 and its boxes by 0.5 px against onnxruntime; fp32 agrees to 3e-5 on scores.
- `PERFORMANCE_HINT=LATENCY`: one OpenVINO stream, one request at a time, as a pipeline stage calls it; with
  `concurrency` N > 1, THROUGHPUT with N OpenVINO streams and an infer request each.
- `INFERENCE_NUM_THREADS`: the stage's thread count.
- `ENABLE_CPU_PINNING=False`: a pinned thread cannot move off a core that the decode stage is using. On the
  shared 2-core machine on/off differed less than run-to-run noise against a competing 1-core process, so
  this follows the reasoning, not a number: a pipeline stage does not own its cores.
- No spinning to switch off: after a call its TBB workers kept ~5% of a core busy during a 20 ms gap
  (onnxruntime with spinning on: 86%), so OpenVINO needs nothing like the stage's `spin: false`.
The export has a dynamic batch dimension: one compiled model serves every batch size the stage forms.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from pathlib import Path
from typing import Any

import numpy as np

from streamyolox.inference.backends import ExportBackend

INSTALL_HINT = "pip install 'streamyolox[cpu-fast]' (or: pip install openvino)"


def openvino_available() -> bool:
    """OpenVINO is installed: found, not imported (the import took 0.17 s of the yolox stage's open, also
    where `auto` then reads an earlier choice of onnxruntime). A broken install fails where it is used."""
    return importlib.util.find_spec("openvino") is not None


def require_openvino() -> Any:
    """The `openvino` module, or a one-line error saying what to install."""
    try:
        import openvino
    except ImportError:
        raise ValueError(f"model.backend: openvino is not installed; {INSTALL_HINT}") from None
    return openvino


def openvino_version() -> str | None:
    """The installed distribution's version, read from its metadata (no import: see openvino_available)."""
    try:
        return importlib.metadata.version("openvino")
    except importlib.metadata.PackageNotFoundError:
        return None


def compile_config(threads: int | None, concurrency: int = 1) -> dict[str, Any]:
    """The CPU plugin properties this backend compiles with (see the module docstring for why)."""
    config: dict[str, Any] = {
        "PERFORMANCE_HINT": "LATENCY" if concurrency == 1 else "THROUGHPUT",
        "INFERENCE_PRECISION_HINT": "f32",
        "ENABLE_CPU_PINNING": False,
    }
    if concurrency > 1:
        config["NUM_STREAMS"] = int(concurrency)
    if threads:
        config["INFERENCE_NUM_THREADS"] = int(threads) * concurrency  # OpenVINO's count is for all its streams
    return config


class OpenVinoBackend(ExportBackend):
    """OpenVINO CPU inference; outputs decoded like `OrtBackend`'s: (cx, cy, w, h) in input pixels."""

    name = "openvino"

    def __init__(self, onnx_path: Path, input_size: tuple[int, int], class_names: tuple[str, ...],
                 threads: int | None = None, concurrency: int = 1) -> None:
        ov = require_openvino()

        super().__init__(onnx_path, input_size, class_names, concurrency)
        core = ov.Core()
        self.compiled = core.compile_model(core.read_model(str(onnx_path)), "CPU",
                                           compile_config(threads, self.concurrency))
        # an infer request is not thread-safe: one per concurrent call, over the one compiled model
        self._requests = [self.compiled.create_infer_request() for _ in range(self.concurrency)]

    def _run(self, x: np.ndarray, slot: int = 0) -> np.ndarray:
        # share_inputs: OpenVINO reads the caller's array in place (no copy of the batch); outputs are
        # copied out (the default), so a later call cannot overwrite what a packet still holds
        return self._requests[slot].infer({0: x}, share_inputs=True)[0]
