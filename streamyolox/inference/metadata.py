"""What a model block implies without building the model: class names and input size."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from streamyolox.classes import COCO_CLASSES
from streamyolox.model.spec import ModelSpec


def _project_meta(weights: str | Path) -> dict[str, Any]:
    """The `streamyolox` block a project checkpoint records ({} for anything else)."""
    path = Path(weights)
    if path.suffix != ".pth" or not path.is_file():
        return {}
    import torch

    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # unreadable files are reported by the loader with their own message
        return {}
    meta = ckpt.get("streamyolox") if isinstance(ckpt, dict) else None
    return meta if isinstance(meta, dict) else {}


def read_class_names(weights: str | Path) -> tuple[str, ...] | None:
    """Class names a project checkpoint records, else None."""
    names = _project_meta(weights).get("class_names")
    return tuple(names) if names else None


def class_names_for(spec: ModelSpec | None) -> tuple[str, ...]:
    """The label table of `spec.weights` (a project checkpoint records its own), else COCO's."""
    if spec is None or not spec.weights:
        return COCO_CLASSES
    return read_class_names(spec.weights) or COCO_CLASSES


def default_input_size(weights: str | Path | None, name: str) -> tuple[int, int]:
    """What a model block without `input_size` runs at: the checkpoint's size, else the zoo's test size."""
    size = _project_meta(weights).get("input_size") if weights else None
    if size:
        return (int(size[0]), int(size[1]))
    from streamyolox.model.zoo import ZOO, canonical_name

    try:
        return ZOO[canonical_name(name)].test_size
    except (KeyError, ValueError):
        return (640, 640)
