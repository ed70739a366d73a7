"""ByteTracker on synthetic trajectories whose ids are known exactly."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pytest

from streamyolox.analytics.bytetrack import ByteTracker, ByteTrackOptions, TrackState

Det = tuple[float, float, float, int]  # cx, cy, score, class


def box(cx: float, cy: float, w: float = 40.0, h: float = 80.0) -> list[float]:
    return [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]


def step(tracker: ByteTracker, dets: Iterable[Det]) -> list[int]:
    """One frame: returns the id given to each detection, in input order."""
    dets = list(dets)
    xyxy = np.array([box(cx, cy) for cx, cy, _, _ in dets]).reshape(-1, 4)
    out = tracker.update(xyxy, [d[2] for d in dets], [d[3] for d in dets])
    assert out.ids.dtype == np.int64 and len(out.ids) == len(dets)
    return out.ids.tolist()


def test_a_moving_object_is_confirmed_on_its_second_frame_and_keeps_id_1() -> None:
    tracker = ByteTracker()
    ids = [step(tracker, [(100 + 6 * f, 200, 0.9, 0)]) for f in range(20)]
    assert ids == [[-1]] + [[1]] * 19
    (track,) = tracker.tracks
    assert track.mean[4] == pytest.approx(6.0, abs=0.2), "the filter learned the velocity (6 px/frame)"


def test_two_objects_crossing_paths_keep_their_ids() -> None:
    """A goes right, B goes left a little lower; while their boxes overlap the detector sees only the
    front one (A), for 5 frames; B comes out on the other side."""
    tracker = ByteTracker()
    seen_b_hidden = 0
    for f in range(60):
        a, b = (60 + 8 * f, 200), (540 - 8 * f, 210)
        overlap = abs(a[0] - b[0]) < 40  # 40 px wide boxes
        dets: list[Det] = [(*a, 0.9, 0)] if overlap else [(*b, 0.85, 0), (*a, 0.9, 0)]
        ids = step(tracker, dets)
        expected = [2] if overlap else [1, 2]  # B (listed first) is confirmed first: id 1
        if f == 0:
            expected = [-1, -1]
        seen_b_hidden += overlap
        assert ids == expected, f"frame {f}: {ids} != {expected}"
    assert seen_b_hidden == 5
    assert tracker.next_id == 3, "no id was handed out to anything else"


def test_object_occluded_for_a_few_frames_keeps_its_id() -> None:
    tracker = ByteTracker()
    for f in range(40):
        visible = not 15 <= f < 22  # 7 frames without a detection
        dets: list[Det] = [(100 + 5 * f, 300, 0.9, 0)] if visible else []
        ids = step(tracker, dets)
        if f >= 1 and visible:
            assert ids == [1], f"frame {f}"
        if not visible:
            (track,) = tracker.tracks
            assert track.state is TrackState.LOST and track.track_id == 1


def test_low_score_detections_continue_the_track_through_the_second_association() -> None:
    """Scores 0.9 -> 0.3 (partly occluded) -> 0.9: the low ones carry id 1 (ByteTrack's point); with
    low_thresh above 0.3 they are ignored and get no id, the track being lost meanwhile."""
    scores = [0.9] * 10 + [0.3] * 6 + [0.9] * 10
    with_low, without_low = ByteTracker(), ByteTracker(ByteTrackOptions(low_thresh=0.35))
    for f, s in enumerate(scores):
        det = [(100 + 4 * f, 300, s, 0)]
        a, b = step(with_low, det), step(without_low, det)
        if f >= 1:
            assert a == [1], f"frame {f}: {a}"
            assert b == ([-1] if s < 0.5 else [1]), f"frame {f}: {b}"
    assert with_low.tracks[0].state is TrackState.TRACKED


def test_low_score_detections_never_start_a_track() -> None:
    tracker = ByteTracker()
    for _ in range(10):
        assert step(tracker, [(100, 100, 0.45, 0)]) == [-1]
    assert tracker.tracks == () and tracker.next_id == 1


def test_unconfirmed_detections_get_no_id_and_use_none_up() -> None:
    tracker = ByteTracker()
    assert step(tracker, [(500, 100, 0.95, 0)]) == [-1]  # a one-frame false positive
    assert step(tracker, []) == []
    assert tracker.tracks == (), "an unconfirmed track that misses a frame is removed"
    assert step(tracker, [(100, 300, 0.9, 0)]) == [-1]
    assert step(tracker, [(102, 300, 0.9, 0)]) == [1], "the first confirmed track gets id 1"


def test_min_hits_and_det_thresh() -> None:
    tracker = ByteTracker(ByteTrackOptions(min_hits=3))
    assert [step(tracker, [(100 + f, 300, 0.9, 0)]) for f in range(4)] == [[-1], [-1], [1], [1]]
    # 0.55 is a high-score detection (> 0.5) but below det_thresh = 0.6: it starts nothing
    picky = ByteTracker()
    assert [step(picky, [(100, 300, 0.55, 0)]) for _ in range(5)] == [[-1]] * 5
    assert picky.tracks == ()
    lenient = ByteTracker(ByteTrackOptions(det_thresh=0.5))
    assert [step(lenient, [(100, 300, 0.55, 0)]) for _ in range(3)] == [[-1], [1], [1]]


def test_confirm_first_frame_as_the_official_code() -> None:
    tracker = ByteTracker(ByteTrackOptions(confirm_first_frame=True))
    assert step(tracker, [(100, 100, 0.9, 0), (300, 100, 0.9, 0)]) == [1, 2]
    assert step(tracker, [(100, 100, 0.9, 0), (300, 100, 0.9, 0), (500, 100, 0.9, 0)]) == [1, 2, -1]
    assert step(tracker, [(100, 100, 0.9, 0), (300, 100, 0.9, 0), (500, 100, 0.9, 0)]) == [1, 2, 3]


@pytest.mark.parametrize(("frame_rate", "max_lost"), [(30.0, 30), (10.0, 10), (60.0, 60), (0.5, 1)])
def test_lost_buffer_scales_with_frame_rate(frame_rate: float, max_lost: int) -> None:
    """A gap of max_lost frames keeps the id; one frame more and the object comes back as a new track."""
    for gap, expected in ((max_lost, 1), (max_lost + 1, 2)):
        tracker = ByteTracker(frame_rate=frame_rate)
        assert tracker.max_lost == max_lost
        for _ in range(5):
            step(tracker, [(200, 200, 0.9, 0)])
        for _ in range(gap):
            step(tracker, [])
        first, second = step(tracker, [(200, 200, 0.9, 0)]), step(tracker, [(200, 200, 0.9, 0)])
        assert (first, second) == (([1], [1]) if expected == 1 else ([-1], [2])), f"gap {gap}"


def test_front_object_keeps_its_id_while_it_hides_a_longer_tracked_one() -> None:
    """B stands still (40 frames); A passes in front of it (6 px lower: IoU 0.86 when aligned) and hides
    it. The official remove_duplicate_stracks would drop A's younger track while it overlaps lost B by
    IoU > 0.85, and give A's box B's id."""
    tracker = ByteTracker()
    for _ in range(40):
        step(tracker, [(300, 200, 0.9, 0)])
    for k in range(40):
        a = (140 + 8 * k, 206)
        hidden = abs(a[0] - 300) < 20
        dets: list[Det] = [(*a, 0.9, 0)] if hidden else [(300, 200, 0.9, 0), (*a, 0.9, 0)]
        ids = step(tracker, dets)
        if k >= 1:
            assert ids == ([2] if hidden else [1, 2]), f"frame {k}: {ids}"


def test_class_agnostic_by_default_and_class_is_the_majority() -> None:
    tracker = ByteTracker()
    classes = [2, 2, 7, 2, 7, 7, 7, 2, 7, 7]  # car/truck flicker: 7 wins 6 to 4
    for f, k in enumerate(classes):
        out = tracker.update(np.array([box(100 + 3 * f, 200)]), [0.9], [k])
        if f >= 1:
            assert out.ids.tolist() == [1]
    (track,) = tracker.tracks
    assert track.votes == {2: 4, 7: 6} and track.class_id == 7
    assert out.classes.tolist() == [7]
    tied = ByteTracker()
    for k in (3, 5, 5, 3):
        out = tied.update(np.array([box(100, 200)]), [0.9], [k])
    assert out.classes.tolist() == [3], "ties: the class seen first"


def test_class_aware_keeps_classes_apart_and_classes_filter() -> None:
    two = [(100, 200, 0.9, 0), (104, 202, 0.8, 1)]  # a person and a bicycle on top of each other
    agnostic, aware = ByteTracker(), ByteTracker(ByteTrackOptions(class_aware=True))
    for _ in range(5):
        ids_aware = step(aware, two)
        step(agnostic, two)
    assert ids_aware == [1, 2]
    flicker = ByteTracker(ByteTrackOptions(class_aware=True))
    assert [step(flicker, [(100, 200, 0.9, k)]) for k in (0, 0, 1, 1)] == [[-1], [1], [-1], [2]]
    only_people = ByteTracker(ByteTrackOptions(classes=[0]))
    for _ in range(3):
        ids = step(only_people, two)
    assert ids == [1, -1] and len(only_people.tracks) == 1


def test_two_trackers_do_not_share_ids_and_reset_never_reuses_one() -> None:
    """One tracker per stream: identical input gives identical ids (no counter shared between
    instances, trackers <= 2.4); after reset() the ids go on from where they were."""
    def walk(tracker: ByteTracker) -> list[list[int]]:
        return [step(tracker, [(100 + 5 * f, 200, 0.9, 0), (400 - 5 * f, 100, 0.9, 0)]) for f in range(10)]

    first, second = ByteTracker(), ByteTracker()
    assert walk(first) == walk(second)
    assert walk(ByteTracker())[-1] == [1, 2]
    first.reset()
    assert first.tracks == () and first.frame_id == 0
    assert walk(first)[-1] == [3, 4], "ids after a reset continue, never reused"


def test_ids_are_not_reused_after_a_track_is_removed() -> None:
    tracker = ByteTracker()
    seen: list[int] = []
    for round_ in range(5):
        for _ in range(3):
            seen += step(tracker, [(100, 100 + 50 * round_, 0.9, 0)])
        for _ in range(tracker.max_lost + 1):
            step(tracker, [])
        assert tracker.tracks == ()
    assert [i for i in seen if i >= 0] == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]


def test_state_stays_bounded_over_10000_frames_of_churn() -> None:
    """Objects appear, wander and vanish (about 8 at a time, 1,000+ over the run) with jitter and false
    positives: the tracker keeps only tracks seen within the lost buffer, and ends empty."""
    rng = np.random.default_rng(12)
    tracker = ByteTracker()
    live: list[list[float]] = []  # cx, cy, vx, vy, frames left
    peak, births = 0, 0
    recent: list[int] = []  # detections per frame over the last max_lost + 1 frames
    for _ in range(10_000):
        if len(live) < 8 and rng.random() < 0.2:
            live.append([rng.uniform(0, 1280), rng.uniform(0, 720), *rng.normal(0, 3, 2), float(rng.integers(5, 120))])
            births += 1
        dets: list[Det] = [(o[0] + rng.normal(0, 1), o[1] + rng.normal(0, 1), float(rng.uniform(0.3, 1.0)), 0)
                           for o in live if rng.random() > 0.1]
        if rng.random() < 0.1:
            dets.append((rng.uniform(0, 1280), rng.uniform(0, 720), float(rng.uniform(0.6, 1.0)), 0))
        step(tracker, dets)
        for o in live:
            o[0], o[1], o[4] = o[0] + o[2], o[1] + o[3], o[4] - 1
        live = [o for o in live if o[4] > 0]
        recent = [*recent[-tracker.max_lost:], len(dets)]
        assert all(tracker.frame_id - t.last_frame <= tracker.max_lost for t in tracker.tracks)
        assert len(tracker.tracks) <= sum(recent), "every live track was matched within the buffer"
        peak = max(peak, len(tracker.tracks))
    assert births > 1000
    print(f"10,000 frames, {births} objects, {tracker.next_id - 1} ids, peak {peak} live tracks")
    assert peak < 60
    assert tracker.next_id - 1 < 2 * births
    for _ in range(tracker.max_lost + 1):
        step(tracker, [])
    assert tracker.tracks == ()


@pytest.mark.parametrize(("option", "value", "message"), [
    ("track_thresh", 7, "track_thresh: expected a number in [0, 1], got 7"),
    ("match_thresh", -0.1, "match_thresh: expected a number in [0, 1], got -0.1"),
    ("low_thresh", 0.6, "low_thresh: expected at most track_thresh (0.5), got 0.6"),
    ("track_buffer", 0, "track_buffer: expected an int >= 1, got 0"),
    ("min_hits", 1.5, "min_hits: expected an int >= 1, got 1.5"),
    ("det_thresh", 1.2, "det_thresh: expected a number in [0, 1], got 1.2"),
    ("track_thresh", 0.95, "det_thresh: track_thresh + 0.1 = 1.05 > 1 would start no track"),
    ("classes", [-1], "classes[0]: expected an int >= 0, got -1"),
    ("classes", [1, 2.5], "classes[1]: expected an int >= 0, got 2.5"),
])
def test_options_are_checked(option: str, value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")
                       .replace("+", r"\+")) as info:
        ByteTrackOptions(**{option: value})  # type: ignore[arg-type]
    assert "\n" not in str(info.value)
