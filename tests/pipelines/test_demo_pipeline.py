"""End to end: the shipped demo pipeline over the 720p street clip, frame by frame against `Detector`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import av
import numpy as np

from streamyolox.inference.detector import Detector
from streamyolox.model.spec import ModelSpec

REPO = Path(__file__).resolve().parents[2]


def run_pipeline(path: Path, *overrides: str, timeout: float = 600) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "streamyolox", "run", str(path), "--no-dashboard"]
    for item in overrides:
        cmd += ["--set", item]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=REPO)


def test_street_clip_one_line_per_frame_equal_to_detect(tmp_path: Path, street_720p: Path, nano_pth: Path) -> None:
    out = tmp_path / "street.jsonl"
    result = run_pipeline(REPO / "pipelines" / "demo.yaml", f"stages.source.url={street_720p}",
                          f"model.weights={nano_pth}", f"stages.json.path={out}")
    assert result.returncode == 0, result.stderr[-2000:]
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 300
    assert [r["frame"] for r in records] == list(range(300))
    assert {(r["width"], r["height"]) for r in records} == {(1280, 720)}

    detector = Detector(ModelSpec(name="yolox-nano", weights=str(nano_pth)))
    with av.open(str(street_720p)) as container:
        for record, frame in zip(records, container.decode(video=0)):
            expected = detector(frame.to_ndarray(format="bgr24")).to_json()
            found = record["detections"]
            assert len(found) == len(expected), f"frame {record['frame']}"
            for got, want in zip(found, expected):
                assert got["class_id"] == want["class_id"]
                np.testing.assert_allclose(got["bbox"], want["bbox"], atol=0.02)
                assert abs(got["score"] - want["score"]) < 1e-3
    assert sum(len(r["detections"]) for r in records) > 300  # a busy street: real detections on real frames
