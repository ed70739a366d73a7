"""count stage: config checks (one line naming the path), per-stream state and geometry, packet fields."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from streamyolox.analytics.events import Event
from streamyolox.detections import Detections, FrameMeta
from streamyolox.graph.transport import split_packet
from streamyolox.graph.validate import SpecError, parse_pipeline
from streamyolox.stages.base import StageContext
from streamyolox.stages.count import CountConfig, CountStage
from streamyolox.stages.json_sink import JsonSink
from streamyolox.stages.packet import Packet
from streamyolox.stages.testing import make_stage, run_stage

DOOR = [[640, 0], [640, 720]]


def parse_count(options: dict) -> CountConfig:
    doc = {"stages": {"src": {"kind": "decode", "url": "clip.mp4"},
                      "count": {"kind": "count", "inputs": ["src"], **options}}}
    spec = parse_pipeline(doc)
    return spec.stages["count"].options


@pytest.mark.parametrize(("options", "message"), [
    ({"lines": {"door": [[1, 2]]}}, "stages.count.lines.door: expected 2 points [[x1, y1], [x2, y2]], got [(1.0, 2.0)]"),
    ({"lines": {"door": [[1, 2], [1, 2]]}}, "stages.count.lines.door: expected 2 distinct points, got [1.0, 2.0] twice"),
    ({"lines": {"door": [[1, 2], [1, "x"]]}}, "stages.count.lines.door[1][1]: expected float, got 'x'"),
    ({"zones": {"bay": [[0, 0], [1, 1]]}}, "stages.count.zones.bay: expected a polygon of >= 3 points"),
    ({"zones": {"bay": [[0, 0], [1, 1], [2, 2]]}}, "stages.count.zones.bay: the polygon has no area"),
    ({"lines": {"door": DOOR}, "anchor": "top"}, "stages.count.anchor: expected one of 'bottom_center', 'center'"),
    ({"lines": {"door": DOOR}, "min_distance": -1}, "stages.count.min_distance: expected a number >= 0, got -1"),
    ({"lines": {"door": DOOR}, "min_frames": 0}, "stages.count.min_frames: expected an int >= 1, got 0"),
    ({"lines": {"door": DOOR}, "cooldown_s": -0.5}, "stages.count.cooldown_s: expected a number >= 0, got -0.5"),
    ({"lines": {"door": DOOR}, "track_timeout_s": 0}, "stages.count.track_timeout_s: expected a number > 0, got 0"),
    ({}, "stages.count.lines: give at least one line or zone"),
    ({"lines": {"a b": DOOR}}, "stages.count.lines: name 'a b': use letters, digits"),
    ({"lines": {"x": DOOR}, "zones": {"x": [[0, 0], [9, 0], [9, 9]]}}, "stages.count.zones: 'x' names both a line and a zone"),
    ({"lines": {"door": DOOR}, "streams": {"cam1": {"lines": {"door": [[0, 0]]}}}},
     "stages.count.streams.cam1.lines.door: expected 2 points"),
    ({"lines": {"door": DOOR}, "streams": {"cam1": {"min_frames": 0}}}, "stages.count.streams.cam1.min_frames: expected an int >= 1, got 0"),
    ({"lines": {"door": DOOR}, "streams": {"cam1": {"line": {}}}}, "stages.count.streams.cam1: unknown option 'line' (did you mean 'lines'?)"),
])
def test_config_errors_name_the_path(options: dict, message: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_count(options)
    # `stages.count: option: why` and `stages.count.option: why` both name the path
    text = str(info.value).replace("stages.count: ", "stages.count.")
    assert text.startswith(message), text
    assert "\n" not in text


def test_per_stream_rules() -> None:
    cfg = parse_count({"lines": {"door": DOOR}, "min_frames": 3,
                       "streams": {"cam2": {"lines": {"gate": [[0, 360], [1280, 360]]}, "anchor": "center"}},
                       "classes": ["person"]})
    top, cam2 = cfg.rules_for("cam1"), cfg.rules_for("cam2")
    assert [line.name for line in top.lines] == ["door"] and top.anchor == "bottom_center"
    assert [line.name for line in cam2.lines] == ["gate"] and cam2.anchor == "center"
    assert top.hysteresis.min_frames == cam2.hysteresis.min_frames == 3  # inherited
    assert top.classes == frozenset({"person"})


def packet(stream: str, frame: int, objs: list[tuple[int, float]]) -> Packet:
    """A tracked frame at 30 fps: (track_id, x) boxes with their bottom center at (x, 400)."""
    meta = FrameMeta(stream=stream, frame=frame, pts=frame / 30, time=1000.0 + frame, width=1280, height=720)
    boxes = [[x - 10, 360, x + 10, 400] for _, x in objs] or np.zeros((0, 4))
    dets = Detections(boxes, [0.9] * len(objs), [0] * len(objs), [t for t, _ in objs])
    return Packet(meta=meta, detections=dets)


def test_two_streams_with_the_same_geometry_and_ids_count_apart() -> None:
    xs = [600, 610, 660, 670, 680]
    packets = []
    for i, x in enumerate(xs):
        packets.append(packet("cam1", i, [(1, x), (2, 1280 - x)]))  # one in, one out
        packets.append(packet("cam2", i, [(1, x)]))  # the same id 1 in another stream: its own track
    out = run_stage(CountStage, packets, {"lines": {"door": DOOR}})
    assert len(out) == len(packets)
    events = [e.to_json() for p in out for e in p.events]
    assert [(e["stream"], e["kind"], e["track_id"], e["frame"]) for e in events] == [
        ("cam1", "line_in", 1, 3), ("cam1", "line_out", 2, 3), ("cam2", "line_in", 1, 3)]
    assert events[0]["event_id"] == "cam1:line_in:door:1:3" and events[0]["time"] == 1003.0
    last = {p.meta.stream: p.counts for p in out}
    assert last["cam1"] is not None and last["cam1"].to_json() == {"door": {"in": 1, "out": 1}}
    assert last["cam2"] is not None and last["cam2"].to_json() == {"door": {"in": 1, "out": 0}}


def test_replay_gives_the_same_event_ids() -> None:
    rng = np.random.default_rng(3)
    tracks = {tid: rng.uniform(400, 900) for tid in range(1, 9)}
    steps = {tid: rng.uniform(-25, 25) for tid in tracks}
    packets = [packet("cam", i, [(tid, x0 + steps[tid] * i) for tid, x0 in tracks.items()]) for i in range(40)]

    def ids() -> list[str]:
        out = run_stage(CountStage, [pickle.loads(pickle.dumps(p)) for p in packets], {"lines": {"door": DOOR}})
        return [e.event_id for p in out for e in p.events]

    first = ids()
    assert len(first) >= 3 and len(set(first)) == len(first)
    assert ids() == first


def test_events_and_counts_cross_a_process_edge_and_reach_the_json_record(tmp_path) -> None:
    out = run_stage(CountStage, [packet("cam", i, [(4, x)]) for i, x in enumerate([600, 610, 660, 670])],
                    {"lines": {"door": DOOR}})
    stub, arrays = split_packet(out[-1])
    assert arrays == []  # events and counts travel in the pickled header
    received = pickle.loads(pickle.dumps(stub, protocol=5))
    assert received.events == out[-1].events and isinstance(received.events[0], Event)
    path = tmp_path / "x.jsonl"
    run_stage(JsonSink, [out[0], received], {"path": str(path)})
    import json
    first, last = (json.loads(line) for line in path.read_text().splitlines())
    assert first["events"] == [] and first["counts"] == {"door": {"in": 0, "out": 0}}
    assert last["events"] == [received.events[0].to_json()]
    assert last["counts"] == {"door": {"in": 1, "out": 0}}


def test_no_track_ids_and_replicas_are_errors() -> None:
    with pytest.raises(ValueError, match="place it after a track stage"):
        run_stage(CountStage, [Packet(meta=FrameMeta(), detections=Detections.empty())], {"lines": {"door": DOOR}})
    stage = CountStage(CountConfig(lines={"door": DOOR}), StageContext(stage_id="c", replicas=2))
    with pytest.raises(ValueError, match="replicas"):
        stage.open()
    assert make_stage(CountStage, {"lines": {"door": DOOR}}).kind == "count"
