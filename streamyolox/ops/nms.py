"""Greedy non-maximum suppression with torchvision semantics, a numpy reference and a numba fast path.

Semantics (``torchvision.ops.nms``, which official YOLOX calls): boxes ``(x1, y1, x2, y2)``, areas
``(x2 - x1) * (y2 - y1)`` without ``+1``, visit boxes by score descending (stable: ties keep input order),
a box is suppressed when its IoU with a kept box is ``> iou_threshold``. IoU is computed in float32 in
torchvision's order of operations and compared with the threshold in float64, as torchvision does, so
the reference, the numba path and the CUDA kernel agree bit for bit. Class-aware NMS uses
torchvision's coordinate-offset trick (each class shifted by ``class * (max_coordinate + 1)``).
"""

from __future__ import annotations

import numpy as np

from streamyolox.ops.lazy_jit import njit_on_first_call


def _as_boxes(boxes: np.ndarray, scores: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    boxes = np.ascontiguousarray(boxes, dtype=np.float32)
    scores = np.ascontiguousarray(scores, dtype=np.float32)
    if boxes.ndim != 2 or boxes.shape[1] != 4 or scores.shape != (boxes.shape[0],):
        raise ValueError(f"{name}: expected boxes [N, 4] and scores [N], got {boxes.shape} and {scores.shape}")
    return boxes, scores


def score_order(scores: np.ndarray) -> np.ndarray:
    """Indices by score descending, ties in input order (a stable sort of ``-scores``)."""
    return np.argsort(-scores, kind="stable")


def nms_ref(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Reference greedy NMS in plain numpy.

    Args:
        boxes (ndarray[N, 4]): ``(x1, y1, x2, y2)`` boxes, any float dtype (computed in float32).
        scores (ndarray[N]): scores.
        iou_threshold: boxes with IoU ``> iou_threshold`` against a kept box are discarded.

    Returns:
        ndarray[K] int64: indices of the kept boxes, by score descending.
    """
    boxes, scores = _as_boxes(boxes, scores, "nms_ref")
    x1, y1, x2, y2 = boxes.T
    areas = (x2 - x1) * (y2 - y1)
    order = score_order(scores)
    suppressed = np.zeros(len(boxes), dtype=bool)
    keep = []
    for i in order:
        if suppressed[i]:
            continue
        keep.append(i)
        w = np.maximum(np.float32(0), np.minimum(x2[i], x2) - np.maximum(x1[i], x1))
        h = np.maximum(np.float32(0), np.minimum(y2[i], y2) - np.maximum(y1[i], y1))
        inter = w * h
        with np.errstate(invalid="ignore", divide="ignore"):  # degenerate boxes: 0/0 -> nan, kept
            iou = inter / ((areas[i] + areas) - inter)
        suppressed |= iou.astype(np.float64) > iou_threshold
    return np.asarray(keep, dtype=np.int64)


@njit_on_first_call(cache=True, nogil=True, error_model="numpy")
def _nms_sorted(boxes: np.ndarray, order: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy NMS over ``boxes`` visited in ``order``; returns kept indices (into ``boxes``)."""
    n = order.shape[0]
    areas = np.empty(boxes.shape[0], np.float32)
    for i in range(boxes.shape[0]):
        areas[i] = (boxes[i, 2] - boxes[i, 0]) * (boxes[i, 3] - boxes[i, 1])
    suppressed = np.zeros(n, np.bool_)
    keep = np.empty(n, np.int64)
    k = 0
    zero = np.float32(0)
    for a in range(n):
        if suppressed[a]:
            continue
        i = order[a]
        keep[k] = i
        k += 1
        ix1, iy1, ix2, iy2, iarea = boxes[i, 0], boxes[i, 1], boxes[i, 2], boxes[i, 3], areas[i]
        for b in range(a + 1, n):
            if suppressed[b]:
                continue
            j = order[b]
            w = max(zero, min(ix2, boxes[j, 2]) - max(ix1, boxes[j, 0]))
            h = max(zero, min(iy2, boxes[j, 3]) - max(iy1, boxes[j, 1]))
            inter = w * h
            iou = inter / ((iarea + areas[j]) - inter)
            if np.float64(iou) > iou_threshold:
                suppressed[b] = True
    return keep[:k]


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Fast greedy NMS (numba), identical to `nms_ref`.

    Args:
        boxes (ndarray[N, 4]): ``(x1, y1, x2, y2)``.
        scores (ndarray[N]): scores.
        iou_threshold: IoU above which a lower-scored box is discarded.

    Returns:
        ndarray[K] int64: kept indices by score descending.
    """
    boxes, scores = _as_boxes(boxes, scores, "nms")
    if len(boxes) == 0:
        return np.zeros(0, np.int64)
    return _nms_sorted(boxes, score_order(scores), float(iou_threshold))


def offset_boxes(boxes: np.ndarray, class_ids: np.ndarray) -> np.ndarray:
    """torchvision's coordinate trick: shift each class by ``class * (max_coordinate + 1)`` (float32) so
    boxes of different classes never overlap.

    Args:
        boxes (ndarray[N, 4]): ``(x1, y1, x2, y2)``.
        class_ids (ndarray[N]): integer class of each box.

    Returns:
        ndarray[N, 4] float32: shifted boxes.
    """
    boxes = np.ascontiguousarray(boxes, dtype=np.float32)
    if len(boxes) == 0:
        return boxes
    offsets = np.asarray(class_ids).astype(np.float32) * (boxes.max() + np.float32(1))
    return boxes + offsets[:, None]


def batched_nms(
    boxes: np.ndarray,
    scores: np.ndarray,
    class_ids: np.ndarray,
    iou_threshold: float,
    *,
    reference: bool = False,
) -> np.ndarray:
    """Class-aware NMS: boxes of different classes never suppress each other.

    Args:
        boxes (ndarray[N, 4]): ``(x1, y1, x2, y2)``.
        scores (ndarray[N]): scores.
        class_ids (ndarray[N]): integer class of each box.
        iou_threshold: IoU above which a lower-scored box of the same class is discarded.
        reference: run `nms_ref` instead of the numba path.

    Returns:
        ndarray[K] int64: kept indices by score descending.
    """
    class_ids = np.asarray(class_ids)
    if class_ids.shape != (len(boxes),):
        raise ValueError(f"batched_nms: class_ids has shape {class_ids.shape}, expected ({len(boxes)},)")
    fn = nms_ref if reference else nms
    return fn(offset_boxes(boxes, class_ids), scores, iou_threshold)
