"""The validated, format-independent form of a detection dataset that every loader produces."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger("trainer.data")


@dataclass
class ImageRecord:
    """One image and its boxes.

    Args:
        path: the image file.
        width, height: image size in pixels (from the annotation file, checked on load).
        boxes (ndarray[N, 4] float32): ``(x1, y1, x2, y2)`` pixels, clipped to the image, non-empty.
        classes (ndarray[N] int64): contiguous class indices ``0..C-1``.
        image_id: the id evaluation reports detections under (the COCO image id, or the record index).
    """

    path: Path
    width: int
    height: int
    boxes: np.ndarray
    classes: np.ndarray
    image_id: int


@dataclass
class LoadReport:
    """What the validating loader fixed or skipped, counted per reason, with a few examples each."""

    source: str
    counts: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def add(self, reason: str, example: str) -> None:
        self.counts[reason] = self.counts.get(reason, 0) + 1
        shown = self.examples.setdefault(reason, [])
        if len(shown) < 3:
            shown.append(example)

    def summary(self, images: int, boxes: int) -> str:
        fixed = ", ".join(f"{n} {reason}" for reason, n in sorted(self.counts.items())) or "no problems"
        return f"{self.source}: {images} images, {boxes} boxes; {fixed}"

    def log(self, images: int, boxes: int) -> None:
        for reason, shown in sorted(self.examples.items()):
            log.warning("%s: %s (%d), e.g. %s", self.source, reason, self.counts[reason], "; ".join(shown))
        log.info(self.summary(images, boxes))


@dataclass
class DetectionData:
    """A loaded dataset: records, class names and how to evaluate against it.

    Attributes:
        records: the usable images (missing files already skipped).
        class_names: names of the contiguous classes ``0..C-1``.
        category_ids: the id each contiguous class has in the evaluation ground truth (COCO category ids
            for COCO input, the class index for YOLO input).
        report: what the loader fixed or skipped.
        coco_gt: the ground truth as a COCO dict for pycocotools (the original file for COCO input).
    """

    records: list[ImageRecord]
    class_names: list[str]
    category_ids: list[int]
    report: LoadReport
    coco_gt: dict[str, Any] | None = None

    def __len__(self) -> int:
        return len(self.records)

    @property
    def num_boxes(self) -> int:
        return int(sum(len(r.boxes) for r in self.records))

    def gt_dict(self) -> dict[str, Any]:
        """Ground truth in COCO form: the original annotations, or one built from the records."""
        if self.coco_gt is not None:
            return self.coco_gt
        return records_to_coco(self.records, self.class_names, self.category_ids)


def records_to_coco(records: Sequence[ImageRecord], class_names: Sequence[str],
                    category_ids: Sequence[int]) -> dict[str, Any]:
    """COCO ground-truth dict (``bbox`` as ``[x, y, w, h]``, ``area = w * h``) for records."""
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for rec in records:
        images.append({"id": rec.image_id, "file_name": rec.path.name, "width": rec.width,
                       "height": rec.height})
        for box, cls in zip(rec.boxes.tolist(), rec.classes.tolist()):
            w, h = box[2] - box[0], box[3] - box[1]
            annotations.append({"id": len(annotations) + 1, "image_id": rec.image_id,
                                "category_id": int(category_ids[cls]), "bbox": [box[0], box[1], w, h],
                                "area": w * h, "iscrowd": 0})
    categories = [{"id": int(i), "name": n} for i, n in zip(category_ids, class_names)]
    return {"images": images, "annotations": annotations, "categories": categories}


def clean_boxes(boxes: np.ndarray, width: int, height: int, where: str, report: LoadReport,
                min_size: float = 1.0) -> np.ndarray:
    """Clip ``(x1, y1, x2, y2)`` boxes [N, 4] to the image; return the keep-mask [N] of usable boxes.

    Non-finite boxes and boxes thinner than `min_size` after clipping are dropped; partly outside boxes
    are clipped. Both are counted in `report` with `where` (file, annotation) as the example.
    """
    finite = np.isfinite(boxes).all(axis=1)
    for i in np.flatnonzero(~finite):
        report.add("boxes not finite (dropped)", f"{where} box {i}")
    safe = np.where(finite[:, None], boxes, 0.0)
    clipped = safe.copy()
    clipped[:, 0::2] = clipped[:, 0::2].clip(0, width)
    clipped[:, 1::2] = clipped[:, 1::2].clip(0, height)
    moved = finite & (np.abs(clipped - safe) > 0.5).any(axis=1)
    keep = finite & (clipped[:, 2] - clipped[:, 0] >= min_size) & (clipped[:, 3] - clipped[:, 1] >= min_size)
    for i in np.flatnonzero(finite & ~keep):
        report.add("boxes empty or outside the image (dropped)", f"{where} box {i} {safe[i].round(1).tolist()}")
    for i in np.flatnonzero(moved & keep):
        report.add("boxes partly outside the image (clipped)", f"{where} box {i}")
    boxes[:] = clipped
    return keep
