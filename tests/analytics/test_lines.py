"""Line crossings on synthetic trajectories: exact counts and events (frame, direction, track, class)."""

from __future__ import annotations

import numpy as np
import pytest

from streamyolox.analytics.counter import CountRules, StreamCounter
from streamyolox.analytics.hysteresis import Hysteresis
from streamyolox.analytics.lines import Line, segments_intersect
from streamyolox.detections import Detections
from tests.analytics.synthetic import frame_dets

FPS = 30.0
DOOR = Line("door", (640.0, 0.0), (640.0, 720.0))  # vertical mid-frame line: left -> right is `in`


def run(counter: StreamCounter, frames: list[list[tuple[int, float, float, int]]]) -> list[tuple]:
    """Feed frames at 30 fps (pts = index / 30); returns (kind, name, frame, track, class) per event."""
    out = []
    for i, objs in enumerate(frames):
        for e in counter.update(i, i / FPS, frame_dets(objs), wall=1000.0 + i, pts=i / FPS):
            out.append((e.kind, e.name, e.frame, e.track_id, e.class_name))
    return out


def track(xs: list[float | None], tid: int = 1, y: float = 400.0, cls: int = 0) -> list[list]:
    """One object moving along x (None: not detected in that frame)."""
    return [[] if x is None else [(tid, x, y, cls)] for x in xs]


def counter(lines: tuple[Line, ...] = (DOOR,), **kw) -> StreamCounter:
    return StreamCounter("cam", CountRules(lines=lines, **kw))


def test_left_to_right_is_in_right_to_left_is_out() -> None:
    c = counter()
    # settles left at frames 0-1, on the line at 4, confirmed right at the 2nd observation >= 5 px past
    events = run(c, track([600, 610, 620, 630, 640, 650, 660, 670]))
    assert events == [("line_in", "door", 6, 1, "person")]
    c2 = counter()
    assert run(c2, track([700, 690, 680, 660, 640, 620, 600])) == [("line_out", "door", 6, 1, "person")]
    assert (c.lines[0].count_in, c.lines[0].count_out) == (1, 0)
    assert (c2.lines[0].count_in, c2.lines[0].count_out) == (0, 1)


def test_direction_follows_the_point_order() -> None:
    reverse = Line("door", DOOR.b, DOOR.a)  # same line drawn bottom to top: left -> right is `out`
    assert run(counter((reverse,)), track([600, 610, 660, 670])) == [("line_out", "door", 3, 1, "person")]
    horizontal = Line("h", (0.0, 360.0), (1280.0, 360.0))  # B - A = +x: below (y > 360) is the + side
    assert horizontal.signed_distance((100.0, 500.0)) > 0
    frames = [[(3, 100.0, y, 0)] for y in (500, 490, 300, 290)]  # moving up: + -> - = in
    assert run(counter((horizontal,)), frames) == [("line_in", "h", 3, 3, "person")]


def test_jitter_on_the_line_counts_nothing() -> None:
    rng = np.random.default_rng(0)
    c = counter()
    xs = [600.0, 600.0, *(640 + rng.uniform(-4.9, 4.9, 200)), 600.0, 600.0]
    assert run(c, track(xs)) == []
    # beyond the band but never for min_frames observations in a row on the far side
    assert run(counter(), track([600, 600, *([630, 650] * 30)])) == []


def test_one_frame_flicker_back_is_not_a_crossing() -> None:
    xs = [600, 600, 660, 660, 620, 660, 660, 660]  # in at frame 3; the single frame at 620 counts nothing
    assert run(counter(), track(xs)) == [("line_in", "door", 3, 1, "person")]


def test_fast_mover_skipping_the_line_between_frames() -> None:
    # never near the line: the step from 100 to 1200 intersects it
    assert run(counter(), track([100, 100, 1200, 1200])) == [("line_in", "door", 3, 1, "person")]


def test_gap_of_a_few_frames_still_counts() -> None:
    xs = [600, 610, 620, None, None, None, None, 680, 690]  # not detected while crossing
    assert run(counter(), track(xs)) == [("line_in", "door", 8, 1, "person")]


def test_walking_round_the_end_of_a_short_line_is_no_crossing() -> None:
    short = Line("gate", (640.0, 300.0), (640.0, 500.0))
    path = [(600, 400), (600, 400), (600, 600), (680, 600), (680, 600), (680, 400)]  # below the end
    frames = [[(1, x, y, 0)] for x, y in path]
    assert run(counter((short,)), frames) == []


def test_cooldown_one_count_per_direction() -> None:
    xs = [600, 600, 680, 680, 600, 600, 680, 680]  # in, out, in: within 1 s, the second in is dropped
    assert [e[0] for e in run(counter(cooldown_s=1.0), track(xs))] == ["line_in", "line_out"]
    assert [e[0] for e in run(counter(cooldown_s=0.0), track(xs))] == ["line_in", "line_out", "line_in"]
    slow = [600, 600, 680, 680, 600, 600, *([600] * 30), 680, 680]  # the second in comes after > 1 s
    assert [e[0] for e in run(counter(cooldown_s=1.0), track(slow))] == ["line_in", "line_out", "line_in"]


def test_unconfirmed_detections_are_ignored() -> None:
    # 20 unconfirmed boxes crossing each frame (all id -1) and one confirmed track: only the track counts
    frames = []
    for x in (600, 610, 660, 670):
        frames.append([(-1, x + dx, 100.0 + 20 * k, 0) for k, dx in enumerate(range(-10, 10))] + [(5, x, 600, 0)])
    c = counter()
    assert run(c, frames) == [("line_in", "door", 3, 5, "person")]
    assert set(c.tracks) == {5} and set(c.lines[0].tracks) == {5}


def test_line_near_the_frame_edge_counts() -> None:
    # a line 10 px from the left edge; the box enters clipped at x = 0 (center anchor at x = 4)
    edge = Line("edge", (10.0, 0.0), (10.0, 720.0))
    c = counter((edge,), anchor="center")
    frames = [[(2, x, 400.0, 0)] for x in (4, 4, 30, 40)]
    assert run(c, frames) == [("line_in", "edge", 3, 2, "person")]


def test_class_is_the_most_frequent_one() -> None:
    # seen as car (2) twice, then as person (0) three times: the event says person; a tie keeps the first
    frames = [[(1, x, 400.0, cls)] for x, cls in zip([600, 600, 660, 670, 680], [2, 2, 0, 0, 0])]
    assert run(counter(), frames)[0][4] == "car"  # at frame 3: car 2, person 2 -> car (seen first)
    frames = [[(1, x, 400.0, cls)] for x, cls in zip([600, 600, 610, 660, 670], [2, 2, 0, 0, 0])]
    assert run(counter(), frames) == [("line_in", "door", 4, 1, "person")]


def test_track_state_is_deleted_once_unseen_for_the_timeout() -> None:
    c = counter(track_timeout_s=0.5)  # 15 frames at 30 fps
    frames = track([600, 600]) + [[] for _ in range(16)]  # last seen at 1/30 s; 17/30 s is > 0.5 s later
    run(c, frames)
    assert c.tracks == {} and c.lines[0].tracks == {}
    # the id seen again later on the other side starts over: no crossing from stale state
    c = counter(track_timeout_s=0.5)
    assert run(c, track([600, 600, *[None] * 20, 680, 680])) == []
    # within the timeout the state is kept: that is a crossing after a gap
    c = counter(track_timeout_s=0.5)
    assert run(c, track([600, 600, *[None] * 10, 680, 680])) == [("line_in", "door", 13, 1, "person")]


def test_state_is_bounded_over_many_tracks() -> None:
    c = counter(track_timeout_s=1.0)
    for i in range(3000):  # a new track every frame, each seen 3 times
        objs = [(tid, 600.0 + (i - tid) * 30, 400.0, 0) for tid in range(max(0, i - 2), i + 1)]
        c.update(i, i / FPS, frame_dets(objs))
    assert len(c.tracks) <= 31 + 3 and len(c.lines[0].tracks) == len(c.tracks)


@pytest.mark.parametrize(("p", "q", "expected"), [
    ((600, 100), (700, 100), True),     # proper crossing
    ((600, 100), (640, 100), True),     # ends on the line
    ((640, 800), (640, 900), False),    # collinear, beyond the end
    ((640, 700), (640, 900), True),     # collinear, overlapping
    ((600, 750), (700, 750), False),    # crosses the infinite line below the segment
    ((600, 100), (630, 100), False),    # stops short
])
def test_segments_intersect(p: tuple, q: tuple, expected: bool) -> None:
    assert segments_intersect(p, q, DOOR.a, DOOR.b) is expected
    assert segments_intersect(q, p, DOOR.b, DOOR.a) is expected


def test_checks() -> None:
    with pytest.raises(ValueError, match=r"lines.x: expected 2 distinct points"):
        Line("x", (1.0, 2.0), (1.0, 2.0))
    with pytest.raises(ValueError, match=r"min_frames: expected an int >= 1"):
        Hysteresis(min_frames=0)
    with pytest.raises(ValueError, match=r"min_distance: expected a number >= 0"):
        Hysteresis(min_distance=-1)
    with pytest.raises(ValueError, match="put a track stage before count"):
        counter().update(0, 0.0, Detections.empty())
