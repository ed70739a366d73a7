"""grid_strides/decode_ref against the head's layout, postprocess against the official reference output."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from streamyolox.detections import Detections
from streamyolox.ops import decode_ref, grid_strides, postprocess, postprocess_batch, postprocess_ref
from tests.conftest import shared_file


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area = lambda x: np.prod(x[:, 2:] - x[:, :2], axis=1)  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None, :] - inter)


def random_pred(rng: np.random.Generator, n: int, c: int = 80) -> np.ndarray:
    pred = np.empty((n, 5 + c), np.float32)
    pred[:, :2] = rng.random((n, 2)) * 416
    pred[:, 2:4] = rng.random((n, 2)) * 120 + 2
    pred[:, 4] = rng.random(n) ** 2
    pred[:, 5:] = rng.random((n, c)) ** 4
    return pred


def assert_same(a: Detections, b: Detections) -> None:
    np.testing.assert_array_equal(a.xyxy, b.xyxy)
    np.testing.assert_array_equal(a.scores, b.scores)
    np.testing.assert_array_equal(a.class_ids, b.class_ids)


@pytest.mark.parametrize(("size", "n"), [((416, 416), 3549), ((640, 640), 8400), ((384, 640), 5040),
                                         ((300, 500), 38 * 63 + 19 * 32 + 10 * 16)])
def test_grid_strides_layout(size: tuple[int, int], n: int) -> None:
    grids, strides = grid_strides(size)
    assert grids.shape == (n, 2) and strides.shape == (n,)
    assert grids.dtype == strides.dtype == np.float32
    assert grid_strides(size)[0] is grids  # cached
    w8 = -(-size[1] // 8)
    np.testing.assert_array_equal(grids[:w8 + 2], [[x, 0] for x in range(w8)] + [[0, 1], [1, 1]])
    first16 = int(np.argmax(strides == 16))
    assert first16 == w8 * -(-size[0] // 8)
    np.testing.assert_array_equal(grids[first16], [0, 0])
    assert list(np.unique(strides)) == [8, 16, 32]
    with pytest.raises(ValueError):
        grids[0, 0] = 1


def test_decode_ref_formula() -> None:
    raw = np.zeros((2, 3549, 7), np.float32)
    raw[0, 2704] = [0.5, -0.25, np.log(2.0), 0.0, 0.9, 0.1, 0.7]  # first stride-16 anchor, cell (0, 0)
    raw[1, 52 * 3 + 5] = [0.0, 0.0, 0.0, np.log(3.0), 0.2, 0.3, 0.4]  # stride 8, cell (x=5, y=3)
    out = decode_ref(raw, (416, 416))
    np.testing.assert_allclose(out[0, 2704], [8.0, -4.0, 32.0, 16.0, 0.9, 0.1, 0.7], rtol=1e-6)
    np.testing.assert_allclose(out[1, 52 * 3 + 5], [40.0, 24.0, 8.0, 24.0, 0.2, 0.3, 0.4], rtol=1e-6)
    np.testing.assert_array_equal(decode_ref(raw[0], (416, 416)), out[0])
    with pytest.raises(ValueError, match="decode_ref"):
        decode_ref(raw, (640, 640))


def test_dog_matches_official_reference(dog_pred: tuple[np.ndarray, float]) -> None:
    ref = json.loads(Path(shared_file("reference", "dog_yolox_nano_detections.json")).read_text())
    pred, ratio = dog_pred
    for fn in (postprocess_ref, postprocess):
        dets = fn(pred, ratio, ref["score_threshold"], ref["iou_threshold"])
        want = ref["detections"]
        assert dets.names() == [d["class_name"] for d in want]
        np.testing.assert_allclose(dets.scores, [d["score"] for d in want], atol=0.01)
        ious = box_iou(dets.xyxy, np.array([d["bbox"] for d in want], np.float32)).diagonal()
        assert ious.min() >= 0.95


def test_matches_cv2_batched_nms(dog_pred: tuple[np.ndarray, float]) -> None:
    """An independent pipeline: numpy scores + cv2.dnn.NMSBoxesBatched."""
    pred, ratio = dog_pred
    for thr, iou in ((0.05, 0.45), (0.01, 0.2), (0.01, 0.8)):
        scores = pred[:, 4] * pred[:, 5:].max(1)
        idx = np.flatnonzero(scores >= thr)
        cx, cy, w, h = pred[idx, :4].T
        xywh = np.stack([cx - w / 2, cy - h / 2, w, h], 1).tolist()
        keep = np.asarray(cv2.dnn.NMSBoxesBatched(
            xywh, scores[idx].tolist(), pred[idx, 5:].argmax(1).tolist(), 0.0, iou)).reshape(-1)
        dets = postprocess(pred, ratio, thr, iou)
        np.testing.assert_allclose(dets.scores, scores[idx][keep], rtol=1e-6)
        np.testing.assert_array_equal(dets.class_ids, pred[idx[keep], 5:].argmax(1))


@pytest.mark.parametrize("agnostic", [False, True])
@pytest.mark.parametrize(("thr", "iou"), [(0.25, 0.45), (0.01, 0.2), (0.05, 0.8)])
def test_fast_equals_reference(agnostic: bool, thr: float, iou: float,
                               dog_pred: tuple[np.ndarray, float]) -> None:
    rng = np.random.default_rng(7)
    for pred, ratio in (dog_pred, (random_pred(rng, 3549), 0.37), (random_pred(rng, 8400, 3), 1.0)):
        ref = postprocess_ref(pred, ratio, thr, iou, agnostic)
        assert_same(postprocess(pred, ratio, thr, iou, agnostic), ref)
        assert (np.diff(ref.scores) <= 0).all() and (ref.scores >= np.float32(thr)).all()


def test_agnostic_merges_classes(dog_pred: tuple[np.ndarray, float]) -> None:
    pred, ratio = dog_pred
    aware, agnostic = postprocess(pred, ratio), postprocess(pred, ratio, class_agnostic=True)
    # dog/cat and car/truck overlap: class-aware keeps both, agnostic only the best of each pair.
    assert len(aware) == 5 and agnostic.names() == ["dog", "bicycle", "car"]


def test_empty_and_batch(dog_pred: tuple[np.ndarray, float]) -> None:
    pred, ratio = dog_pred
    assert len(postprocess(pred, ratio, score_threshold=0.99)) == 0
    assert len(postprocess_ref(pred, ratio, score_threshold=0.99)) == 0
    batch = postprocess_batch(np.stack([pred, pred * np.float32(0.5)]), [ratio, ratio * 2])
    assert_same(batch[0], postprocess(pred, ratio))
    assert_same(batch[1], postprocess(pred * np.float32(0.5), ratio * 2))
    names = ["a"] * 80
    assert postprocess_batch(pred[None], ratio, class_names=names)[0].class_names == names
    with pytest.raises(ValueError, match="ratios"):
        postprocess_batch(pred[None], [1.0, 2.0])
    with pytest.raises(ValueError, match="postprocess"):
        postprocess(pred[None], 1.0)


def test_fast_equals_reference_on_odd_values(dog_pred: tuple[np.ndarray, float]) -> None:
    """The score filter's shortcut (objectness times the largest class probability bounds every score) holds
    for sigmoid outputs; probabilities above 1, negative values and NaN must not make it skip a row."""
    pred, ratio = dog_pred
    above = pred.copy()
    above[:, 5:] *= np.float32(3)  # scores up to 3x: rows with objectness below the threshold now pass
    negative = pred.copy()  # rows with negative objectness and probabilities: positive scores, obj * bound < 0
    flipped = np.argsort(pred[:, 4])[-20:]
    negative[flipped, 4] *= np.float32(-1)
    negative[flipped, 5:] = -np.abs(negative[flipped, 5:]) - np.float32(0.5)
    assert (negative[flipped, 4] * negative[:, 5:].max() < 0.3).all()
    assert (negative[flipped, 4] * negative[flipped, 5:].max(1) >= 0.3).any()
    nan = pred.copy()
    nan[7, 12] = np.nan
    for odd in (above, negative, nan):
        for agnostic in (False, True):
            assert_same(postprocess(odd, ratio, 0.3, 0.45, agnostic), postprocess_ref(odd, ratio, 0.3, 0.45, agnostic))
    assert len(postprocess_ref(above, ratio, 0.3)) > len(postprocess_ref(pred, ratio, 0.3))
    empty = np.zeros((0, 85), np.float32)
    assert len(postprocess(empty, 1.0)) == 0 == len(postprocess(np.zeros((5, 6), np.float32), 1.0))
