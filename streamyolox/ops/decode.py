"""YOLOX box decoding and postprocessing (score filter + class-aware NMS) into `Detections`.

Two forms of model output exist: the official ONNX export's raw form (``reg`` offsets, sigmoid obj/cls)
and the PyTorch eval form, already decoded to ``(cx, cy, w, h)`` input pixels. `decode_ref` turns the
first into the second; `postprocess` takes the decoded form, exactly as the official ``postprocess``
plus the demo's ``boxes /= ratio``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from streamyolox.detections import Detections
from streamyolox.ops.nms import nms_ref, offset_boxes

STRIDES = (8, 16, 32)


@lru_cache(maxsize=32)
def _grid_strides(input_size: tuple[int, int], strides: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    grids, strides_out = [], []
    for s in strides:
        hs, ws = math.ceil(input_size[0] / s), math.ceil(input_size[1] / s)
        yv, xv = np.meshgrid(np.arange(hs), np.arange(ws), indexing="ij")
        grids.append(np.stack((xv, yv), -1).reshape(-1, 2))
        strides_out.append(np.full(hs * ws, s))
    g = np.concatenate(grids).astype(np.float32)
    st = np.concatenate(strides_out).astype(np.float32)
    g.flags.writeable = False
    st.flags.writeable = False
    return g, st


def grid_strides(
    input_size: tuple[int, int], strides: Sequence[int] = STRIDES
) -> tuple[np.ndarray, np.ndarray]:
    """Anchor points of the YOLOX head, ordered stride 8, 16, 32, row-major (cached, read-only).

    Args:
        input_size: network input ``(h, w)``.
        strides: the head's strides.

    Returns:
        (grids ndarray[N, 2] float32 ``(x, y)`` cell indices, strides ndarray[N] float32).
    """
    return _grid_strides((int(input_size[0]), int(input_size[1])), tuple(int(s) for s in strides))


def decode_ref(raw: np.ndarray, input_size: tuple[int, int], strides: Sequence[int] = STRIDES) -> np.ndarray:
    """Decode the official ONNX-export output (raw ``reg``, sigmoid obj/cls) to ``(cx, cy, w, h)``.

    Args:
        raw (ndarray[B, N, 5 + C] or [N, 5 + C] float32): undecoded head output.
        input_size: network input ``(h, w)``.

    Returns:
        ndarray of the same shape, float32: ``xy = (reg_xy + grid) * stride``,
        ``wh = exp(reg_wh) * stride`` in input pixels, obj/cls unchanged.
    """
    raw = np.asarray(raw, dtype=np.float32)
    grids, st = grid_strides(input_size, strides)
    if raw.ndim not in (2, 3) or raw.shape[-2] != len(grids) or raw.shape[-1] < 6:
        raise ValueError(
            f"decode_ref: expected [B, {len(grids)}, 5+C] for input {tuple(input_size)}, got {raw.shape}"
        )
    out = raw.copy()
    out[..., 0:2] = (raw[..., 0:2] + grids) * st[:, None]
    out[..., 2:4] = np.exp(raw[..., 2:4]) * st[:, None]
    return out


def _check_pred(pred: np.ndarray, name: str) -> np.ndarray:
    pred = np.ascontiguousarray(pred, dtype=np.float32)
    if pred.ndim != 2 or pred.shape[1] < 6:
        raise ValueError(f"{name}: expected a decoded prediction [N, 5+C], got shape {pred.shape}")
    return pred


def _finish(
    boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, keep: np.ndarray, ratio: float,
    class_names: Sequence[str] | None,
) -> Detections:
    xyxy = boxes[keep] / np.float32(ratio)
    return Detections(xyxy, scores[keep], classes[keep], class_names=class_names)


def postprocess_ref(
    pred: np.ndarray,
    ratio: float,
    score_threshold: float = 0.25,
    iou_threshold: float = 0.45,
    class_agnostic: bool = False,
    class_names: Sequence[str] | None = None,
) -> Detections:
    """Reference postprocess in plain numpy, the official YOLOX semantics.

    ``score = obj * max(cls)``, ``class = argmax(cls)``, keep ``score >= score_threshold``, boxes
    ``cxcywh -> xyxy``, class-aware (or agnostic) NMS, boxes divided by ``ratio``.

    Args:
        pred (ndarray[N, 5 + C] float32): decoded prediction of one image.
        ratio: the letterbox scale ``r``.

    Returns:
        `Detections` in original-image pixels, by score descending.
    """
    pred = _check_pred(pred, "postprocess_ref")
    cls = pred[:, 5:]
    class_conf = cls.max(axis=1)
    classes = cls.argmax(axis=1)
    scores = pred[:, 4] * class_conf
    mask = scores >= np.float32(score_threshold)
    p = pred[mask]
    half = p[:, 2:4] / np.float32(2)
    boxes = np.concatenate([p[:, 0:2] - half, p[:, 0:2] + half], axis=1)
    scores, classes = scores[mask], classes[mask]
    nms_boxes = boxes if class_agnostic else offset_boxes(boxes, classes)
    keep = nms_ref(nms_boxes, scores, iou_threshold)
    return _finish(boxes, scores, classes, keep, ratio, class_names)


def _candidates(pred: np.ndarray, score_threshold: np.float32) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Score filter: (xyxy boxes [K, 4], scores [K], classes [K]) of the rows over threshold, in row order,
    the same values as `postprocess_ref`'s.

    Only rows whose objectness times the largest class probability anywhere reaches the threshold are
    looked at further: with objectness and probabilities >= 0 (sigmoids), every row's score
    ``obj * max(cls)`` is at most that product (float32 rounding is monotonic), so no row that passes is
    skipped. On the 720p street clip that is ~110 of 3,549 rows, and the class maximum of the others, most
    of the reference's time, is never taken. Other values (negative, NaN) get every row looked at.
    """
    obj, cls = pred[:, 4], pred[:, 5:]
    bound = cls.max() if cls.size else np.float32(0)
    if len(obj) and obj.min() >= 0 and bound >= 0:
        p = pred[np.flatnonzero(obj * bound >= score_threshold)]
    else:
        p = pred
    classes = p[:, 5:].argmax(axis=1)
    scores = p[:, 4] * p[np.arange(len(p)), 5 + classes]
    keep = scores >= score_threshold
    p, scores, classes = p[keep], scores[keep], classes[keep]
    half = p[:, 2:4] / np.float32(2)
    return np.concatenate([p[:, 0:2] - half, p[:, 0:2] + half], axis=1), scores, classes


def postprocess(
    pred: np.ndarray,
    ratio: float,
    score_threshold: float = 0.25,
    iou_threshold: float = 0.45,
    class_agnostic: bool = False,
    class_names: Sequence[str] | None = None,
) -> Detections:
    """Fast postprocess in numpy, identical to `postprocess_ref`: the score filter skips rows that cannot
    pass (`_candidates`), then greedy NMS in numpy.

    Hand-written on purpose, without numba: numba's kernels took 0.20 ms a street frame against 0.30 here,
    but importing numba and loading its cached kernels cost 0.76 s of CPU and ~80 MB of RSS in each
    process, so it only pays back after ~7,800 frames (AMD EPYC, numba 0.68; the reference takes 0.59).

    Args:
        pred (ndarray[N, 5 + C] float32): decoded prediction of one image, ``(cx, cy, w, h)`` input pixels.
        ratio: the letterbox scale ``r``.
        score_threshold: minimum ``obj * cls`` score kept.
        iou_threshold: NMS IoU threshold.
        class_agnostic: NMS across classes instead of per class.
        class_names: label table stored in the result.

    Returns:
        `Detections` in original-image pixels, by score descending.
    """
    pred = _check_pred(pred, "postprocess")
    boxes, scores, classes = _candidates(pred, np.float32(score_threshold))
    keep = nms_ref(boxes if class_agnostic else offset_boxes(boxes, classes), scores, iou_threshold)
    return _finish(boxes, scores, classes, keep, ratio, class_names)


def postprocess_batch(
    preds: np.ndarray,
    ratios: float | Sequence[float],
    score_threshold: float = 0.25,
    iou_threshold: float = 0.45,
    class_agnostic: bool = False,
    class_names: Sequence[str] | None = None,
) -> list[Detections]:
    """`postprocess` over a batch.

    Args:
        preds (ndarray[B, N, 5 + C] float32): decoded predictions.
        ratios: one letterbox scale per image, or one for all.

    Returns:
        list of B `Detections`.
    """
    preds = np.asarray(preds)
    if preds.ndim != 3:
        raise ValueError(f"postprocess_batch: expected [B, N, 5+C], got shape {preds.shape}")
    if isinstance(ratios, (int, float, np.floating)):
        ratios = [float(ratios)] * len(preds)
    if len(ratios) != len(preds):
        raise ValueError(f"postprocess_batch: {len(preds)} predictions but {len(ratios)} ratios")
    return [
        postprocess(p, r, score_threshold, iou_threshold, class_agnostic, class_names)
        for p, r in zip(preds, ratios)
    ]
