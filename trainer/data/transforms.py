"""Image + box transforms: random affine, HSV jitter, flip, and the official YOLOX letterbox.

Boxes are ``(x1, y1, x2, y2)`` pixels, float32 [N, 4]; images BGR uint8 [H, W, C]. Geometric transforms
move boxes exactly: the four corners go through the same matrix and the enclosing box is kept.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

PAD_VALUE = 114


@dataclass
class AugConfig:
    """Training augmentation, defaults as the official ``yolox_base`` Exp.

    Attributes:
        mosaic_prob: chance that a sample is a 4-image mosaic (then random affine, maybe mixup).
        mixup_prob: chance of mixing a second (letterboxed, jittered) image into a mosaic sample.
        enable_mixup: mixup at all (off for nano and tiny, as official).
        hsv_prob, flip_prob: chances of HSV jitter and horizontal flip.
        hsv_gains: additive hue / saturation / value amplitudes (OpenCV HSV units).
        degrees: rotation range +-degrees; translate: +-fraction of the output size;
        mosaic_scale: scale range of the affine; shear: +-degrees.
        mixup_scale: scale jitter of the mixed-in image.
        min_box_size, min_area_ratio, max_aspect: a transformed box survives when both sides are at least
            min_box_size px, it keeps min_area_ratio of its (scaled) area and its aspect ratio is below
            max_aspect.
    """

    mosaic_prob: float = 1.0
    mixup_prob: float = 1.0
    enable_mixup: bool = True
    hsv_prob: float = 1.0
    flip_prob: float = 0.5
    hsv_gains: tuple[float, float, float] = (5.0, 30.0, 30.0)
    degrees: float = 10.0
    translate: float = 0.1
    mosaic_scale: tuple[float, float] = (0.1, 2.0)
    mixup_scale: tuple[float, float] = (0.5, 1.5)
    shear: float = 2.0
    min_box_size: float = 2.0
    min_area_ratio: float = 0.1
    max_aspect: float = 20.0


def letterbox(img: np.ndarray, size: tuple[int, int], pad: int = PAD_VALUE) -> tuple[np.ndarray, float]:
    """Resize keeping the aspect ratio into ``size`` (h, w), top-left, padded with `pad` (official preproc).

    Returns:
        The padded image uint8 [h, w, C] and the ratio (model pixels per original pixel).
    """
    h, w = size
    ratio = min(h / img.shape[0], w / img.shape[1])
    new_w, new_h = int(img.shape[1] * ratio), int(img.shape[0] * ratio)
    out = np.full((h, w, img.shape[2]), pad, dtype=np.uint8)
    out[:new_h, :new_w] = cv2.resize(img, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    return out, ratio


def to_tensor_layout(img: np.ndarray) -> np.ndarray:
    """BGR uint8 [H, W, 3] -> float32 [3, H, W], 0-255, no mean/std (the YOLOX input contract)."""
    return np.ascontiguousarray(img.transpose(2, 0, 1), dtype=np.float32)


def augment_hsv(img: np.ndarray, rng: np.random.Generator, gains: tuple[float, float, float]) -> np.ndarray:
    """Random additive shift of a random subset of H, S, V (official ``augment_hsv``); a new image."""
    shift = rng.uniform(-1, 1, 3) * np.array(gains) * rng.integers(0, 2, 3)
    shift = shift.astype(np.int16)
    hsv = cv2.cvtColor(img, cv2.COLOR_BGR2HSV).astype(np.int16)
    hsv[..., 0] = (hsv[..., 0] + shift[0]) % 180
    hsv[..., 1:] = np.clip(hsv[..., 1:] + shift[1:], 0, 255)
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2BGR)


def hflip(img: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mirror the image left-right and its boxes [N, 4] with it."""
    width = img.shape[1]
    flipped = boxes.copy()
    flipped[:, 0], flipped[:, 2] = width - boxes[:, 2], width - boxes[:, 0]
    return np.ascontiguousarray(img[:, ::-1]), flipped


def affine_matrix(rng: np.random.Generator, centre: tuple[float, float], out_size: tuple[int, int],
                  cfg: AugConfig) -> tuple[np.ndarray, float]:
    """A random 2x3 matrix: rotate, scale and shear about `centre` (x, y), which lands at the middle of
    `out_size` (h, w) shifted by the random translation. Returns the matrix and the scale drawn."""
    angle = rng.uniform(-cfg.degrees, cfg.degrees)
    scale = rng.uniform(*cfg.mosaic_scale)
    rot = np.eye(3)
    rot[:2] = cv2.getRotationMatrix2D(angle=angle, center=(0, 0), scale=scale)
    shear = np.eye(3)
    shear[0, 1] = math.tan(math.radians(rng.uniform(-cfg.shear, cfg.shear)))
    shear[1, 0] = math.tan(math.radians(rng.uniform(-cfg.shear, cfg.shear)))
    to_origin = np.array([[1, 0, -centre[0]], [0, 1, -centre[1]], [0, 0, 1]], dtype=np.float64)
    h, w = out_size
    tx = w / 2 + rng.uniform(-cfg.translate, cfg.translate) * w
    ty = h / 2 + rng.uniform(-cfg.translate, cfg.translate) * h
    to_out = np.array([[1, 0, tx], [0, 1, ty], [0, 0, 1]], dtype=np.float64)
    return (to_out @ shear @ rot @ to_origin)[:2], scale


def warp_boxes(boxes: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Boxes [N, 4] through a 2x3 affine matrix: the enclosing box of the 4 transformed corners."""
    corners = boxes[:, [0, 1, 2, 1, 2, 3, 0, 3]].reshape(-1, 2)
    moved = corners @ matrix[:, :2].T + matrix[:, 2]
    moved = moved.reshape(-1, 4, 2)
    return np.concatenate([moved.min(axis=1), moved.max(axis=1)], axis=1).astype(np.float32)


def clip_and_filter(boxes: np.ndarray, before: np.ndarray, scale: float, size: tuple[int, int],
                    cfg: AugConfig) -> tuple[np.ndarray, np.ndarray]:
    """Clip transformed boxes [N, 4] to `size` (h, w); return them and the keep-mask [N].

    `before` holds the same boxes before the transform, `scale` its scale factor: a box survives when it
    is at least ``min_box_size`` wide and high, keeps ``min_area_ratio`` of its scaled area after
    clipping and has an aspect ratio under ``max_aspect``.
    """
    h, w = size
    clipped = boxes.copy()
    clipped[:, 0::2] = clipped[:, 0::2].clip(0, w)
    clipped[:, 1::2] = clipped[:, 1::2].clip(0, h)
    bw, bh = clipped[:, 2] - clipped[:, 0], clipped[:, 3] - clipped[:, 1]
    area0 = (before[:, 2] - before[:, 0]) * (before[:, 3] - before[:, 1]) * scale**2
    aspect = np.maximum(bw / (bh + 1e-9), bh / (bw + 1e-9))
    keep = (bw >= cfg.min_box_size) & (bh >= cfg.min_box_size) & (aspect < cfg.max_aspect)
    keep &= bw * bh / (area0 + 1e-9) > cfg.min_area_ratio
    return clipped, keep


def random_affine(img: np.ndarray, boxes: np.ndarray, classes: np.ndarray, rng: np.random.Generator,
                  out_size: tuple[int, int], cfg: AugConfig,
                  centre: tuple[float, float] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Warp `img` to `out_size` (h, w) with a random affine about `centre` (default: the image centre).

    Returns the warped image, the surviving boxes [M, 4] (exact corner transform, clipped, filtered)
    and their classes [M].
    """
    if centre is None:
        centre = (img.shape[1] / 2, img.shape[0] / 2)
    matrix, scale = affine_matrix(rng, centre, out_size, cfg)
    h, w = out_size
    warped = cv2.warpAffine(img, matrix, dsize=(w, h), flags=cv2.INTER_LINEAR,
                            borderValue=(PAD_VALUE,) * 3)
    if len(boxes) == 0:
        return warped, boxes.reshape(0, 4).astype(np.float32), classes
    moved, keep = clip_and_filter(warp_boxes(boxes, matrix), boxes, scale, out_size, cfg)
    return warped, moved[keep], classes[keep]
