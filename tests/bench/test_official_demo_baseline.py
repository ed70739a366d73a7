"""The official-demo baseline computes what the official demo computes (checked against our independent
references) and reports a positive frame rate."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import torch

from streamyolox.ops import letterbox_ref
from streamyolox.ops.decode import postprocess_ref

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "official_demo_baseline.py"


@pytest.fixture(scope="module")
def demo():
    spec = importlib.util.spec_from_file_location("official_demo_baseline", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_preproc_and_postprocess_match_the_references(demo, nano_pth: Path, dog_jpg: Path) -> None:
    img = cv2.imread(str(dog_jpg))
    x, r = demo.val_transform(img, (416, 416))
    ref_x, ref_r = letterbox_ref(img, (416, 416))
    np.testing.assert_array_equal(x, ref_x)
    assert r == ref_r
    model = demo.load_official(nano_pth)
    with torch.no_grad():
        pred = model(torch.from_numpy(x)[None])
    expected = postprocess_ref(pred[0].numpy(), 1.0, score_threshold=0.3, iou_threshold=0.3, class_agnostic=True)
    out = demo.postprocess(pred.clone(), 80, 0.3, 0.3)[0]
    assert out is not None and len(out) == len(expected) >= 3  # dog, bicycle, truck/car
    np.testing.assert_allclose(out[:, :4].numpy(), expected.xyxy, atol=1e-3)
    np.testing.assert_allclose((out[:, 4] * out[:, 5]).numpy(), expected.scores, atol=1e-5)
    np.testing.assert_array_equal(out[:, 6].numpy().astype(int), expected.class_ids)


def test_video_loop_reports_fps_and_saves_the_video(demo, nano_pth: Path, street_720p: Path,
                                                    tmp_path: Path) -> None:
    out = tmp_path / "demo.json"
    rc = demo.main(["--path", str(street_720p), "--ckpt", str(nano_pth), "--max-frames", "3",
                    "--save-dir", str(tmp_path / "vis"), "--json", str(out)])
    assert rc == 0
    row = json.loads(out.read_text())["results"][0]
    assert row["suite"] == "pipeline" and row["name"] == "official-demo"
    assert row["fps"] > 0 and row["extra"]["frames"] == 3 and row["params"]["fuse"] is False
    with av.open(str(tmp_path / "vis" / street_720p.name)) as saved:
        frames = list(saved.decode(video=0))
    assert len(frames) == 3 and (frames[0].width, frames[0].height) == (1280, 720)
