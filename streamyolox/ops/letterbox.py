"""Letterbox preprocessing: the official YOLOX ``preproc`` and a fast CPU path with identical results.

The official contract: scale by ``r = min(h / H, w / W)``, resize with ``cv2.INTER_LINEAR`` to
``(int(W * r), int(H * r))``, place the result at the top-left of an ``(h, w)`` canvas filled with 114,
HWC -> CHW, float32, BGR 0-255, no mean/std. The GPU version lives in `letterbox_gpu` (CuPy);
`letterbox_yuv420` makes the same input from a decoder's YUV planes without a full-size BGR frame.
"""

from __future__ import annotations

import cv2
import numpy as np

from streamyolox.ops.yuv import Yuv420, bgr_matrix

PAD_VALUE = 114


def _check_image(img: np.ndarray) -> None:
    if not isinstance(img, np.ndarray) or img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        shape = getattr(img, "shape", None)
        dtype = getattr(img, "dtype", type(img).__name__)
        raise ValueError(f"letterbox: expected an HxWx3 uint8 BGR image, got shape {shape} dtype {dtype}")
    if img.shape[0] == 0 or img.shape[1] == 0:
        raise ValueError(f"letterbox: empty image of shape {img.shape}")


def letterbox_geometry(height: int, width: int, size: tuple[int, int]) -> tuple[float, int, int]:
    """Scale ``r`` and resized ``(h, w)`` of an ``height x width`` image letterboxed into ``size (h, w)``."""
    r = min(size[0] / height, size[1] / width)
    return r, int(height * r), int(width * r)


def letterbox_ref(img: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, float]:
    """Reference letterbox, line for line the official YOLOX ``preproc``.

    Args:
        img (ndarray[H, W, 3] uint8): BGR image.
        size: network input ``(h, w)``.

    Returns:
        (ndarray[3, h, w] float32 BGR 0-255, ratio r): divide boxes by ``r`` to get original pixels.
    """
    _check_image(img)
    padded = np.ones((size[0], size[1], 3), dtype=np.uint8) * PAD_VALUE
    r, rh, rw = letterbox_geometry(img.shape[0], img.shape[1], size)
    resized = cv2.resize(img, (rw, rh), interpolation=cv2.INTER_LINEAR).astype(np.uint8)
    padded[:rh, :rw] = resized
    return np.ascontiguousarray(padded.transpose(2, 0, 1), dtype=np.float32), r


def letterbox(
    img: np.ndarray,
    size: tuple[int, int],
    out: np.ndarray | None = None,
    dtype: type | np.dtype = np.float32,
) -> tuple[np.ndarray, float]:
    """Fast CPU letterbox with results identical to `letterbox_ref`.

    Resizes straight into the output's region (no full-size temporaries) and converts layout and type
    once. ``dtype=np.uint8`` defers the float conversion to the consumer (4x fewer bytes to move between
    stages); ``out`` (ndarray[3, h, w] of ``dtype``) is reused when given, e.g. a shared-memory slot.

    Args:
        img (ndarray[H, W, 3] uint8): BGR image.
        size: network input ``(h, w)``.
        out (ndarray[3, h, w] | None): preallocated output.
        dtype: ``np.float32`` (default) or ``np.uint8``.

    Returns:
        (ndarray[3, h, w] of dtype, ratio r).
    """
    _check_image(img)
    out = _output(size, out, dtype)
    r, rh, rw = letterbox_geometry(img.shape[0], img.shape[1], size)
    _place(cv2.resize(img, (rw, rh), interpolation=cv2.INTER_LINEAR), out)
    return out, r


def letterbox_yuv420(
    yuv: Yuv420,
    size: tuple[int, int],
    out: np.ndarray | None = None,
    dtype: type | np.dtype = np.float32,
) -> tuple[np.ndarray, float]:
    """Letterbox straight from a decoder's YUV 4:2:0 planes: each plane resized (``cv2.INTER_LINEAR``) to
    the letterbox size, then only those pixels converted to BGR (`streamyolox.ops.yuv.bgr_matrix`).

    Not bit-equal to `letterbox` of the swscale BGR frame: resizing before the conversion rounds once
    instead of twice and samples the chroma planes directly. On the 300 frames of the 720p street clip the
    pixels differ by 0.64 on average (at most 24, at strong colour edges; 1.5% by more than 2), and the
    nano model's detections change as much as under +-1 noise on the BGR input
    (tests/ops/test_letterbox_yuv.py, tests/pipelines/test_demo_pipeline.py). Its cost: see
    `streamyolox.ops.yuv`.

    Args:
        yuv: the frame's planes.
        size: network input ``(h, w)``.
        out (ndarray[3, h, w] | None): preallocated output.
        dtype: ``np.float32`` (default) or ``np.uint8``.

    Returns:
        (ndarray[3, h, w] of dtype, BGR 0-255, ratio r).
    """
    out = _output(size, out, dtype)
    r, rh, rw = letterbox_geometry(yuv.height, yuv.width, size)
    planes = [cv2.resize(p, (rw, rh), interpolation=cv2.INTER_LINEAR) for p in (yuv.y, yuv.u, yuv.v)]
    _place(cv2.transform(cv2.merge(planes), bgr_matrix(yuv.colorspace, yuv.full_range)), out)
    return out, r


def _output(size: tuple[int, int], out: np.ndarray | None, dtype: type | np.dtype) -> np.ndarray:
    """`out` checked, or a new ndarray[3, h, w] of `dtype` (float32 or uint8)."""
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.uint8):
        raise ValueError(f"letterbox: dtype must be float32 or uint8, got {dtype}")
    shape = (3, size[0], size[1])
    if out is None:
        return np.empty(shape, dtype)
    if out.shape != shape or out.dtype != dtype:
        raise ValueError(f"letterbox: out must be {shape} {dtype}, got {out.shape} {out.dtype}")
    return out


def _place(resized: np.ndarray, out: np.ndarray) -> None:
    """Write the resized HxWx3 image top-left into CHW `out`, padding the rest with `PAD_VALUE`."""
    rh, rw = resized.shape[:2]
    # Pad only the borders; the resized block is written once, converting layout and dtype in one pass.
    out[:, rh:, :] = PAD_VALUE
    out[:, :rh, rw:] = PAD_VALUE
    np.copyto(out[:, :rh, :rw], resized.transpose(2, 0, 1), casting="unsafe")
