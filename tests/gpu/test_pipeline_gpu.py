"""`streamyolox run` with model.device=cuda (CuPy letterbox, torch CUDA, numba.cuda NMS) vs the CPU `Detector`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import SHARED
from tests.gpu.conftest import nano_weights, need

pytestmark = pytest.mark.gpu
REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("pipeline", ["demo.yaml", "gpu_to_json.yaml"])
def test_gpu_pipeline_matches_cpu_detector(tmp_path: Path, pipeline: str) -> None:
    """demo.yaml: every stage its own process (arrays cross to the host between them); gpu_to_json.yaml:
    the GPU stages in one worker (arrays stay on the device)."""
    for stack in ("cupy", "torch", "numba"):
        need(stack)
    av = pytest.importorskip("av", reason="PyAV not installed (carry its wheel to the device)")
    pytest.importorskip("zmq", reason="pyzmq not installed (carry its wheel to the device)")
    weights, clip = nano_weights(), SHARED / "media" / "street_pan_720p.mp4"
    if weights is None or not clip.is_file():
        pytest.skip("yolox_nano.pth or street_pan_720p.mp4 not found")
    out = tmp_path / "gpu.jsonl"
    cmd = [sys.executable, "-m", "streamyolox", "run", str(REPO / "pipelines" / pipeline), "--no-dashboard",
           "--set", "model.device=cuda", "--set", f"model.weights={weights}", "--set", f"stages.source.url={clip}",
           "--set", f"stages.json.path={out}", "--set", "stages.detect.batch=8"]
    metrics = Path(os.environ.get("OUT", tmp_path)) / f"gpu_pipeline_{pipeline.split('.')[0]}.json"
    cmd += ["--metrics-json", str(metrics)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=240, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 300

    from streamyolox.inference.detector import Detector
    from streamyolox.model.spec import ModelSpec

    cpu = Detector(ModelSpec(name="yolox-nano", weights=str(weights), backend="torch"))
    mismatched = 0
    with av.open(str(clip)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i % 10:
                continue
            want = cpu(frame.to_ndarray(format="bgr24"))
            got = records[i]["detections"]
            strong = want[want.scores > 0.35]  # away from the threshold, where fp noise cannot flip a box
            for k in range(len(strong)):
                match = [d for d in got if d["class_id"] == int(strong.class_ids[k])
                         and np.abs(np.array(d["bbox"]) - strong.xyxy[k]).max() < 2.0]
                mismatched += not match
    assert mismatched == 0
