"""OpenVINO gives onnxruntime's detections: raw outputs within measured margins, the same final detections,
and the official reference for dog.jpg."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from streamyolox.detections import Detections
from streamyolox.inference import make_backend
from streamyolox.inference.backends import Backend
from streamyolox.model.spec import ModelSpec
from tests.cli.test_detect import assert_matches_reference
from tests.conftest import shared_file
from tests.ops.test_decode import box_iou

pytest.importorskip("openvino", reason="openvino is not installed (pip install 'streamyolox[cpu-fast]')")


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One export cache for the module: both backends of every test read the same export."""
    path = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("STREAMYOLOX_CACHE", str(path))
        yield path


@pytest.fixture(scope="module")
def pair(nano_pth: Path, cache: Path) -> tuple[Backend, Backend]:
    spec = ModelSpec(weights=str(nano_pth))
    ort = make_backend(ModelSpec(**{**spec.__dict__, "backend": "onnxruntime"}), threads=2, spin=False)
    ov = make_backend(ModelSpec(**{**spec.__dict__, "backend": "openvino"}), threads=2)
    return ort, ov


def assert_same_detections(found: Detections, expected: Detections) -> None:
    assert len(found) == len(expected) > 0
    overlap = box_iou(expected.xyxy, found.xyxy)
    for i in range(len(expected)):
        j = int(np.argmax(np.where(found.class_ids == expected.class_ids[i], overlap[i], -1)))
        assert found.class_ids[j] == expected.class_ids[i]
        assert overlap[i, j] >= 0.99
        assert abs(float(found.scores[j]) - float(expected.scores[i])) <= 1e-3


def test_runs_the_onnxruntime_export_at_fp32(pair: tuple[Backend, Backend], cache: Path) -> None:
    ort, ov = pair
    assert ov.name == "openvino" and ov.onnx_path == ort.onnx_path  # type: ignore[attr-defined]
    assert len(list((cache / "onnx").glob("*.onnx"))) == 1
    compiled = ov.compiled  # type: ignore[attr-defined]
    # bf16 (OpenVINO's default on CPUs with AVX512-BF16/AMX) moved scores by 0.09: fp32 must be what runs
    assert str(compiled.get_property("INFERENCE_PRECISION_HINT")) == "<Type: 'float32'>"
    assert compiled.get_property("INFERENCE_NUM_THREADS") == 2
    assert compiled.get_property("ENABLE_CPU_PINNING") is False


def test_raw_outputs_and_detections_match_onnxruntime(pair: tuple[Backend, Backend],
                                                      images: list[np.ndarray]) -> None:
    from streamyolox.ops import letterbox, postprocess

    ort, ov = pair
    tensors, ratios = zip(*(letterbox(img, (416, 416)) for img in images))
    batch = np.stack(tensors)
    a, b = ort(batch), ov(batch)  # dynamic batch: all five at once
    assert a.shape == b.shape == (5, 3549, 85)
    np.testing.assert_array_equal(ov(batch[1:2]), ov(batch)[1:2])  # one frame alone, the same numbers
    # measured on AMD EPYC: scores 2.8e-5; boxes 4.5e-4 px where a class scores > 0.01, 0.023 px at most on
    # a 352 px box of an anchor scoring 3e-6 (relative 7e-5)
    assert np.abs(a[..., 4:] - b[..., 4:]).max() < 1e-4
    scored = (a[..., 4:5] * a[..., 5:]).max(-1) > 0.01
    assert np.abs(a[..., :4] - b[..., :4])[scored].max() < 1e-2
    np.testing.assert_allclose(b[..., :4], a[..., :4], rtol=1e-3, atol=1e-2)
    for i, ratio in enumerate(ratios):
        expected, found = (postprocess(p[i], ratio, score_threshold=0.25, iou_threshold=0.45) for p in (a, b))
        assert_same_detections(found, expected)


def test_detector_reproduces_the_official_reference(nano_pth: Path, dog_jpg: Path, cache: Path) -> None:
    import cv2

    from streamyolox.inference.detector import Detector

    reference = json.loads(shared_file("reference", "dog_yolox_nano_detections.json").read_text())
    detector = Detector(ModelSpec(weights=str(nano_pth), backend="openvino"), threads=2)
    assert detector.backend.name == "openvino"
    assert_matches_reference(detector(cv2.imread(str(dog_jpg))).to_json(), reference["detections"])


def test_pipeline_with_openvino_gives_the_onnxruntime_detections(tmp_path: Path, street_720p: Path,
                                                                 nano_pth: Path) -> None:
    from tests.pipelines.test_demo_pipeline import REPO, run_pipeline

    outputs = {}
    for backend in ("onnxruntime", "openvino"):
        out = outputs[backend] = tmp_path / f"{backend}.jsonl"
        result = run_pipeline(REPO / "pipelines" / "demo.yaml", f"stages.source.url={street_720p}",
                              "stages.source.stride=15", f"model.weights={nano_pth}", f"model.backend={backend}",
                              f"stages.json.path={out}", "stages.detect.batch=2")
        assert result.returncode == 0, result.stderr[-2000:]
    ort, ov = ([json.loads(line) for line in outputs[b].read_text().splitlines()] for b in outputs)
    assert [r["frame"] for r in ov] == [r["frame"] for r in ort] == list(range(0, 300, 15))

    def dets(record: dict) -> Detections:
        d = record["detections"]
        return Detections(np.array([x["bbox"] for x in d]).reshape(-1, 4), [x["score"] for x in d],
                          [x["class_id"] for x in d])

    for a, b in zip(ort, ov):
        assert_same_detections(dets(b), dets(a))
