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


def read_input_size(weights: str | Path) -> tuple[int, int] | None:
    """Input size (h, w) a project checkpoint records, else None."""
    path = Path(weights)
    if path.suffix != ".pth" or not path.is_file():
        return None
    import torch

    try:
        meta = torch.load(path, map_location="cpu", weights_only=True).get("streamyolox") or {}
    except Exception:  # reported by the loader
        return None
    size = meta.get("input_size") if isinstance(meta, dict) else None
    return (int(size[0]), int(size[1])) if size else None


def default_input_size(weights: str | Path | None, name: str) -> tuple[int, int]:
    """What a model block without `input_size` runs at: the checkpoint's size, else the zoo's test size."""
    if weights:
        size = read_input_size(weights)
        if size:
            return size
    from streamyolox.model import ZOO, canonical_name

    try:
        return ZOO[canonical_name(name)].test_size
    except (KeyError, ValueError):
        return (640, 640)
