"""Every zone_enter gets its zone_exit: when the stream ends with the track inside (StreamCounter.finish,
the count stage's end-of-stream packet, written by the json sink), and when the tracker gives the track up
after its lost-track buffer (ByteTracker reports the removed id on exactly that frame; the track stage
passes it on; the count stage ends the visit there, not at its own timeout)."""

from __future__ import annotations

import json
from pathlib import Path

from streamyolox.analytics.bytetrack import ByteTracker, ByteTrackOptions
from streamyolox.analytics.counter import CountRules, StreamCounter
from streamyolox.analytics.events import END_OF_STREAM
from streamyolox.analytics.zones import Zone
from streamyolox.detections import Detections, FrameMeta
from streamyolox.stages.count import CountStage
from streamyolox.stages.json_sink import JsonSink
from streamyolox.stages.packet import Packet
from streamyolox.stages.testing import make_stage
from streamyolox.stages.track import REMOVED_TRACKS, TrackStage
from tests.analytics.synthetic import frame_dets

FPS = 30.0
BAY = Zone("bay", ((400.0, 200.0), (800.0, 200.0), (800.0, 600.0), (400.0, 600.0)))
BAY_POINTS = [[400, 200], [800, 200], [800, 600], [400, 600]]


def test_finish_exits_every_track_still_inside_on_the_last_frame() -> None:
    c = StreamCounter("cam", CountRules(zones=(BAY,)))
    kinds = []
    for i in range(12):  # track 1 inside throughout, track 2 leaves at frame 6, track 3 never inside
        objs = [(1, 600.0, 400.0, 0), (3, 100.0, 100.0, 2)] + ([(2, 500.0, 300.0, 2)] if i < 6 else
                                                                [(2, 900.0, 300.0, 2)])
        kinds += [(e.kind, e.track_id, e.frame) for e in c.update(i, i / FPS, frame_dets(objs), pts=i / FPS)]
    assert kinds == [("zone_enter", 1, 1), ("zone_enter", 2, 1), ("zone_exit", 2, 7)]
    events = c.finish()
    # on the last frame (11), dwell from the confirmed enter (frame 1) to the last sight inside (11)
    assert [(e.kind, e.track_id, e.frame, e.class_name, round(e.dwell_s or 0, 6)) for e in events] == [
        ("zone_exit", 1, 11, "person", round(10 / FPS, 6))]
    assert c.tracks == {} and c.counts().to_json() == {"bay": {"enter": 2, "exit": 2, "occupancy": {}}}
    assert c.finish() == []  # nothing left


def test_a_removed_track_exits_on_the_frame_the_tracker_removed_it() -> None:
    c = StreamCounter("cam", CountRules(zones=(BAY,), track_timeout_s=60.0))
    for i in range(5):
        c.update(i, i / FPS, frame_dets([(4, 600.0, 400.0, 0)]))
    assert c.update(5, 5 / FPS, frame_dets([])) == []  # unseen, not yet given up
    events = c.update(6, 6 / FPS, frame_dets([]), removed=[4, 99])  # 99: never seen here, ignored
    assert [(e.kind, e.track_id, e.frame, round(e.dwell_s or 0, 6)) for e in events] == [
        ("zone_exit", 4, 6, round(3 / FPS, 6))]  # entered at frame 1, last inside at frame 4
    assert c.tracks == {}


def test_bytetracker_reports_a_removed_id_on_exactly_the_frame_it_drops_it() -> None:
    tracker = ByteTracker(ByteTrackOptions(track_buffer=30), frame_rate=30.0)
    box = [[100.0, 100.0, 150.0, 200.0]]
    removed_at = {}
    for frame in range(1, 60):  # seen on frames 1..5, then nothing
        result = tracker.update(box if frame <= 5 else [], [0.9] if frame <= 5 else [], [0] if frame <= 5 else [])
        for tid in result.removed:
            removed_at[tid] = frame
        if frame == 5:
            (tid,) = result.ids
    # lost after frame 5; removed once frame_id - last_frame > max_lost (30 frames at 30 fps): frame 36
    assert removed_at == {tid: 36} and tracker.tracks == ()
    tracker.update(box, [0.9], [0])
    tracker.update(box, [0.9], [0])
    assert len(tracker.reset()) == 1  # a reset reports the confirmed tracks it drops


def _packet(i: int, boxes: list[list[float]], stream: str = "cam") -> Packet:
    n = len(boxes)
    dets = Detections(boxes if n else [[0.0] * 4][:0], [0.9] * n, [0] * n)
    return Packet(FrameMeta(stream, i, i / FPS, 1000.0 + i / FPS, 1280, 720), detections=dets)


def test_track_count_json_chain_pairs_enters_and_exits(tmp_path: Path) -> None:
    """A person inside the bay leaves the picture (removed by the tracker after its buffer), another is
    inside when the stream ends: both exits are written, the second on an end-of-stream line."""
    track = make_stage(TrackStage, {"track_buffer": 30, "frame_rate": 30.0})
    count = make_stage(CountStage, {"zones": {"bay": BAY_POINTS}, "track_timeout_s": 60.0})
    sink = make_stage(JsonSink, {"path": str(tmp_path / "{stream}.jsonl")})
    for stage in (track, count, sink):
        stage.open()
    a, b = [580.0, 300.0, 620.0, 400.0], [480.0, 300.0, 520.0, 400.0]
    removed_frames = []
    for i in range(80):  # a on frames 0..9, b on every frame
        out = track.process(_packet(i, [a, b] if i < 10 else [b]))
        if REMOVED_TRACKS in out[0].extra:
            removed_frames.append(i)
        for p in count.process(out[0]):
            sink.process(p)
    finals = count.close()
    assert len(finals) == 1 and finals[0].frame is None and finals[0].meta.extra == {END_OF_STREAM: True}
    for p in finals:
        sink.process(p)
    sink.close()
    records = [json.loads(line) for line in (tmp_path / "cam.jsonl").read_text().splitlines()]
    assert [r["frame"] for r in records] == [*range(80), 79] and records[-1][END_OF_STREAM] is True
    assert all(END_OF_STREAM not in r for r in records[:-1])
    events = [e for r in records for e in r["events"]]
    pairs = {}
    for e in events:
        pairs.setdefault(e["track_id"], []).append((e["kind"], e["frame"]))
    # a: lost after frame 9 (tracker frame 10), removed when 31 tracker frames have passed: frame 40
    assert removed_frames == [40]
    # confirmed on their 2nd frame (min_hits 2), inside for min_frames 2 observations: entered on frame 2
    assert sorted(pairs.values()) == [[("zone_enter", 2), ("zone_exit", 40)], [("zone_enter", 2), ("zone_exit", 79)]]
    assert records[-1]["counts"] == {"bay": {"enter": 2, "exit": 2, "occupancy": {}}}
    assert len({e["event_id"] for e in events}) == 4
