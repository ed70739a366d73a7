"""nms_ref against cv2.dnn, nms (numba) and batched_nms against nms_ref, on random and real boxes."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from streamyolox.ops import batched_nms, nms, nms_ref
from streamyolox.ops.decode import _candidates

IOUS = (0.2, 0.45, 0.8)


def random_boxes(rng: np.random.Generator, n: int, scale: float = 100.0) -> tuple[np.ndarray, np.ndarray]:
    xy = rng.random((n, 2), dtype=np.float32) * scale
    wh = rng.random((n, 2), dtype=np.float32) * scale / 3 + 1
    return np.concatenate([xy, xy + wh], 1), rng.random(n, dtype=np.float32)


def boxes_with_iou(rng: np.random.Generator, n: int, iou: float) -> tuple[np.ndarray, np.ndarray]:
    """torchvision's test input: the last box has IoU barely above ``iou`` with the first."""
    boxes, scores = random_boxes(rng, n)
    boxes[-1] = boxes[0]
    x0, _, x1, _ = boxes[-1].tolist()
    iou += 1e-5
    boxes[-1, 2] += (x1 - x0) * (1 - iou) / iou
    return boxes, scores


def cv2_nms(boxes: np.ndarray, scores: np.ndarray, iou: float, classes: np.ndarray | None = None) -> np.ndarray:
    xywh = [(float(a), float(b), float(c - a), float(d - b)) for a, b, c, d in boxes]
    if classes is None:
        keep = cv2.dnn.NMSBoxes(xywh, scores.tolist(), 0.0, iou)
    else:
        keep = cv2.dnn.NMSBoxesBatched(xywh, scores.tolist(), classes.astype(int).tolist(), 0.0, iou)
    return np.asarray(keep, np.int64).reshape(-1)


def assert_same_keep(a: np.ndarray, b: np.ndarray, scores: np.ndarray) -> None:
    """Equal index lists; where scores tie, the order among ties may differ (torchvision's rule)."""
    if not np.array_equal(a, b):
        np.testing.assert_array_equal(np.sort(scores[a])[::-1], np.sort(scores[b])[::-1])
        np.testing.assert_array_equal(scores[a], scores[b])


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.mark.parametrize("iou", IOUS)
def test_ref_matches_cv2_random(iou: float, rng: np.random.Generator) -> None:
    for n in (1, 2, 50, 500):
        boxes, scores = random_boxes(rng, n)
        keep = nms_ref(boxes, scores, iou)
        assert keep.dtype == np.int64
        np.testing.assert_array_equal(keep, cv2_nms(boxes, scores, iou))
        assert (np.diff(scores[keep]) <= 0).all()


@pytest.mark.parametrize("iou", IOUS)
def test_fast_matches_ref_random(iou: float, rng: np.random.Generator) -> None:
    for n in (0, 1, 7, 300, 2000):
        boxes, scores = random_boxes(rng, n)
        np.testing.assert_array_equal(nms(boxes, scores, iou), nms_ref(boxes, scores, iou))


@pytest.mark.parametrize("iou", IOUS)
def test_suppresses_just_above_threshold(iou: float, rng: np.random.Generator) -> None:
    boxes, scores = boxes_with_iou(rng, 100, iou)
    for fn in (nms_ref, nms):
        keep = fn(boxes, scores, iou)
        assert not {0, 99} <= set(keep.tolist())
        np.testing.assert_array_equal(keep, cv2_nms(boxes, scores, iou))


def test_iou_exactly_threshold_is_kept() -> None:
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 20]], np.float32)  # IoU exactly 0.5
    scores = np.array([0.9, 0.8], np.float32)
    for fn in (nms_ref, nms):
        np.testing.assert_array_equal(fn(boxes, scores, 0.5), [0, 1])
        np.testing.assert_array_equal(fn(boxes, scores, 0.49), [0])


def test_ties_follow_input_order(rng: np.random.Generator) -> None:
    boxes, _ = random_boxes(rng, 400, scale=30)
    scores = rng.integers(1, 5, 400).astype(np.float32) / 4  # many exact ties
    for iou in IOUS:
        ref = nms_ref(boxes, scores, iou)
        np.testing.assert_array_equal(nms(boxes, scores, iou), ref)  # same stable order
        assert_same_keep(ref, cv2_nms(boxes, scores, iou), scores)


def test_degenerate_boxes_never_suppress(rng: np.random.Generator) -> None:
    # torchvision semantics (cv2 differs here): a zero-area box has IoU 0 (or 0/0) with everything.
    boxes, scores = random_boxes(rng, 400, scale=30)
    boxes[::17, 2:] = boxes[::17, :2]
    boxes[17] = boxes[0]  # two identical zero-area boxes: 0/0 is not > threshold
    for iou in IOUS:
        ref = nms_ref(boxes, scores, iou)
        np.testing.assert_array_equal(nms(boxes, scores, iou), ref)
        assert set(range(0, 400, 17)) <= set(ref.tolist())


@pytest.mark.parametrize("iou", IOUS)
def test_batched_matches_cv2(iou: float, rng: np.random.Generator) -> None:
    for n, k in ((1, 1), (60, 3), (800, 10)):
        boxes, scores = random_boxes(rng, n, scale=50)
        classes = rng.integers(0, k, n)
        keep = batched_nms(boxes, scores, classes, iou)
        np.testing.assert_array_equal(keep, batched_nms(boxes, scores, classes, iou, reference=True))
        np.testing.assert_array_equal(keep, cv2_nms(boxes, scores, iou, classes))
        # Per class, the result is plain NMS of that class's boxes.
        for c in np.unique(classes):
            idx = np.flatnonzero(classes == c)
            np.testing.assert_array_equal(np.sort(keep[classes[keep] == c]),
                                          np.sort(idx[nms_ref(boxes[idx], scores[idx], iou)]))


@pytest.mark.parametrize("iou", IOUS)
def test_real_yolox_boxes(iou: float, dog_pred: tuple[np.ndarray, float]) -> None:
    pred, _ = dog_pred
    boxes, scores, classes = _candidates(pred, np.float32(0.005))
    assert len(boxes) > 100
    ref = nms_ref(boxes, scores, iou)
    np.testing.assert_array_equal(nms(boxes, scores, iou), ref)
    assert_same_keep(ref, cv2_nms(boxes, scores, iou), scores)
    keep_b = batched_nms(boxes, scores, classes, iou)
    np.testing.assert_array_equal(keep_b, batched_nms(boxes, scores, classes, iou, reference=True))
    assert_same_keep(keep_b, cv2_nms(boxes, scores, iou, classes), scores)


def test_bad_shapes() -> None:
    with pytest.raises(ValueError, match="nms"):
        nms(np.zeros((3, 5)), np.zeros(3), 0.5)
    with pytest.raises(ValueError, match="nms_ref"):
        nms_ref(np.zeros((3, 4)), np.zeros(2), 0.5)
    with pytest.raises(ValueError, match="class_ids"):
        batched_nms(np.zeros((3, 4)), np.zeros(3), np.zeros(2), 0.5)
