"""`Detections`: validation, selection, JSON round trip, merge."""

from __future__ import annotations

import json

import numpy as np
import pytest

from streamyolox.detections import Detections, FrameMeta, frame_record


def sample() -> Detections:
    return Detections(
        xyxy=[[0, 0, 10, 10], [5, 5, 20, 25], [1.234, 2.345, 3.456, 4.567]],
        scores=[0.9, 0.5, 0.3],
        class_ids=[16, 1, 2],
    )


def test_fields_are_typed_arrays() -> None:
    d = sample()
    assert d.xyxy.dtype == np.float32 and d.xyxy.shape == (3, 4)
    assert d.scores.dtype == np.float32 and d.class_ids.dtype == np.int64
    assert len(d) == 3


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"xyxy": np.zeros((2, 4)), "scores": [0.1], "class_ids": [0, 1]}, "scores 1"),
        ({"xyxy": np.zeros((2, 4)), "scores": [0.1, 0.2], "class_ids": [0]}, "class_ids 1"),
        ({"xyxy": np.zeros((1, 4)), "scores": [0.1], "class_ids": [0], "track_ids": [1, 2]}, "track_ids"),
    ],
)
def test_mismatched_lengths_raise(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Detections(**kwargs)


def test_mask_and_index_selection() -> None:
    d = sample()
    high = d[d.scores > 0.4]
    assert len(high) == 2 and list(high.class_ids) == [16, 1]
    one = d[1]
    assert len(one) == 1 and one.names() == ["bicycle"]


def test_json_round_trip_and_names() -> None:
    d = sample()
    items = d.to_json()
    assert items[0] == {"bbox": [0.0, 0.0, 10.0, 10.0], "score": 0.9, "class_id": 16, "class_name": "dog"}
    assert items[2]["bbox"] == [1.23, 2.35, 3.46, 4.57]
    back = Detections.from_json(json.loads(json.dumps(items)))
    np.testing.assert_allclose(back.xyxy, d.xyxy, atol=0.006)
    assert list(back.class_ids) == list(d.class_ids)


def test_custom_class_names_and_tracks() -> None:
    d = Detections([[0, 0, 1, 1]], [0.7], [1], track_ids=[42], class_names=("cat", "hat"))
    assert d.to_json()[0]["class_name"] == "hat"
    assert d.to_json()[0]["track_id"] == 42
    assert Detections([[0, 0, 1, 1]], [0.7], [5], class_names=("a",)).names() == ["5"]


def test_merge_and_empty() -> None:
    merged = Detections.merge([sample(), Detections.empty(), sample()[0]])
    assert len(merged) == 4
    assert len(Detections.empty()) == 0 and Detections.empty().to_json() == []


def test_frame_record_schema() -> None:
    meta = FrameMeta(stream="cam1", frame=7, pts=0.233, time=1700000000.5, width=1280, height=720)
    record = frame_record(meta, sample())
    assert set(record) == {"stream", "frame", "pts", "time", "width", "height", "detections"}
    assert record["stream"] == "cam1" and len(record["detections"]) == 3
    assert frame_record(meta, None)["detections"] == []
