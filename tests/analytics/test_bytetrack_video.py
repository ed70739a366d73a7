"""ByteTracker on real detections: yolox-nano (the shared weights) over the 720p street pan."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from streamyolox.analytics.bytetrack import ByteTracker
from streamyolox.detections import Detections
from streamyolox.inference.detector import Detector
from streamyolox.model.spec import ModelSpec


@pytest.fixture(scope="module")
def street_detections(street_720p: Path, nano_pth: Path) -> list[Detections]:
    # score 0.1: ByteTrack takes every box above its low threshold, the low ones feed its second stage
    detector = Detector(ModelSpec(name="yolox-nano", weights=str(nano_pth)), score_threshold=0.1)
    with av.open(str(street_720p)) as container:
        return [detector(frame.to_ndarray(format="bgr24")) for frame in container.decode(video=0)]


def track(frames: list[Detections], hide: tuple[int, int] | None = None) -> list[np.ndarray]:
    """Ids per frame; with `hide`, frames [start, end) lose every detection in the left half (a pillar
    in front of the camera)."""
    tracker = ByteTracker()
    out = []
    for i, d in enumerate(frames):
        if hide is not None and hide[0] <= i < hide[1]:
            d = d[(d.xyxy[:, 0] + d.xyxy[:, 2]) / 2 > 640]
        out.append(tracker.update(d.xyxy, d.scores, d.class_ids).ids)
    return out


def test_ids_stay_few_and_long_on_the_street_pan(street_detections: list[Detections]) -> None:
    ids = track(street_detections)
    assert len(ids) == 300
    confirmed = np.concatenate(ids)
    unique = set(confirmed[confirmed >= 0].tolist())
    most_high = max(int((d.scores > 0.5).sum()) for d in street_detections)
    most_any = max(len(d) for d in street_detections)
    lifetimes = sorted(int((confirmed == i).sum()) for i in unique)
    print(f"{len(unique)} ids; most detections in a frame: {most_any} (> 0.5: {most_high}); "
          f"frames per id: {lifetimes}")
    # measured: 9 ids, at most 10 high-score (26 in all) detections in a frame, 6 ids over 280+ frames
    assert len(unique) <= 2 * most_high <= 2 * most_any
    assert sum(n >= 250 for n in lifetimes) >= 5, "the objects in view all along keep one id"
    for frame_ids in ids:
        assert len(set(frame_ids[frame_ids >= 0].tolist())) == int((frame_ids >= 0).sum()), "one box per id"


def test_ids_survive_a_short_occlusion(street_detections: list[Detections]) -> None:
    """Frames 150-155 lose the left half's detections: those objects come back under their ids, and
    from frame 156 on the ids equal those of the run without the occlusion (measured: all equal)."""
    clean, occluded = track(street_detections), track(street_detections, hide=(150, 156))
    before = street_detections[149]
    left = (before.xyxy[:, 0] + before.xyxy[:, 2]) / 2 <= 640
    hidden_ids = set(occluded[149][left].tolist()) - {-1}
    after = set(np.concatenate(occluded[156:160]).tolist())
    assert len(hidden_ids) >= 3, "the test needs confirmed objects in the hidden half"
    assert hidden_ids <= after, f"ids {sorted(hidden_ids - after)} did not come back"
    agree = np.concatenate([a == b for a, b in zip(clean[156:200], occluded[156:200])])
    assert agree.mean() >= 0.95, f"only {agree.mean():.0%} of the later ids equal the clean run's"
