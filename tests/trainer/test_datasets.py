"""Validating loaders: COCO JSON and YOLO txt folders, broken annotations reported, fixed or skipped."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from tests.trainer.synthetic import CLASS_NAMES, write_coco, write_yolo
from trainer.data import load_data


def test_coco_contiguous_classes_keep_names_and_boxes(tmp_path: Path) -> None:
    ann = write_coco(tmp_path, 3, category_ids=(3, 7, 11))
    coco = json.loads(ann.read_text())
    data = load_data(ann)
    assert data.class_names == list(CLASS_NAMES) and data.category_ids == [3, 7, 11]
    rec = data.records[0]
    raw = [a for a in coco["annotations"] if a["image_id"] == rec.image_id]
    x, y, w, h = raw[0]["bbox"]
    np.testing.assert_allclose(rec.boxes[0], [x, y, x + w, y + h])
    assert rec.classes[0] == [3, 7, 11].index(raw[0]["category_id"])
    assert data.report.counts == {}


def test_coco_broken_annotations_are_counted_and_fixed(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ann = write_coco(tmp_path, 4)
    coco = json.loads(ann.read_text())
    (tmp_path / "images" / coco["images"][3]["file_name"]).unlink()  # missing file
    first = coco["images"][0]
    extra = [
        {"id": 900, "image_id": first["id"], "category_id": 99, "bbox": [1, 1, 5, 5]},  # unknown category
        {"id": 901, "image_id": first["id"], "category_id": 3, "bbox": [150, 150, 30, 30]},  # clipped
        {"id": 902, "image_id": first["id"], "category_id": 3, "bbox": [500, 500, 10, 10]},  # outside
        {"id": 903, "image_id": first["id"], "category_id": 3, "bbox": [1, 2, 3]},  # malformed
        {"id": 904, "image_id": 12345, "category_id": 3, "bbox": [1, 1, 5, 5]},  # unknown image
        {"id": 905, "image_id": first["id"], "category_id": 3, "bbox": [1, 1, 5, 5], "iscrowd": 1},
    ]
    coco["annotations"] += extra
    ann.write_text(json.dumps(coco))
    with caplog.at_level(logging.INFO, logger="trainer.data"):
        data = load_data(ann)
    counts = data.report.counts
    assert counts["missing image files (image skipped)"] == 1
    assert counts["annotations with an unknown category (skipped)"] == 1
    assert counts["boxes partly outside the image (clipped)"] == 1
    assert counts["boxes empty or outside the image (dropped)"] == 1
    assert counts["annotations with a malformed bbox (skipped)"] == 1
    assert counts["annotations of an unknown image id (skipped)"] == 1
    assert len(data) == 3
    rec = data.records[0]
    assert rec.boxes.max() <= 160 and any(np.allclose(b, [150, 150, 160, 160]) for b in rec.boxes)
    summary = [r.message for r in caplog.records if "images," in r.message]
    assert summary and "3 images" in summary[-1] and "1 missing image files" in summary[-1]


@pytest.mark.parametrize("content, message", [
    (None, "not found"), ("{not json", "not a JSON file"), ('{"images": []}', "no 'categories' list"),
])
def test_coco_bad_file_is_one_line_error(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "ann.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ValueError, match=message) as info:
        load_data(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_yolo_folder_with_broken_labels(tmp_path: Path) -> None:
    yaml_path = write_yolo(tmp_path, 3, "train")
    labels = sorted((tmp_path / "labels" / "train").glob("*.txt"))
    good = labels[0].read_text()
    labels[0].write_text(good + "7 0.5 0.5 0.1 0.1\nnot a line\n0 0.95 0.5 0.2 0.2\n")
    labels[1].unlink()
    data = load_data(yaml_path, "train")
    counts = data.report.counts
    assert counts["labels with an unknown class id (skipped)"] == 1
    assert counts["malformed label lines (skipped)"] == 1
    assert counts["boxes partly outside the image (clipped)"] == 1
    assert counts["images without a label file (no objects)"] == 1
    assert data.class_names == list(CLASS_NAMES)
    assert len(data) == 3 and len(data.records[1].boxes) == 0
    _, cx, cy, w, h = (float(v) for v in good.splitlines()[0].split())
    np.testing.assert_allclose(data.records[0].boxes[0], np.array([cx - w / 2, cy - h / 2, cx + w / 2,
                                                                   cy + h / 2]) * 160, atol=1e-3)
    np.testing.assert_allclose(data.records[0].boxes[-1], [136, 64, 160, 96], atol=1e-3)
    assert load_data(yaml_path, "val") is None


def test_yolo_root_folder_and_gt_dict(tmp_path: Path) -> None:
    write_yolo(tmp_path, 2, "train")
    write_yolo(tmp_path, 2, "val", seed=5)
    (tmp_path / "classes.txt").write_text("\n".join(CLASS_NAMES))
    val = load_data(tmp_path, "val")
    assert val is not None and val.class_names == list(CLASS_NAMES)
    gt = val.gt_dict()
    assert len(gt["images"]) == 2 and len(gt["annotations"]) == val.num_boxes
    assert [c["id"] for c in gt["categories"]] == [0, 1, 2]


def test_not_a_dataset(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a dataset"):
        load_data(tmp_path / "nothing.txt")
