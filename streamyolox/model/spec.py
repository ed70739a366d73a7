"""`ModelSpec`: which YOLOX to run and how; shared by `detect`, the pipeline's `model:` block and the trainer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass
class ModelSpec:
    """The `model:` block of a pipeline.

    Attributes:
        name: a zoo name (`yolox-nano` ... `yolox-x`, `yolox-darknet53`); a project checkpoint may override it.
        weights: a path (.pth official or project checkpoint, .onnx) or a zoo name resolved through
            `STREAMYOLOX_WEIGHTS_DIR`, the cache, or a download.
        device: `cpu`, `cuda` or `cuda:N`.
        input_size: model input (height, width); the letterbox target (None: the checkpoint's or zoo default).
        precision: `fp32`, `tf32` (CUDA: TensorFloat-32 convolutions) or `fp16` (CUDA only).
        backend: `auto`, `torch`, `onnxruntime` or `openvino` (`auto`: torch on CUDA; on the CPU the faster of
            onnxruntime and OpenVINO, measured once on this machine).
    """

    name: str = "yolox-nano"
    weights: str | None = None
    device: str = "cpu"
    input_size: tuple[int, int] | None = None
    precision: Literal["fp32", "tf32", "fp16"] = "fp32"
    backend: Literal["auto", "torch", "onnxruntime", "openvino"] = "auto"
