"""End to end: the shipped demo pipeline over the 720p street clip, frame by frame against `Detector`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import av
import numpy as np

from streamyolox.analytics.bytetrack import iou_matrix
from streamyolox.inference.detector import Detector
from streamyolox.model.spec import ModelSpec
from tests.conftest import detect_from_planes

REPO = Path(__file__).resolve().parents[2]


def run_pipeline(path: Path, *overrides: str, timeout: float = 600) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "streamyolox", "run", str(path), "--no-dashboard"]
    for item in overrides:
        cmd += ["--set", item]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=REPO)


def run_demo(tmp_path: Path, street_720p: Path, nano_pth: Path, *overrides: str) -> list[dict]:
    """The demo pipeline over the street clip: its records, one per frame, checked for order and size."""
    out = tmp_path / "street.jsonl"
    result = run_pipeline(REPO / "pipelines" / "demo.yaml", f"stages.source.url={street_720p}",
                          f"model.weights={nano_pth}", f"stages.json.path={out}", *overrides)
    assert result.returncode == 0, result.stderr[-2000:]
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 300
    assert [r["frame"] for r in records] == list(range(300))
    assert {(r["width"], r["height"]) for r in records} == {(1280, 720)}
    assert sum(len(r["detections"]) for r in records) > 300  # a busy street: real detections on real frames
    return records


def assert_same(found: list[dict], expected: list[dict], frame: int) -> None:
    assert len(found) == len(expected), f"frame {frame}"
    for got, want in zip(found, expected):
        assert got["class_id"] == want["class_id"]
        np.testing.assert_allclose(got["bbox"], want["bbox"], atol=0.02)
        assert abs(got["score"] - want["score"]) < 1e-3


def test_street_clip_one_line_per_frame_equal_to_detect(tmp_path: Path, street_720p: Path, nano_pth: Path) -> None:
    """With BGR frames (the official pixels), every frame equals `Detector` on PyAV's BGR frame."""
    records = run_demo(tmp_path, street_720p, nano_pth, "stages.source.pixel_format=bgr24")
    detector = Detector(ModelSpec(name="yolox-nano", weights=str(nano_pth)))
    with av.open(str(street_720p)) as container:
        for record, frame in zip(records, container.decode(video=0)):
            assert_same(record["detections"], detector(frame.to_ndarray(format="bgr24")).to_json(), record["frame"])


def _matches(found: list[dict], expected: list[dict]) -> list[tuple[float, float]]:
    """(box difference in px, score difference) of each expected detection that `found` has (same class,
    IoU >= 0.5, greedy by IoU)."""
    pairs, taken = [], set()
    for want in expected:
        best, best_iou = None, 0.5
        for j, got in enumerate(found):
            if j not in taken and got["class_id"] == want["class_id"]:
                iou = iou_matrix(np.array([got["bbox"]], np.float32), np.array([want["bbox"]], np.float32))[0, 0]
                best, best_iou = (j, iou) if iou >= best_iou else (best, best_iou)
        if best is not None:
            taken.add(best)
            diff = float(np.abs(np.subtract(found[best]["bbox"], want["bbox"])).max())
            pairs.append((diff, abs(found[best]["score"] - want["score"])))
    return pairs


def test_street_clip_from_yuv_planes(tmp_path: Path, street_720p: Path, nano_pth: Path) -> None:
    """The default placement hands the letterbox the decoder's planes (`pixel_format: auto` -> yuv420p):
    every frame equals the model on `letterbox_yuv420` of PyAV's planes, and the detections stay close to
    the BGR path's. Measured (AMD EPYC): 3,905 of the BGR path's 3,965 detections found again (98.5%), boxes
    1.10 px apart on average, scores 0.0034 in the median. For scale: +-1 random noise on the BGR model
    input moves the boxes by 0.73 px on average (the nano model is that sensitive on this busy street)."""
    records = run_demo(tmp_path, street_720p, nano_pth)
    detector = Detector(ModelSpec(name="yolox-nano", weights=str(nano_pth)))
    pairs, total = [], 0
    with av.open(str(street_720p)) as container:
        for record, frame in zip(records, container.decode(video=0)):
            assert_same(record["detections"], detect_from_planes(detector, frame), record["frame"])
            official = detector(frame.to_ndarray(format="bgr24")).to_json()
            pairs += _matches(record["detections"], official)
            total += len(official)
    box, score = np.array(pairs).T
    assert len(pairs) / total > 0.95, (len(pairs), total)
    assert box.mean() < 2.0 and np.median(score) < 0.01, (box.mean(), np.median(score))
