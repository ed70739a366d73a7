"""Class names for a model block, without building the model."""

from __future__ import annotations

from pathlib import Path

from streamyolox.classes import COCO_CLASSES
from streamyolox.model.spec import ModelSpec


def read_class_names(weights: str | Path) -> tuple[str, ...] | None:
    """Class names a project checkpoint records (`{"streamyolox": {"class_names": [...]}}`), else None."""
    path = Path(weights)
    if path.suffix != ".pth" or not path.is_file():
        return None
    import torch

    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # unreadable files are reported by the loader with their own message
        return None
    meta = ckpt.get("streamyolox") if isinstance(ckpt, dict) else None
    names = meta.get("class_names") if isinstance(meta, dict) else None
    return tuple(names) if names else None


def class_names_for(spec: ModelSpec | None) -> tuple[str, ...]:
    """The label table of `spec.weights` (a project checkpoint records its own), else COCO's."""
    if spec is None or not spec.weights:
        return COCO_CLASSES
    return read_class_names(spec.weights) or COCO_CLASSES
