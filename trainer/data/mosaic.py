"""Mosaic (4 images) and mixup, as the official ``MosaicDetection`` composes them, with exact boxes.

Boxes are ``(x1, y1, x2, y2)`` pixels float32 [N, 4], classes int64 [N], images BGR uint8 [H, W, 3].
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from trainer.data.transforms import PAD_VALUE, AugConfig, clip_and_filter, hflip

Sample = tuple[np.ndarray, np.ndarray, np.ndarray]  # image, boxes [N, 4], classes [N]


def mosaic4(samples: Sequence[Sample], centre: tuple[int, int], size: tuple[int, int]) -> Sample:
    """Tile four samples around `centre` (x, y) of a ``2h x 2w`` canvas (top-left, top-right,
    bottom-left, bottom-right), each scaled to fit `size` (h, w). Boxes are shifted and clipped to the
    canvas; boxes cut to nothing are dropped.
    """
    h, w = size
    xc, yc = centre
    canvas = np.full((2 * h, 2 * w, 3), PAD_VALUE, dtype=np.uint8)
    all_boxes, all_classes = [], []
    for quadrant, (img, boxes, classes) in enumerate(samples):
        scale = min(h / img.shape[0], w / img.shape[1])
        img = cv2.resize(img, (int(img.shape[1] * scale), int(img.shape[0] * scale)),
                         interpolation=cv2.INTER_LINEAR)
        ih, iw = img.shape[:2]
        # canvas window [x1, x2) x [y1, y2) and the matching window of the tile
        x1 = max(xc - iw, 0) if quadrant in (0, 2) else xc
        x2 = xc if quadrant in (0, 2) else min(xc + iw, 2 * w)
        y1 = max(yc - ih, 0) if quadrant in (0, 1) else yc
        y2 = yc if quadrant in (0, 1) else min(yc + ih, 2 * h)
        sx1 = iw - (x2 - x1) if quadrant in (0, 2) else 0
        sy1 = ih - (y2 - y1) if quadrant in (0, 1) else 0
        canvas[y1:y2, x1:x2] = img[sy1:sy1 + (y2 - y1), sx1:sx1 + (x2 - x1)]
        shifted = boxes * scale + np.array([x1 - sx1, y1 - sy1] * 2, dtype=np.float32)
        all_boxes.append(shifted)
        all_classes.append(classes)
    boxes = np.concatenate(all_boxes).astype(np.float32).reshape(-1, 4)
    classes = np.concatenate(all_classes).astype(np.int64)
    boxes[:, 0::2] = boxes[:, 0::2].clip(0, 2 * w)
    boxes[:, 1::2] = boxes[:, 1::2].clip(0, 2 * h)
    keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    return canvas, boxes[keep], classes[keep]


def mixup(base: Sample, other: Sample, rng: np.random.Generator, cfg: AugConfig) -> Sample:
    """Blend `other` into `base` 50/50 (official mixup): `other` is letterboxed to base's size, scaled
    by a random jitter, maybe mirrored and randomly cropped back; the boxes of both are kept."""
    img, boxes, classes = base
    oimg, oboxes, oclasses = other
    h, w = img.shape[:2]
    jitter = rng.uniform(*cfg.mixup_scale)
    flip = rng.uniform() > 0.5
    ratio = min(h / oimg.shape[0], w / oimg.shape[1])
    boxed = np.full((h, w, 3), PAD_VALUE, dtype=np.uint8)
    rw, rh = int(oimg.shape[1] * ratio), int(oimg.shape[0] * ratio)
    boxed[:rh, :rw] = cv2.resize(oimg, (rw, rh), interpolation=cv2.INTER_LINEAR)
    canvas: np.ndarray = cv2.resize(boxed, (int(w * jitter), int(h * jitter)), interpolation=cv2.INTER_LINEAR)
    moved = oboxes * np.array([canvas.shape[1] / w * ratio, canvas.shape[0] / h * ratio] * 2, np.float32)
    if flip:
        canvas, moved = hflip(canvas, moved)
    ch, cw = canvas.shape[:2]
    padded = np.zeros((max(ch, h), max(cw, w), 3), dtype=np.uint8)
    padded[:ch, :cw] = canvas
    y0 = int(rng.integers(0, padded.shape[0] - h)) if padded.shape[0] > h else 0
    x0 = int(rng.integers(0, padded.shape[1] - w)) if padded.shape[1] > w else 0
    crop = padded[y0:y0 + h, x0:x0 + w]
    shifted = moved - np.array([x0, y0, x0, y0], dtype=np.float32)
    shifted, keep = clip_and_filter(shifted, oboxes, ratio * jitter, (h, w), cfg)
    blended = (0.5 * img.astype(np.float32) + 0.5 * crop.astype(np.float32)).astype(np.uint8)
    return (blended, np.concatenate([boxes, shifted[keep]]).astype(np.float32),
            np.concatenate([classes, oclasses[keep]]).astype(np.int64))
