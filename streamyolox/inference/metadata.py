"""What a model block implies without building the model: class names and input size.

Torch-free on purpose: the letterbox and nms processes only need the names and the size, and importing
torch to read them cost each process about 3 s and 400 MB (bench on the 2-core machine).
"""

from __future__ import annotations

import collections
import functools
import io
import pickle
import zipfile
from pathlib import Path
from typing import Any

from streamyolox.classes import COCO_CLASSES, resolve_class_names
from streamyolox.model.spec import ModelSpec

_CLS_KEY = "head.cls_preds.0.weight"  # [num_classes, C, 1, 1] in every YOLOX head


class _Shape(tuple):  # type: ignore[type-arg]
    """What a tensor becomes in the skeleton: its shape only."""


def _rebuild_tensor(_storage: Any, _offset: Any, size: Any, *_args: Any) -> _Shape:
    return _Shape(size if isinstance(size, tuple) else ())


class _SkeletonUnpickler(pickle.Unpickler):
    """Reads a torch checkpoint's pickle without torch: every tensor becomes its `_Shape` and no class
    outside `collections.OrderedDict` is ever imported (so nothing in the file can run code)."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor  # takes the plain size tuple torch pickles; builds nothing
        return _stub

    def persistent_load(self, pid: Any) -> None:
        return None


def _stub(*_args: Any, **_kwargs: Any) -> None:
    return None


@functools.lru_cache(maxsize=8)
def _skeleton(path: str, _mtime_ns: int) -> Any:
    """The checkpoint's pickle with tensors as shapes (None when unreadable); cached per file version."""
    try:
        with zipfile.ZipFile(path) as archive:
            pkl = next(n for n in archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl")
            return _SkeletonUnpickler(io.BytesIO(archive.read(pkl))).load()
    except Exception:  # not a zip checkpoint, or unreadable: the loader reports it with its own message
        return None


def _checkpoint(weights: str | Path) -> dict[str, Any]:
    path = Path(weights)
    if path.suffix != ".pth" or not path.is_file():
        return {}
    ckpt = _skeleton(str(path.resolve()), path.stat().st_mtime_ns)
    return ckpt if isinstance(ckpt, dict) else {}


def read_skeleton(weights: str | Path) -> dict[str, Any] | None:
    """A `.pth` checkpoint's pickle read without torch, tensors as their shapes; None when the file is no
    readable zip checkpoint (truncated, text, another format). For the pre-start weights check."""
    path = Path(weights)
    ckpt = _skeleton(str(path.resolve()), path.stat().st_mtime_ns)
    return ckpt if isinstance(ckpt, dict) else None


def _project_meta(weights: str | Path) -> dict[str, Any]:
    """The `streamyolox` block a project checkpoint records ({} for anything else)."""
    meta = _checkpoint(weights).get("streamyolox")
    return meta if isinstance(meta, dict) else {}


def read_class_names(weights: str | Path) -> tuple[str, ...] | None:
    """Class names a project checkpoint records, else None."""
    names = _project_meta(weights).get("class_names")
    return tuple(names) if names else None


def _pth_num_classes(weights: str | Path) -> int | None:
    """Class count of a `.pth`: the recorded one, else the classification head's output channels."""
    ckpt = _checkpoint(weights)
    recorded = _project_meta(weights).get("num_classes")
    if isinstance(recorded, int):
        return recorded
    sd = ckpt.get("model", ckpt)
    if not isinstance(sd, dict):
        return None
    head = sd.get(_CLS_KEY, sd.get(f"module.{_CLS_KEY}"))
    return int(head[0]) if isinstance(head, _Shape) and head else None


def _onnx_num_classes(weights: Path) -> int | None:
    """Class count of a YOLOX ONNX export: the output's last dimension minus the 5 box/objectness values."""
    import onnx  # no torch; only for .onnx weights

    try:
        graph = onnx.load(str(weights), load_external_data=False).graph
        dims = graph.output[0].type.tensor_type.shape.dim
    except Exception:  # unreadable: the loader reports it with its own message
        return None
    last = dims[-1].dim_value if dims else 0
    return last - 5 if last > 5 else None


def num_classes_of(weights: str | Path) -> int | None:
    """How many classes the model in `weights` (a `.pth` or `.onnx` file) outputs; None when unknown."""
    path = Path(weights)
    if path.suffix == ".onnx" and path.is_file():
        return _onnx_num_classes(path)
    return _pth_num_classes(path)


def class_names_for(spec: ModelSpec | None) -> tuple[str, ...]:
    """The label table of `spec.weights`, resolved as `resolve_class_names` says (a warning when a
    non-80-class file records no names). A zoo name, or a file whose class count cannot be read, keeps
    COCO's: the zoo's official weights are COCO models, and the loader rejects an unreadable file anyway."""
    if spec is not None and spec.class_names:  # decided once when the pipeline was checked
        return spec.class_names
    if spec is None or not spec.weights:
        return COCO_CLASSES
    count = num_classes_of(spec.weights)
    names = read_class_names(spec.weights)
    if count is None:
        return names or COCO_CLASSES
    return resolve_class_names(names, count, str(Path(spec.weights).resolve()))


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
