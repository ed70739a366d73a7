"""GPU postprocess kernels on numba's CUDA simulator (run by test_cuda_sim.py in a subprocess with
NUMBA_ENABLE_CUDASIM=1, so the simulator never leaks into other tests). Sizes stay small: it is slow."""

from __future__ import annotations

import os

import numpy as np
import pytest

from streamyolox.detections import Detections
from streamyolox.ops import decode_ref, postprocess_ref
from tests.ops.test_decode import random_pred

pytestmark = pytest.mark.skipif(os.environ.get("NUMBA_ENABLE_CUDASIM") != "1",
                                reason="run through test_cuda_sim.py (needs NUMBA_ENABLE_CUDASIM=1)")


def assert_same(a: Detections, b: Detections) -> None:
    assert len(a) == len(b)
    np.testing.assert_array_equal(a.xyxy, b.xyxy)
    np.testing.assert_array_equal(a.scores, b.scores)
    np.testing.assert_array_equal(a.class_ids, b.class_ids)


def test_real_dog_prediction(dog_pred: tuple[np.ndarray, float]) -> None:
    from streamyolox.ops import postprocess_gpu

    pred, ratio = dog_pred
    got = postprocess_gpu(pred, ratio, 0.02, 0.45)
    assert len(got) > 20  # several mask blocks' worth of candidates went through NMS
    assert_same(got, postprocess_ref(pred, ratio, 0.02, 0.45))


def test_raw_form_decoded_in_kernel(dog_raw: tuple[np.ndarray, float]) -> None:
    from streamyolox.ops.gpu_postprocess import PostprocessGPU

    raw, ratio = dog_raw
    got = PostprocessGPU(0.25, 0.45, raw_input_size=(416, 416))(raw[0], ratio)
    ref = postprocess_ref(decode_ref(raw, (416, 416))[0], ratio)
    np.testing.assert_array_equal(got.class_ids, ref.class_ids)
    np.testing.assert_array_equal(got.scores, ref.scores)
    np.testing.assert_allclose(got.xyxy, ref.xyxy, rtol=1e-5, atol=1e-3)  # float32 exp differs by ulps


@pytest.mark.parametrize(("iou", "agnostic"), [(0.2, False), (0.45, True), (0.8, False)])
def test_random_with_ties(iou: float, agnostic: bool) -> None:
    from streamyolox.ops import postprocess_batch_gpu

    rng = np.random.default_rng(3)
    preds = np.stack([random_pred(rng, 240, 3) for _ in range(2)])
    preds[:, :, 4] = rng.integers(1, 5, (2, 240)) / 4  # exact score ties across anchors
    preds[:, :, 5:] = 1.0
    preds[0, ::9, 2:4] = 0.0  # zero-area boxes
    preds[1, 7] = preds[1, 3]  # an exact duplicate
    got = postprocess_batch_gpu(preds, [0.5, 1.0], 0.3, iou, agnostic)
    for g, p, r in zip(got, preds, (0.5, 1.0)):
        ref = postprocess_ref(p, r, 0.3, iou, agnostic)
        assert len(ref) > 64  # spans mask blocks
        assert_same(g, ref)


def test_nothing_over_threshold() -> None:
    from streamyolox.ops import postprocess_gpu

    pred = random_pred(np.random.default_rng(0), 50, 2)
    assert len(postprocess_gpu(pred, 1.0, score_threshold=2.0)) == 0
    with pytest.raises(ValueError, match="postprocess_gpu"):
        postprocess_gpu(pred[:, :5], 1.0)
