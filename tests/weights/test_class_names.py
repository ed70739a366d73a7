"""Class names of models that do not record them: COCO's only for 80 classes, else class_0..class_{n-1}
with one warning. The 3-class model is the official nano with its classification head cut down to the
dog, bicycle and car rows, so on dog.jpg it must find the reference's dog, bicycle and car boxes, labelled
class_0, class_1 and class_2 (the COCO table would have called the dog "person")."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from streamyolox.classes import COCO_CLASSES
from streamyolox.detections import FrameMeta
from streamyolox.inference.detector import Detector
from streamyolox.inference.metadata import class_names_for
from streamyolox.model import build_model
from streamyolox.model.spec import ModelSpec
from streamyolox.ops import letterbox
from streamyolox.stages.nms import NmsStage
from streamyolox.stages.packet import Packet
from streamyolox.stages.testing import make_stage
from streamyolox.weights import load_model, save_checkpoint

KEEP = [16, 1, 2]  # COCO dog, bicycle, car -> classes 0, 1, 2 of the cut-down model
GENERIC = ("class_0", "class_1", "class_2")
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def three_class_pth(nano_pth: Path, tmp_path: Path) -> Path:
    """A bare `{"model": state_dict}` checkpoint with a 3-class head and no class names."""
    sd = torch.load(nano_pth, map_location="cpu", weights_only=True)["model"]
    for level in range(3):
        for part in ("weight", "bias"):
            key = f"head.cls_preds.{level}.{part}"
            sd[key] = sd[key][KEEP].clone()
    path = tmp_path / "three.pth"
    torch.save({"model": sd}, path)
    return path


@pytest.fixture(scope="module")
def reference(official_state_dicts: Path) -> list[dict]:
    ref = json.loads((official_state_dicts.parent / "dog_yolox_nano_detections.json").read_text())
    return ref["detections"]


def warnings_about(caplog: pytest.LogCaptureFixture, path: Path) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.levelno == logging.WARNING and str(path.resolve()) in r.getMessage()]


def test_names_resolved_once_with_one_warning(three_class_pth: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        names = [class_names_for(ModelSpec(weights=str(three_class_pth))) for _ in range(2)]
        loaded = load_model(three_class_pth)
    assert names == [GENERIC, GENERIC] and loaded.class_names == GENERIC
    warned = warnings_about(caplog, three_class_pth)
    assert len(warned) == 1 and "no class names for its 3 classes" in warned[0], warned


def top_per_class(dets: list[dict]) -> dict[int, dict]:
    best: dict[int, dict] = {}
    for d in dets:
        if d["class_id"] not in best or d["score"] > best[d["class_id"]]["score"]:
            best[d["class_id"]] = d
    return best


def assert_matches_reference(dets: list[dict], reference: list[dict]) -> None:
    assert {d["class_name"] for d in dets} <= set(GENERIC), dets
    mine, ref = top_per_class(dets), top_per_class(reference)
    for new_id, coco_id in enumerate(KEEP):
        got, want = mine[new_id], ref[coco_id]
        assert got["class_name"] == f"class_{new_id}"
        assert np.allclose(got["bbox"], want["bbox"], atol=2.0), (got, want)
        assert got["score"] == pytest.approx(want["score"], abs=0.01)


def test_detect_cli_labels_the_dog_class_0(three_class_pth: Path, dog_jpg: Path, tmp_path: Path,
                                           reference: list[dict]) -> None:
    out = tmp_path / "dets.jsonl"
    result = subprocess.run([sys.executable, "-m", "streamyolox", "detect", str(dog_jpg),
                             "--weights", str(three_class_pth), "--output", str(out)],
                            capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr
    assert_matches_reference(json.loads(out.read_text())["detections"], reference)
    assert result.stderr.count("no class names") == 1, result.stderr


def test_nms_stage_labels_the_dog_class_0(three_class_pth: Path, dog_jpg: Path, reference: list[dict]) -> None:
    import cv2

    spec = ModelSpec(weights=str(three_class_pth), backend="torch")
    image = cv2.imread(str(dog_jpg))
    tensor, ratio = letterbox(image, (416, 416))
    raw = Detector(spec).backend(tensor[None])[0]
    stage = make_stage(NmsStage, model=spec)
    stage.open()
    meta = FrameMeta("dog", 0, None, 0.0, image.shape[1], image.shape[0])
    (out,) = stage.process(Packet(meta, image, raw=raw, ratio=ratio))
    assert out.detections is not None
    assert_matches_reference(out.detections.to_json(), reference)


def test_project_checkpoint_names_of_the_wrong_count(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = save_checkpoint(tmp_path / "mine.pth", build_model("yolox-nano", 3), "yolox-nano",
                           ["cat", "hat", "bat"], (416, 416))
    ckpt = torch.load(path, weights_only=True)
    ckpt["streamyolox"]["class_names"] = ["cat", "hat"]
    torch.save(ckpt, path)
    with caplog.at_level(logging.WARNING):
        assert class_names_for(ModelSpec(weights=str(path))) == GENERIC
        assert load_model(path).class_names == GENERIC
    warned = warnings_about(caplog, path)
    assert len(warned) == 1 and "records 2 class names for its 3 classes" in warned[0], warned


def test_official_80_class_weights_keep_coco_without_a_warning(nano_pth: Path, nano_onnx: Path,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        for weights in (nano_pth, nano_onnx):
            assert class_names_for(ModelSpec(weights=str(weights))) == COCO_CLASSES
            assert load_model(weights).class_names == COCO_CLASSES
    assert not [r for r in caplog.records if "class names" in r.getMessage()]
