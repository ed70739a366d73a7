"""letterbox, yolox, nms and json stages through the mock context (no sockets, no processes)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from streamyolox.detections import FrameMeta
from streamyolox.inference.detector import Detector
from streamyolox.model.spec import ModelSpec
from streamyolox.stages.json_sink import JsonSink
from streamyolox.stages.letterbox import LetterboxStage
from streamyolox.stages.nms import NmsStage
from streamyolox.stages.packet import Packet
from streamyolox.stages.testing import make_stage, run_stage
from streamyolox.stages.yolox import YoloxStage


def packet_of(image: np.ndarray, index: int = 0) -> Packet:
    h, w = image.shape[:2]
    return Packet(meta=FrameMeta(stream="s", frame=index, time=0.0, width=w, height=h), frame=image)


def test_letterbox_stage_matches_reference(dog_jpg: Path) -> None:
    from streamyolox.ops import letterbox_ref

    image = cv2.imread(str(dog_jpg))
    (out,) = run_stage(LetterboxStage, [packet_of(image)], {"size": 416})
    expected, ratio = letterbox_ref(image, (416, 416))
    assert out.ratio == pytest.approx(ratio)
    np.testing.assert_array_equal(out.image, expected)


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_stage_chain_equals_detector(dog_jpg: Path, nano_pth: Path, backend: str) -> None:
    spec = ModelSpec(name="yolox-nano", weights=str(nano_pth), backend=backend)
    image = cv2.imread(str(dog_jpg))
    frames = [packet_of(image, i) for i in range(3)]
    boxed = run_stage(LetterboxStage, frames, model=spec)
    predicted = run_stage(YoloxStage, boxed, {"batch": 3}, model=spec)
    (first, *_) = run_stage(NmsStage, predicted, model=spec)
    expected = Detector(spec)(image)
    assert first.detections is not None and len(first.detections) == len(expected) == 5
    np.testing.assert_allclose(first.detections.xyxy, expected.xyxy, atol=1e-2)
    np.testing.assert_array_equal(first.detections.class_ids, expected.class_ids)
    assert first.raw is None and first.image is None  # dropped once used: edges stay light


def test_yolox_batch_matches_single(dog_jpg: Path, nano_pth: Path) -> None:
    spec = ModelSpec(name="yolox-nano", weights=str(nano_pth))
    image = cv2.imread(str(dog_jpg))
    boxed = run_stage(LetterboxStage, [packet_of(image, 0), packet_of(image[:, ::-1].copy(), 1)], model=spec)
    stage = make_stage(YoloxStage, {"batch": 2}, model=spec)
    stage.open()
    batched = [p.raw for p in stage.process_batch([Packet(p.meta, image=p.image) for p in boxed])]
    single = [stage.process(Packet(p.meta, image=p.image))[0].raw for p in boxed]
    for a, b in zip(batched, single):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-3)


def test_nms_rejects_bad_threshold() -> None:
    # the rule lives in the Config: Python users get it when they build one, before any stage opens
    with pytest.raises(ValueError, match=r"^score_threshold: expected a number in \[0, 1\], got 1.5$"):
        make_stage(NmsStage, {"score_threshold": 1.5})


def test_json_sink_writes_one_record_per_frame(tmp_path: Path) -> None:
    from streamyolox.detections import Detections

    path = tmp_path / "sub" / "out.jsonl"
    packets = [packet_of(np.zeros((4, 6, 3), np.uint8), i) for i in range(3)]
    packets[1].detections = Detections([[1, 2, 3, 4]], [0.5], [0])
    assert run_stage(JsonSink, packets, {"path": str(path)}) == []
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["frame"] for r in lines] == [0, 1, 2]
    assert lines[1]["detections"][0]["class_name"] == "person" and lines[0]["detections"] == []


def test_json_sink_unwritable_path_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    stage = make_stage(JsonSink, {"path": str(blocker / "out.jsonl")})
    with pytest.raises(ValueError, match=r"json.path: cannot write .*out.jsonl"):
        stage.open()


def test_nms_stage_equals_the_reference_without_numba() -> None:
    """The stage's postprocess is numpy (numba's import and kernel load cost 0.76 s of CPU and ~80 MB in its
    process, more than it saved on a 900-frame clip): the reference's detections, and numba never imported."""
    code = """
import sys
import numpy as np
from streamyolox.detections import FrameMeta
from streamyolox.ops import postprocess_ref
from streamyolox.stages.nms import NmsStage
from streamyolox.stages.packet import Packet
from streamyolox.stages.testing import make_stage

rng = np.random.default_rng(3)
pred = np.zeros((3549, 85), np.float32)
pred[:, :2] = rng.uniform(0, 416, (3549, 2))
pred[:, 2:4] = rng.uniform(8, 120, (3549, 2))
pred[:, 4] = rng.uniform(0, 1, 3549)
pred[:, 5:] = rng.uniform(0, 1, (3549, 80)) ** 4
stage = make_stage(NmsStage, {"score_threshold": 0.3})
stage.open()
dets = stage.process(Packet(meta=FrameMeta(stream="s", frame=0, time=0.0, width=640, height=480),
                            raw=pred.copy(), ratio=0.65))[0].detections
ref = postprocess_ref(pred, 0.65, score_threshold=0.3)
assert len(dets) > 5
np.testing.assert_array_equal(dets.xyxy, ref.xyxy)
np.testing.assert_array_equal(dets.scores, ref.scores)
np.testing.assert_array_equal(dets.class_ids, ref.class_ids)
assert "numba" not in sys.modules, "numba was imported"
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
