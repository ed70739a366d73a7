"""numba.cuda postprocess (filter + bitmask NMS) against postprocess_ref on the device."""

from __future__ import annotations

import numpy as np
import pytest

from streamyolox.detections import Detections
from streamyolox.ops import decode_ref, grid_strides, postprocess_ref
from tests.ops.test_decode import random_pred

pytestmark = pytest.mark.gpu


def assert_same(a: Detections, b: Detections) -> None:
    assert len(a) == len(b)
    np.testing.assert_array_equal(a.xyxy, b.xyxy)
    np.testing.assert_array_equal(a.scores, b.scores)
    np.testing.assert_array_equal(a.class_ids, b.class_ids)


@pytest.fixture(autouse=True)
def _numba_cuda() -> None:
    from tests.gpu.conftest import need

    need("numba")


@pytest.mark.parametrize("n", [3549, 8400])
@pytest.mark.parametrize(("thr", "iou"), [(0.25, 0.45), (0.05, 0.2), (0.01, 0.8), (0.001, 0.45)])
@pytest.mark.parametrize("agnostic", [False, True])
def test_random_predictions(n: int, thr: float, iou: float, agnostic: bool) -> None:
    from streamyolox.ops import postprocess_gpu

    pred = random_pred(np.random.default_rng(n), n)
    ref = postprocess_ref(pred, 0.65, thr, iou, agnostic)
    assert_same(postprocess_gpu(pred, 0.65, thr, iou, agnostic), ref)


def test_ties_duplicates_degenerate() -> None:
    from streamyolox.ops.gpu_postprocess import PostprocessGPU

    rng = np.random.default_rng(5)
    pred = random_pred(rng, 8400, 4)
    pred[:, 4] = rng.integers(1, 9, 8400) / 8
    pred[:, 5:] = 1.0
    pred[::11, 2:4] = 0.0
    pred[100:200] = pred[0]
    run = PostprocessGPU(0.2, 0.5)  # buffers reused across calls
    for _ in range(2):
        assert_same(run(pred, 1.0), postprocess_ref(pred, 1.0, 0.2, 0.5))


def test_torch_cuda_tensor_and_batch() -> None:
    from tests.gpu.conftest import need

    need("torch")
    import torch

    from streamyolox.ops import postprocess_batch_gpu, postprocess_gpu

    rng = np.random.default_rng(9)
    preds = np.stack([random_pred(rng, 3549) for _ in range(4)])
    tensor = torch.from_numpy(preds).cuda()
    ratios = [0.5, 1.0, 0.37, 2.0]
    for got, p, r in zip(postprocess_batch_gpu(tensor, ratios, 0.1), preds, ratios):
        assert_same(got, postprocess_ref(p, r, 0.1))
    half = tensor[0].half()  # fp16 inference output: compared on the same (rounded) values
    assert_same(postprocess_gpu(half, 0.5, 0.1), postprocess_ref(half.float().cpu().numpy(), 0.5, 0.1))


def test_raw_form_decoded_in_kernel() -> None:
    from streamyolox.ops.gpu_postprocess import PostprocessGPU

    rng = np.random.default_rng(2)
    raw = random_pred(rng, len(grid_strides((416, 416))[0]))
    raw[:, :4] = rng.normal(0, 1, (len(raw), 4))
    got = PostprocessGPU(0.05, 0.45, raw_input_size=(416, 416))(raw, 0.5)
    ref = postprocess_ref(decode_ref(raw, (416, 416)), 0.5, 0.05, 0.45)
    np.testing.assert_array_equal(got.class_ids, ref.class_ids)
    np.testing.assert_array_equal(got.scores, ref.scores)
    np.testing.assert_allclose(got.xyxy, ref.xyxy, rtol=1e-5, atol=1e-3)
