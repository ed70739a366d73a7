"""`streamyolox eval` against pycocotools run directly on the detections JSON it writes."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from streamyolox.classes import COCO_CLASSES
from streamyolox.cli import main
from trainer.data import load_data
from trainer.evaluate import coco_score


@pytest.fixture()
def dog_dataset(tmp_path: Path, dog_jpg: Path, official_dog: dict) -> Path:
    """dog.jpg with the official detections above 0.5 as ground truth (COCO ids 1..80, sparse use)."""
    shutil.copy(dog_jpg, tmp_path / "dog.jpg")
    anns = []
    for det in official_dog["detections"]:
        if det["score"] > 0.5:
            x1, y1, x2, y2 = det["bbox"]
            anns.append({"id": len(anns) + 1, "image_id": 7, "category_id": det["class_id"] + 1,
                         "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1), "iscrowd": 0})
    coco = {"images": [{"id": 7, "file_name": "dog.jpg", "width": 768, "height": 576}], "annotations": anns,
            "categories": [{"id": i + 1, "name": n} for i, n in enumerate(COCO_CLASSES)]}
    path = tmp_path / "instances_dog.json"
    path.write_text(json.dumps(coco))
    return path


@pytest.fixture()
def official_dog() -> dict:
    from tests.conftest import shared_file

    return json.loads(shared_file("reference", "dog_yolox_nano_detections.json").read_text())


def _pycocotools(ann: Path, dets: Path) -> np.ndarray:
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(ann))
        ev = COCOeval(gt, gt.loadRes(str(dets)), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats


def test_eval_equals_pycocotools_on_written_detections(dog_dataset: Path, nano_pth: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "dets.json"
    assert main(["eval", "--data", str(dog_dataset), "--weights", str(nano_pth), "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    direct = _pycocotools(dog_dataset, out)
    assert f"mAP@[.5:.95] {direct[0]:.4f}" in printed and f"mAP@.5 {direct[1]:.4f}" in printed
    assert direct[1] > 0.95  # the ground truth is what this model found at 416
    dets = json.loads(out.read_text())
    assert {d["category_id"] for d in dets} >= {17, 2, 3}  # dog, bicycle, car (COCO ids)
    data = load_data(dog_dataset)
    ours = coco_score(data.gt_dict(), dets, [7], data.class_names, data.category_ids)
    np.testing.assert_allclose(ours.stats, direct)
    assert set(ours.per_class) == {"dog", "bicycle", "car"}
    assert np.mean(list(ours.per_class.values())) == pytest.approx(direct[0])


def test_no_detections_scores_zero() -> None:
    gt = {"images": [{"id": 1, "width": 10, "height": 10}], "categories": [{"id": 1, "name": "a"}],
          "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 4, 4], "area": 16,
                           "iscrowd": 0}]}
    result = coco_score(gt, [], [1], ["a"], [1])
    assert result.map == 0.0 and result.per_class == {"a": 0.0}
