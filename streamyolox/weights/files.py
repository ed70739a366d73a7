"""The torch-free part of the weights package: the error type, temp-file names and what a state_dict's
key names and shapes say about its architecture.

Kept apart from `checkpoint` (which needs torch) so that the pre-start checks and the weights hub can run
in a process that never imports torch: torch costs about 1.5 s and 150 MB per process on the CI machine.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DARKNET_KEY = "backbone.backbone.stem.0.conv.weight"
FOCUS_KEY = "backbone.backbone.stem.conv.conv.weight"
CLS_KEY = "head.cls_preds.0.weight"


class WeightsError(ValueError):
    """A weights file that cannot be used as asked; the message is one line naming the file and the problem."""


def partial_path(path: Path) -> Path:
    """Hidden per-process temp name beside `path`: written first, renamed over `path` once complete."""
    return path.with_name(f".{path.name}.{os.getpid()}.part")


@dataclass(frozen=True)
class ArchInfo:
    """What a state_dict says about the architecture it came from."""

    darknet: bool
    width: float | None  # CSPDarknet width multiplier (stem channels / 64); None for Darknet53
    depthwise: bool
    blocks: int | None  # bottlenecks per neck CSPLayer (round(3 * depth)); None for Darknet53
    num_classes: int | None


def _dims(value: Any) -> tuple[int, ...]:
    """A tensor's shape, or a shape already (the torch-free checkpoint reader gives tuples)."""
    return tuple(value.shape) if hasattr(value, "shape") else tuple(value)


def infer_arch(state_dict: Mapping[str, Any]) -> ArchInfo:
    """Read the architecture off a YOLOX state_dict (official key names, fused or not); values are tensors
    or their shapes."""
    darknet = DARKNET_KEY in state_dict
    width = _dims(state_dict[FOCUS_KEY])[0] / 64 if FOCUS_KEY in state_dict else None
    blocks = len({k.split(".")[3] for k in state_dict if k.startswith("backbone.C3_p4.m.")}) or None
    cls = state_dict.get(CLS_KEY)
    return ArchInfo(
        darknet=darknet,
        width=width,
        depthwise=any(".dconv." in k for k in state_dict),
        blocks=None if darknet else blocks,
        num_classes=_dims(cls)[0] if cls is not None else None,
    )


def zoo_name_of(info: ArchInfo) -> str | None:
    """The zoo model with this architecture (None: none matches); unknown `blocks` (an ONNX export) match
    on width and depthwise alone, which already tell the zoo models apart."""
    from streamyolox.model.zoo import ZOO

    if info.darknet:
        return "yolox-darknet53"
    for name, entry in ZOO.items():
        blocks = round(3 * entry.depth) if info.blocks is not None else None
        if not entry.darknet and (entry.width, entry.depthwise, blocks) == (info.width, info.depthwise, info.blocks):
            return name
    return None


def describe_arch(info: ArchInfo) -> str:
    """`yolox-s` when a zoo model matches, else `width 0.3 (depthwise)`."""
    name = zoo_name_of(info)
    if name is not None:
        return name
    return f"width {info.width:g}" + (" (depthwise)" if info.depthwise else "")
