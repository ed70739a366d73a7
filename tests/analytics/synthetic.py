"""Synthetic tracked detections for the line and zone tests."""

from __future__ import annotations

import numpy as np

from streamyolox.detections import Detections


def frame_dets(objs: list[tuple[int, float, float, int]]) -> Detections:
    """One box per (track_id, x, y, class_id), 20x40 px with its bottom-center anchor at (x, y)."""
    if not objs:
        return Detections(np.zeros((0, 4)), [], [], np.zeros(0, np.int64))
    boxes = [[x - 10, y - 40, x + 10, y] for _, x, y, _ in objs]
    return Detections(boxes, [0.9] * len(objs), [c for *_, c in objs], [t for t, *_ in objs])
