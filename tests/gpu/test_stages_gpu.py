"""The built-in stage chain on CUDA (CuPy letterbox -> torch CUDA -> numba.cuda decode + NMS) vs the CPU chain."""

from __future__ import annotations

import numpy as np
import pytest

from streamyolox.detections import FrameMeta
from streamyolox.model.spec import ModelSpec
from streamyolox.stages.letterbox import LetterboxStage
from streamyolox.stages.nms import NmsStage
from streamyolox.stages.packet import Packet
from streamyolox.stages.testing import run_stage
from streamyolox.stages.yolox import YoloxStage
from tests.gpu.conftest import nano_weights, need, test_image

pytestmark = pytest.mark.gpu


def chain(spec: ModelSpec, image: np.ndarray, n: int = 4) -> list[Packet]:
    h, w = image.shape[:2]
    packets = [Packet(FrameMeta(frame=i, width=w, height=h), frame=image) for i in range(n)]
    boxed = run_stage(LetterboxStage, packets, model=spec)
    return run_stage(NmsStage, run_stage(YoloxStage, boxed, {"batch": n}, model=spec), model=spec)


def test_gpu_stage_chain_matches_cpu() -> None:
    need("cupy")
    need("torch")
    need("numba")
    weights = nano_weights()
    if weights is None:
        pytest.skip("yolox_nano.pth not found (STREAMYOLOX_WEIGHTS_DIR or ../shared/weights)")
    image = test_image()
    cpu = chain(ModelSpec(name="yolox-nano", weights=str(weights), device="cpu", backend="torch"), image)
    gpu = chain(ModelSpec(name="yolox-nano", weights=str(weights), device="cuda", backend="torch"), image)
    for a, b in zip(cpu, gpu):
        da, db = a.detections, b.detections
        assert da is not None and db is not None and len(da) == len(db) > 0
        np.testing.assert_array_equal(da.class_ids, db.class_ids)
        np.testing.assert_allclose(da.xyxy, db.xyxy, atol=1.0)  # letterbox within 1 grey level -> sub-pixel boxes
        np.testing.assert_allclose(da.scores, db.scores, atol=5e-3)
