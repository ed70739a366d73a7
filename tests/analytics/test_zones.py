"""Zones on synthetic trajectories: exact enter/exit events, dwell times, occupancy per class."""

from __future__ import annotations

import pytest

from streamyolox.analytics.counter import CountRules, StreamCounter
from streamyolox.analytics.zones import Zone
from tests.analytics.synthetic import frame_dets

FPS = 30.0
BAY = Zone("bay", ((400.0, 200.0), (800.0, 200.0), (800.0, 600.0), (400.0, 600.0)))


def run(counter: StreamCounter, frames: list[list[tuple[int, float, float, int]]]) -> list[tuple]:
    """(kind, zone, frame, track, class, dwell_s) per event; pts = index / 30."""
    out = []
    for i, objs in enumerate(frames):
        for e in counter.update(i, i / FPS, frame_dets(objs), pts=i / FPS):
            out.append((e.kind, e.name, e.frame, e.track_id, e.class_name,
                        None if e.dwell_s is None else round(e.dwell_s, 6)))
    return out


def counter(**kw) -> StreamCounter:
    return StreamCounter("cam", CountRules(zones=(BAY,), **kw))


def test_enter_then_exit_with_dwell() -> None:
    xs = [300, 350, 420, 450, *([500] * 60), 780, 820, 850, 900]  # inside (>= 5 px) from frame 2
    frames = [[(1, x, 400.0, 0)] for x in xs]
    c = counter()
    events = run(c, frames)
    # enter confirmed at frame 3 (2nd observation inside), exit at frame 66 (2nd outside): 63 frames
    assert events == [("zone_enter", "bay", 3, 1, "person", None),
                      ("zone_exit", "bay", 66, 1, "person", round(63 / FPS, 6))]
    assert c.counts().to_json() == {"bay": {"enter": 1, "exit": 1, "occupancy": {}}}


def test_flicker_at_the_edge_counts_nothing() -> None:
    xs = [300, 300, *([398, 403, 396, 404] * 20)]  # within 5 px of the left edge x = 400
    assert run(counter(), [[(1, x, 400.0, 0)] for x in xs]) == []
    alternating = [300, 300, *([420, 380] * 20)]  # beyond the band, never twice in a row inside
    assert run(counter(), [[(1, x, 400.0, 0)] for x in alternating]) == []


def test_a_track_appearing_inside_enters() -> None:
    frames = [[(4, 600.0, 400.0, 0)]] * 3
    assert run(counter(), frames) == [("zone_enter", "bay", 1, 4, "person", None)]


def test_occupancy_per_class_and_its_invariant() -> None:
    # two persons and a car walk in; one person leaves; an unconfirmed box inside is not counted
    c = counter()
    paths = {1: [300, 500, 500, 500, 500, 500], 2: [500, 500, 500, 500, 900, 900],
             3: [600, 600, 600, 600, 600, 600]}
    classes = {1: 0, 2: 0, 3: 2}
    snapshots = []
    for i in range(6):
        objs = [(tid, float(path[i]), 400.0, classes[tid]) for tid, path in paths.items()]
        objs.append((-1, 600.0, 300.0, 0))
        c.update(i, i / FPS, frame_dets(objs))
        snapshots.append(c.counts().zones["bay"])
    assert snapshots[1].occupancy == {"person": 1, "car": 1}
    assert snapshots[2].occupancy == {"person": 2, "car": 1}
    assert snapshots[5].occupancy == {"person": 1, "car": 1}
    for z in snapshots:
        assert sum(z.occupancy.values()) == z.enter - z.exit
    assert (snapshots[5].enter, snapshots[5].exit) == (3, 1)


def test_a_track_lost_inside_exits_after_the_timeout() -> None:
    frames = [[(1, 600.0, 400.0, 0)]] * 10 + [[]] * 20  # last seen at frame 9
    c = counter(track_timeout_s=0.5)
    events = run(c, frames)
    # entered at frame 1; forgotten at frame 25 (> 0.5 s after frame 9); dwell to its last sight inside
    assert events == [("zone_enter", "bay", 1, 1, "person", None),
                      ("zone_exit", "bay", 25, 1, "person", round(8 / FPS, 6))]
    assert c.tracks == {} and c.zones[0].tracks == {}
    assert c.counts().to_json() == {"bay": {"enter": 1, "exit": 1, "occupancy": {}}}


def test_restarted_stream_time_closes_open_zone_visits() -> None:
    c = counter()
    for i in range(5):
        c.update(i, 10.0 + i / FPS, frame_dets([(1, 600.0, 400.0, 0)]))
    events = c.update(5, 0.0, frame_dets([]))  # a looped file: time goes back
    assert [(e.kind, e.track_id) for e in events] == [("zone_exit", 1)] and c.tracks == {}


def test_polygon_checks() -> None:
    with pytest.raises(ValueError, match=r"zones.z: expected a polygon of >= 3 points, got 2"):
        Zone("z", ((0.0, 0.0), (1.0, 1.0)))
    with pytest.raises(ValueError, match=r"zones.z: the polygon has no area"):
        Zone("z", ((0.0, 0.0), (1.0, 1.0), (2.0, 2.0)))
    assert BAY.signed_distance((410.0, 400.0)) == pytest.approx(10.0)
    assert BAY.signed_distance((390.0, 400.0)) == pytest.approx(-10.0)
