"""What a model block implies without building the model: class names and input size."""

from __future__ import annotations

import collections
import io
import pickle
import zipfile
from pathlib import Path
from typing import Any

from streamyolox.classes import COCO_CLASSES
from streamyolox.model.spec import ModelSpec


class _SkeletonUnpickler(pickle.Unpickler):
    """Reads a torch checkpoint's pickle without torch: every tensor becomes None and no class outside
    `collections.OrderedDict` is ever imported (so nothing in the file can run code)."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        return _stub

    def persistent_load(self, pid: Any) -> None:
        return None


def _stub(*_args: Any, **_kwargs: Any) -> None:
    return None


def _project_meta(weights: str | Path) -> dict[str, Any]:
    """The `streamyolox` block a project checkpoint records ({} for anything else).

    Torch-free on purpose: the letterbox and nms processes only need the names and the size, and
    importing torch to read them cost each process about 3 s and 400 MB (bench on the 2-core machine).
    """
    path = Path(weights)
    if path.suffix != ".pth" or not path.is_file():
        return {}
    try:
        with zipfile.ZipFile(path) as archive:
            pkl = next(n for n in archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl")
            ckpt = _SkeletonUnpickler(io.BytesIO(archive.read(pkl))).load()
    except Exception:  # not a zip checkpoint, or unreadable: the loader reports it with its own message
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
