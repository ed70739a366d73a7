"""COCO JSON detection datasets (``instances_*.json`` + an image folder), validated on load."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from trainer.data.records import DetectionData, ImageRecord, LoadReport, clean_boxes
from trainer.data.sizes import image_size


def load_coco(ann_file: str | Path, image_dir: str | Path | None = None) -> DetectionData:
    """Load and validate a COCO detection annotation file.

    Categories map to contiguous classes in ascending category-id order (as the official YOLOX
    ``COCODataset``), keeping their names. Crowd annotations are left to the evaluator. Problems are
    counted in the returned report: missing image files (image skipped), unknown image or category ids
    and malformed boxes (annotation skipped), boxes partly outside the image (clipped).

    Raises:
        ValueError: the file is missing, is not JSON, or lacks ``images``/``categories``.
    """
    ann_file = Path(ann_file)
    coco = _read_json(ann_file)
    cats = sorted(coco["categories"], key=lambda c: int(c["id"]))
    cat_ids = [int(c["id"]) for c in cats]
    to_class = {cid: i for i, cid in enumerate(cat_ids)}
    root = Path(image_dir) if image_dir is not None else _guess_image_dir(ann_file, coco["images"])
    report = LoadReport(str(ann_file))
    by_image = _group_annotations(coco.get("annotations", []), to_class, report)
    records = []
    for img in coco["images"]:
        rec = _image_record(img, root, by_image.pop(int(img["id"]), []), report)
        if rec is not None:
            records.append(rec)
    for image_id, anns in by_image.items():
        for _, _, ann_id in anns:
            report.add("annotations of an unknown image id (skipped)", f"annotation {ann_id} image_id {image_id}")
    data = DetectionData(records, [str(c.get("name", c["id"])) for c in cats], cat_ids, report, coco)
    report.log(len(records), data.num_boxes)
    return data


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ValueError(f"{path}: COCO annotation file not found")
    try:
        coco = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not a JSON file ({exc})") from None
    for key in ("images", "categories"):
        if not isinstance(coco, dict) or not isinstance(coco.get(key), list):
            raise ValueError(f"{path}: not a COCO detection file (no '{key}' list)")
    if not coco["categories"]:
        raise ValueError(f"{path}: 'categories' is empty")
    return coco


def _guess_image_dir(ann_file: Path, images: list[dict[str, Any]]) -> Path:
    """The folder holding the images: beside the json, ``images/``, or COCO's ``../<split>2017``."""
    here = ann_file.parent
    split = ann_file.stem.removeprefix("instances_")
    candidates = [here, here / "images", here.parent / split, here.parent / "images", here.parent]
    if images:
        first = str(images[0].get("file_name", ""))
        for folder in candidates:
            if (folder / first).is_file():
                return folder
    return here


def _group_annotations(anns: list[dict[str, Any]], to_class: dict[int, int],
                       report: LoadReport) -> dict[int, list[tuple[list[float], int, Any]]]:
    """Usable annotations per image id as ``(bbox xywh, contiguous class, annotation id)``."""
    by_image: dict[int, list[tuple[list[float], int, Any]]] = {}
    for ann in anns:
        where = f"annotation {ann.get('id')}"
        if ann.get("iscrowd", 0):
            continue  # crowd regions are ignore areas for COCOeval, not training targets
        if int(ann.get("category_id", -1)) not in to_class:
            report.add("annotations with an unknown category (skipped)",
                       f"{where} category_id {ann.get('category_id')}")
            continue
        bbox = ann.get("bbox")
        if not (isinstance(bbox, list) and len(bbox) == 4 and all(isinstance(v, (int, float)) for v in bbox)):
            report.add("annotations with a malformed bbox (skipped)", f"{where} bbox {bbox!r}")
            continue
        entry = (bbox, to_class[int(ann["category_id"])], ann.get("id"))
        by_image.setdefault(int(ann.get("image_id", -1)), []).append(entry)
    return by_image


def _image_record(img: dict[str, Any], root: Path, anns: list[tuple[list[float], int, Any]],
                  report: LoadReport) -> ImageRecord | None:
    path = root / str(img.get("file_name", ""))
    if not path.is_file():
        report.add("missing image files (image skipped)", str(path))
        return None
    width, height = int(img.get("width") or 0), int(img.get("height") or 0)
    if width <= 0 or height <= 0:
        width, height = image_size(path)
    xywh = np.array([a[0] for a in anns], dtype=np.float64).reshape(-1, 4)
    boxes = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
    classes = np.array([a[1] for a in anns], dtype=np.int64)
    keep = clean_boxes(boxes, width, height, f"{path.name}", report)
    return ImageRecord(path, width, height, boxes[keep].astype(np.float32),
                       classes[keep], int(img["id"]))
