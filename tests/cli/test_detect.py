"""`streamyolox detect` against the official pipeline's reference output for dog.jpg."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import shared_file


def box_iou(a: list[float], b: list[float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def run_detect(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "streamyolox", "detect", *args],
                          capture_output=True, text=True, timeout=300)


def assert_matches_reference(found: list[dict], reference: list[dict]) -> None:
    assert len(found) == len(reference), (found, reference)
    for ref in reference:
        same = [d for d in found if d["class_id"] == ref["class_id"]]
        assert same, f"class {ref['class_name']} missing"
        best = max(same, key=lambda d: box_iou(d["bbox"], ref["bbox"]))
        assert box_iou(best["bbox"], ref["bbox"]) >= 0.95
        assert abs(best["score"] - ref["score"]) <= 0.01
        assert best["class_name"] == ref["class_name"]


@pytest.mark.parametrize("weights", ["yolox_nano.pth", "yolox_nano.onnx"])
@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_detect_reproduces_official_reference(tmp_path: Path, dog_jpg: Path, weights: str, backend: str) -> None:
    reference = json.loads(shared_file("reference", "dog_yolox_nano_detections.json").read_text())
    out = tmp_path / "dets.jsonl"
    result = run_detect(str(dog_jpg), "--weights", str(shared_file("weights", weights)), "--backend", backend,
                        "--output", str(out))
    assert result.returncode == 0, result.stderr
    (record,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert (record["width"], record["height"]) == (768, 576)
    assert_matches_reference(record["detections"], reference["detections"])


def test_detect_directories_globs_and_bad_inputs(tmp_path: Path, dog_jpg: Path, nano_pth: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    shutil.copy(dog_jpg, images / "a.jpg")
    shutil.copy(dog_jpg, images / "b.jpg")
    (images / "broken.jpg").write_text("this is not an image")
    out = tmp_path / "dets.jsonl"
    save = tmp_path / "annotated"
    result = run_detect(str(images), str(tmp_path / "nothing-*.png"), str(tmp_path / "missing.jpg"),
                        "--weights", str(nano_pth), "--output", str(out), "--save", str(save))
    assert result.returncode == 1
    assert "broken.jpg: not a readable image, skipped" in result.stderr
    assert "missing.jpg: no such file" in result.stderr
    assert "nothing-*.png: no such file" in result.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [Path(r["image"]).name for r in records] == ["a.jpg", "b.jpg"]
    assert records[0]["detections"] == records[1]["detections"]
    import cv2

    drawn = cv2.imread(str(save / "a.jpg"))
    original = cv2.imread(str(dog_jpg))
    assert drawn.shape == original.shape and np.abs(drawn.astype(int) - original).max() > 100


def test_detect_missing_weights_is_one_line(tmp_path: Path, dog_jpg: Path) -> None:
    result = run_detect(str(dog_jpg), "--weights", str(tmp_path / "nope.pth"))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "nope.pth" in lines[0], result.stderr
