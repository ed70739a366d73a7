"""A generated detection dataset: coloured shapes on textured backgrounds, written as COCO or YOLO."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

CLASS_NAMES = ("red_disc", "green_square", "blue_triangle")
COLOURS = ((40, 40, 230), (40, 200, 40), (230, 80, 30))  # BGR


@dataclass
class SyntheticImage:
    """A generated image with its ``(x1, y1, x2, y2)`` boxes [N, 4] and classes [N]."""

    image: np.ndarray
    boxes: np.ndarray
    classes: np.ndarray


def textured_background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Smooth noise plus stripes: enough texture that the shapes are not the only edges."""
    noise = rng.integers(0, 255, (height // 8 + 1, width // 8 + 1, 3), dtype=np.uint8)
    img = cv2.resize(noise, (width, height), interpolation=cv2.INTER_CUBIC).astype(np.float32) * 0.5 + 60
    period = int(rng.integers(12, 30))
    stripes = ((np.arange(width)[None, :] + np.arange(height)[:, None]) // period % 2) * 25.0
    return np.clip(img + stripes[..., None], 0, 255).astype(np.uint8)


def draw_shape(img: np.ndarray, cls: int, box: tuple[int, int, int, int], colour: tuple[int, ...] | None = None) -> None:
    """Fill class `cls`'s shape so that it touches all four sides of `box` (x1, y1, x2, y2), inclusive."""
    x1, y1, x2, y2 = box
    colour = colour or COLOURS[cls]
    if cls == 0:
        cv2.ellipse(img, (((x1 + x2) / 2, (y1 + y2) / 2), (x2 - x1 + 1, y2 - y1 + 1), 0), colour, -1)
    elif cls == 1:
        cv2.rectangle(img, (x1, y1), (x2, y2), colour, -1)
    else:
        pts = np.array([[(x1 + x2) // 2, y1], [x2, y2], [x1, y2]], np.int32)
        cv2.fillPoly(img, [pts], colour)


def make_image(rng: np.random.Generator, height: int = 160, width: int = 160, max_objects: int = 3,
               size_range: tuple[int, int] = (28, 64)) -> SyntheticImage:
    """One image with 1..max_objects non-overlapping shapes."""
    img = textured_background(rng, height, width)
    boxes: list[list[int]] = []
    classes: list[int] = []
    for _ in range(int(rng.integers(1, max_objects + 1))):
        for _try in range(20):
            w, h = (int(v) for v in rng.integers(*size_range, size=2))
            x1, y1 = int(rng.integers(0, width - w)), int(rng.integers(0, height - h))
            cand = [x1, y1, x1 + w - 1, y1 + h - 1]
            if all(_disjoint(cand, b) for b in boxes):
                cls = int(rng.integers(0, len(CLASS_NAMES)))
                draw_shape(img, cls, (cand[0], cand[1], cand[2], cand[3]))
                boxes.append(cand)
                classes.append(cls)
                break
    xyxy = np.array(boxes, np.float32).reshape(-1, 4)
    xyxy[:, 2:] += 1  # pixel-edge convention: the box covers pixels x1..x2 inclusive
    return SyntheticImage(img, xyxy, np.array(classes, np.int64))


def _disjoint(a: list[int], b: list[int], gap: int = 4) -> bool:
    return a[2] + gap < b[0] or b[2] + gap < a[0] or a[3] + gap < b[1] or b[3] + gap < a[1]


def write_coco(root: Path, count: int, seed: int = 0, height: int = 160, width: int = 160,
               category_ids: tuple[int, ...] = (3, 7, 11)) -> Path:
    """Write `count` images to ``root/images`` and ``root/annotations.json`` (sparse category ids)."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    images, anns = [], []
    for i in range(count):
        sample = make_image(rng, height, width)
        name = f"img_{i:04d}.jpg"
        cv2.imwrite(str(root / "images" / name), sample.image, [cv2.IMWRITE_JPEG_QUALITY, 95])
        images.append({"id": 100 + i, "file_name": name, "width": width, "height": height})
        for box, cls in zip(sample.boxes.tolist(), sample.classes.tolist()):
            w, h = box[2] - box[0], box[3] - box[1]
            anns.append({"id": len(anns) + 1, "image_id": 100 + i, "category_id": category_ids[cls],
                         "bbox": [box[0], box[1], w, h], "area": w * h, "iscrowd": 0})
    cats = [{"id": c, "name": n} for c, n in zip(category_ids, CLASS_NAMES)]
    path = root / "annotations.json"
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return path


def write_yolo(root: Path, count: int, split: str = "train", seed: int = 0, size: int = 160) -> Path:
    """Write ``root/images/<split>``, ``root/labels/<split>`` and ``root/data.yaml``; return the yaml."""
    rng = np.random.default_rng(seed)
    (root / "images" / split).mkdir(parents=True, exist_ok=True)
    (root / "labels" / split).mkdir(parents=True, exist_ok=True)
    for i in range(count):
        sample = make_image(rng, size, size)
        cv2.imwrite(str(root / "images" / split / f"{i:04d}.png"), sample.image)
        lines = []
        for (x1, y1, x2, y2), cls in zip(sample.boxes.tolist(), sample.classes.tolist()):
            lines.append(f"{cls} {(x1 + x2) / 2 / size:.6f} {(y1 + y2) / 2 / size:.6f} "
                         f"{(x2 - x1) / size:.6f} {(y2 - y1) / size:.6f}")
        (root / "labels" / split / f"{i:04d}.txt").write_text("\n".join(lines) + "\n")
    yaml_path = root / "data.yaml"
    yaml_path.write_text(f"path: .\n{split}: images/{split}\nnames: {list(CLASS_NAMES)}\n")
    return yaml_path
