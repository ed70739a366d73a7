"""annotate(): boxes in class colours with labels, nothing drawn outside them, input untouched."""

from __future__ import annotations

import numpy as np
import pytest

from streamyolox.classes import COCO_CLASSES
from streamyolox.detections import Detections
from streamyolox.draw import DrawStyle, annotate, class_color, label_text, text_color


def _frame(h: int = 360, w: int = 640) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_box_edges_take_the_class_colour_and_the_rest_is_untouched() -> None:
    frame = _frame()
    before = frame.copy()
    dets = Detections([[100, 120, 300, 300]], [0.9], [2])
    out = annotate(frame, dets, labels=False)
    np.testing.assert_array_equal(frame, before)  # copy=True leaves the input alone
    color = np.array(class_color(2), np.uint8)
    np.testing.assert_array_equal(out[200, 100], color)  # left edge
    np.testing.assert_array_equal(out[300, 200], color)  # bottom edge
    changed = (out != before).any(axis=2)
    t = DrawStyle.for_frame(360, 640).thickness + 2  # line width plus anti-aliasing
    ring = np.zeros_like(changed)
    ring[120 - t:300 + t + 1, 100 - t:300 + t + 1] = True
    ring[120 + t:300 - t + 1, 100 + t:300 - t + 1] = False
    assert changed.any() and not (changed & ~ring).any()


def test_label_is_a_filled_box_with_readable_text_above_the_box() -> None:
    frame = np.zeros((360, 640, 3), np.uint8)
    out = annotate(frame, Detections([[200, 150, 400, 300]], [0.87], [0]))
    color, ink = np.array(class_color(0)), np.array(text_color(class_color(0)))
    above = out[:150]
    ys, xs = np.nonzero((above == color).all(axis=2))
    assert ys.max() >= 145 and 195 <= xs.min() <= 205  # sits on the box's top-left corner
    assert ys.max() - ys.min() >= 12 and xs.max() - xs.min() >= 50  # room for "person 0.87"
    label = above[ys.min():ys.max() + 1, xs.min():xs.max() + 1].reshape(-1, 3).astype(int)
    share_fill = (label == color).all(axis=1).mean()
    share_ink = (np.abs(label - ink).sum(axis=1) < 60).mean()
    assert share_fill > 0.5 and share_ink > 0.05


def test_label_of_a_box_at_the_top_edge_stays_inside_the_frame() -> None:
    frame = np.zeros((200, 300, 3), np.uint8)
    out = annotate(frame, Detections([[250, 0, 299, 50]], [0.5], [5]))
    assert (out[0:15, 200:300] == np.array(class_color(5), np.uint8)).all(axis=2).any()


def test_empty_none_and_non_finite_detections_draw_nothing() -> None:
    frame = _frame()
    np.testing.assert_array_equal(annotate(frame, None), frame)
    np.testing.assert_array_equal(annotate(frame, Detections.empty()), frame)
    nan_box = Detections([[np.nan, 1, 5, 5]], [0.9], [0])
    np.testing.assert_array_equal(annotate(frame, nan_box), frame)


def test_boxes_outside_the_frame_are_clipped_not_an_error() -> None:
    out = annotate(_frame(), Detections([[-500, -500, 5000, 5000], [600, 300, 900, 700]], [0.9, 0.4], [0, 1]))
    assert out.shape == (360, 640, 3)


def test_copy_false_draws_in_place() -> None:
    frame = np.zeros((100, 100, 3), np.uint8)
    out = annotate(frame, Detections([[10, 10, 50, 50]], [0.9], [0]), copy=False)
    assert out is frame and frame.any()


def test_label_text_has_track_id_class_and_score() -> None:
    dets = Detections([[0, 0, 1, 1]], [0.8749], [16], track_ids=[7])
    assert label_text(dets, 0) == "#7 dog 0.87"
    assert label_text(Detections([[0, 0, 1, 1]], [0.5], [0]), 0) == "person 0.50"


def test_class_colours_are_stable_distinct_and_readable() -> None:
    colors = [class_color(k) for k in range(len(COCO_CLASSES))]
    assert colors == [class_color(k) for k in range(len(COCO_CLASSES))]
    assert len(set(colors)) == len(COCO_CLASSES)
    assert text_color((255, 255, 255)) == (0, 0, 0) and text_color((0, 0, 0)) == (255, 255, 255)


def test_style_scales_with_frame_size() -> None:
    small, hd = DrawStyle.for_frame(240, 320), DrawStyle.for_frame(1080, 1920)
    assert small.font_scale < hd.font_scale and small.thickness < hd.thickness


def test_rejects_a_frame_that_is_not_bgr_uint8() -> None:
    with pytest.raises(ValueError, match="BGR uint8"):
        annotate(np.zeros((10, 10), np.uint8), Detections.empty())
