"""A restarted json sink continues its files: a half-written last line (a kill mid-write) is cut, file frames
it already wrote are skipped when its upstream sends them again (a Ray shard restarted from the file's start),
live frames never are (their numbering starts again with the connection)."""

from __future__ import annotations

import json
from pathlib import Path

from streamyolox.detections import Detections, FrameMeta
from streamyolox.stages.json_sink import JsonSink
from streamyolox.stages.packet import Packet
from streamyolox.stages.testing import make_stage


def packet(stream: str, frame: int, live: bool = False) -> Packet:
    extra = {"live": True} if live else {}
    dets = Detections([[1.0, 2.0, 30.0, 40.0]], [0.5], [0])
    return Packet(FrameMeta(stream, frame, frame / 30, 1.7e9 + frame, 64, 48, extra), detections=dets)


def run(path: Path, packets: list[Packet], restarts: int) -> JsonSink:
    sink = make_stage(JsonSink, {"path": str(path)})
    sink.ctx.restarts = restarts
    sink.open()
    for p in packets:
        sink.process(p)
    sink.close()
    return sink  # type: ignore[return-value]


def frames(path: Path) -> list[tuple[str, int]]:
    return [(r["stream"], r["frame"]) for r in map(json.loads, path.read_text().splitlines())]


def test_a_restarted_sink_skips_what_it_wrote_and_cuts_a_torn_line(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    run(out, [packet("a", i) for i in range(10)] + [packet("b", i) for i in range(4)], restarts=0)
    with open(out, "a") as f:
        f.write('{"stream": "a", "frame": 10, "pts"')  # killed in the middle of a write
    again = [packet("a", i) for i in range(15)] + [packet("b", i) for i in range(6)]
    sink = run(out, again, restarts=1)
    got = frames(out)  # every line parses
    assert sorted(got) == sorted([("a", i) for i in range(15)] + [("b", i) for i in range(6)])
    assert len(got) == len(set(got))
    assert sink.ctx.counters["duplicates_skipped"] == 10 + 4


def test_live_frames_are_never_skipped_and_a_fresh_run_replaces(tmp_path: Path) -> None:
    out = tmp_path / "{stream}.jsonl"
    run(out, [packet("cam", i, live=True) for i in range(5)], restarts=0)
    run(out, [packet("cam", i, live=True) for i in range(3)], restarts=1)  # reconnected: frames from 0
    assert frames(tmp_path / "cam.jsonl") == [("cam", i) for i in [0, 1, 2, 3, 4, 0, 1, 2]]
    run(out, [packet("cam", 7)], restarts=0)  # a new run starts the file again
    assert frames(tmp_path / "cam.jsonl") == [("cam", 7)]
