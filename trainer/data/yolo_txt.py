"""YOLO txt-label folders: ``images/<split>/*.jpg`` with ``labels/<split>/*.txt`` lines
``class cx cy w h`` (normalised to 0..1), validated on load."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from trainer.data.records import DetectionData, ImageRecord, LoadReport, clean_boxes
from trainer.data.sizes import image_size

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


def load_yolo(images: str | Path | Sequence[str | Path], class_names: Sequence[str] | None = None,
              source: str | None = None) -> DetectionData:
    """Load and validate a YOLO-format split.

    Args:
        images: an image folder (searched recursively), a ``.txt`` list of image paths, or a list of
            either. Each image's label file is found by swapping the last ``images`` path part for
            ``labels`` and the suffix for ``.txt``; an image without one has no objects.
        class_names: names of classes ``0..C-1``; when None, ``classes.txt`` beside the folder or
            ``class<k>`` names up to the largest id seen.

    Problems are counted in the report: malformed lines and unknown class ids (line skipped),
    unreadable images (skipped), boxes partly outside the image (clipped), images with no label file.
    """
    paths = _image_paths(images)
    source = source or str(images)
    report = LoadReport(source)
    names = list(class_names) if class_names is not None else _names_file(paths)
    records = []
    for index, path in enumerate(paths):
        try:
            width, height = image_size(path)
        except ValueError:
            report.add("unreadable image files (image skipped)", str(path))
            continue
        boxes, classes = _read_labels(_label_path(path), len(names) if names else None, report)
        xyxy = _to_pixels(boxes, width, height)
        keep = clean_boxes(xyxy, width, height, _label_path(path).name, report)
        records.append(ImageRecord(path, width, height, xyxy[keep].astype(np.float32), classes[keep], index))
    if not names:
        top = max((int(r.classes.max()) for r in records if len(r.classes)), default=0)
        names = [f"class{k}" for k in range(top + 1)]
    data = DetectionData(records, names, list(range(len(names))), report)
    report.log(len(records), data.num_boxes)
    return data


def _image_paths(images: str | Path | Sequence[str | Path]) -> list[Path]:
    if isinstance(images, (str, Path)):
        images = [images]
    paths: list[Path] = []
    for item in images:
        item = Path(item)
        if item.is_dir():
            paths += sorted(p for p in item.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        elif item.is_file() and item.suffix == ".txt":
            lines = [ln.strip() for ln in item.read_text().splitlines() if ln.strip()]
            paths += [p if p.is_absolute() else item.parent / p for p in map(Path, lines)]
        elif item.is_file():
            paths.append(item)
        else:
            raise ValueError(f"{item}: YOLO image folder or list not found")
    if not paths:
        raise ValueError(f"{', '.join(map(str, images))}: no images found")
    return paths


def _label_path(image: Path) -> Path:
    parts = list(image.parts)
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            break
    return Path(*parts).with_suffix(".txt")


def _names_file(paths: list[Path]) -> list[str]:
    """Names from ``classes.txt`` in the first image's folder or one of its parents, else []."""
    for folder in paths[0].parents:
        candidate = folder / "classes.txt"
        if candidate.is_file():
            return [ln.strip() for ln in candidate.read_text().splitlines() if ln.strip()]
    return []


def _read_labels(path: Path, num_classes: int | None, report: LoadReport) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``(cx, cy, w, h)`` normalised [N, 4] and class ids [N] from one label file."""
    if not path.is_file():
        report.add("images without a label file (no objects)", str(path))
        return np.zeros((0, 4)), np.zeros(0, np.int64)
    boxes, classes = [], []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        try:
            cls, values = int(fields[0]), [float(v) for v in fields[1:5]]
        except ValueError:
            cls, values = -1, []
        if len(fields) != 5 or len(values) != 4 or cls < 0:
            report.add("malformed label lines (skipped)", f"{path}:{n} {line.strip()!r}")
            continue
        if num_classes is not None and cls >= num_classes:
            report.add("labels with an unknown class id (skipped)", f"{path}:{n} class {cls}")
            continue
        boxes.append(values)
        classes.append(cls)
    return np.array(boxes, np.float64).reshape(-1, 4), np.array(classes, np.int64)


def _to_pixels(cxcywh: np.ndarray, width: int, height: int) -> np.ndarray:
    scale = np.array([width, height, width, height], np.float64)
    c = cxcywh * scale
    return np.concatenate([c[:, :2] - c[:, 2:] / 2, c[:, :2] + c[:, 2:] / 2], axis=1)
