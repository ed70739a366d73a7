"""`load_data`: one entry point for every dataset form the CLI accepts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from trainer.data.coco import load_coco
from trainer.data.records import DetectionData
from trainer.data.yolo_txt import load_yolo


def load_data(spec: str | Path, split: str = "train", image_dir: str | Path | None = None) -> DetectionData | None:
    """Load one split of a dataset.

    Args:
        spec: a COCO ``.json`` annotation file (the split is that file), a data ``.yaml``
            (``path``, ``train``, ``val``, ``names``; a split may be a YOLO image folder/list or a COCO
            ``.json``, or ``{annotations: x.json, images: dir}``), or a YOLO root folder
            (``images/<split>`` + ``labels/<split>``, or ``images/`` + ``labels/`` for one split).
        split: ``train`` or ``val``.
        image_dir: the COCO image folder, when it is not beside the json.

    Returns:
        The data, or None when `spec` defines no such split (a yaml without ``val``, a YOLO root
        without ``images/val``).

    Raises:
        ValueError: `spec` does not exist or is not a dataset (one line naming the path).
    """
    path = Path(spec)
    if path.suffix == ".json":
        return load_coco(path, image_dir)
    if path.suffix in (".yaml", ".yml"):
        return _from_yaml(path, split)
    if path.is_dir():
        return _from_root(path, split)
    raise ValueError(f"{path}: not a dataset (expected a COCO .json, a data .yaml or a YOLO folder)")


def _from_root(root: Path, split: str) -> DetectionData | None:
    images = root / "images"
    if not images.is_dir():
        raise ValueError(f"{root}: a YOLO dataset folder needs an images/ subfolder")
    if (images / split).is_dir():
        return load_yolo(images / split, source=f"{root} [{split}]")
    if any(p.is_dir() for p in images.iterdir()):
        return None  # split folders exist, not this one
    return load_yolo(images, source=str(root)) if split == "train" else None


def _from_yaml(path: Path, split: str) -> DetectionData | None:
    if not path.is_file():
        raise ValueError(f"{path}: data yaml not found")
    try:
        cfg: Any = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(cfg, dict):
        raise ValueError(f"{path}: expected a mapping with train/val/names")
    root = path.parent / str(cfg.get("path", "."))
    entry = cfg.get(split)
    if entry is None:
        if split == "train":
            raise ValueError(f"{path}: no 'train' entry")
        return None
    names = _names(cfg.get("names"), path)
    if isinstance(entry, dict):
        return load_coco(root / str(entry["annotations"]), root / str(entry["images"]) if "images" in entry else None)
    if isinstance(entry, str) and entry.endswith(".json"):
        return load_coco(root / entry)
    items = entry if isinstance(entry, list) else [entry]
    return load_yolo([root / str(i) for i in items], names, source=f"{path} [{split}]")


def _names(names: Any, path: Path) -> list[str] | None:
    if names is None:
        return None
    if isinstance(names, dict):
        by_id = {int(k): str(v) for k, v in names.items()}
        if sorted(by_id) != list(range(len(by_id))):
            raise ValueError(f"{path}: 'names' keys must be 0..{len(by_id) - 1}")
        return [by_id[k] for k in range(len(by_id))]
    if isinstance(names, list):
        return [str(n) for n in names]
    raise ValueError(f"{path}: 'names' must be a list or a mapping id -> name")
