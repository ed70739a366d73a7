"""Export a YOLOX model to ONNX in the official export form (input `images`, output `output`)."""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

from streamyolox.model import YOLOX


class _ExportWrapper(nn.Module):
    def __init__(self, model: YOLOX, decode: bool) -> None:
        super().__init__()
        self.model = model
        self.decode = decode

    def forward(self, images: Tensor) -> Tensor:
        return self.model(images, decode=self.decode)


def export_onnx(
    model: YOLOX,
    path: str | Path,
    input_size: tuple[int, int] = (416, 416),
    opset: int = 13,
    dynamic_batch: bool = True,
    decode: bool = False,
) -> Path:
    """Write `model` as ONNX: input `images` [B, 3, H, W] float32 (BGR 0-255), output `output` [B, N, 5+C].

    decode=False gives the official export form (raw reg, sigmoid obj/cls); decode=True gives boxes in input
    pixels. The model is exported from a fused eval-mode copy on the CPU; the caller's model is not changed.
    """
    h, w = input_size
    if h % 32 or w % 32:
        raise ValueError(f"export_onnx: input size {h}x{w} must be multiples of 32")
    export_model = copy.deepcopy(model).float().cpu().eval().fuse()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    dynamic_axes = {"images": {0: "batch"}, "output": {0: "batch"}} if dynamic_batch else None
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter(
            "ignore"
        )  # the TorchScript exporter's deprecation notice is not the user's concern
        torch.onnx.export(
            _ExportWrapper(export_model, decode),
            (torch.zeros(1, 3, h, w),),
            str(path),
            input_names=["images"],
            output_names=["output"],
            opset_version=opset,
            dynamic_axes=dynamic_axes,
            do_constant_folding=True,
            dynamo=False,
        )
    return path
