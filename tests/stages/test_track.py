"""The `track` stage: one tracker per stream, resets on reconnect / restart / idle, frame rate from the
stream, options checked; a real pipeline to JSON; a real RTSP reconnect marked by `decode`."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pytest

from streamyolox.analytics.bytetrack import ByteTracker
from streamyolox.detections import Detections, FrameMeta, frame_record
from streamyolox.draw.annotate import label_text
from streamyolox.graph.options import SpecError
from streamyolox.graph.validate import load_pipeline
from streamyolox.stages.decode import DecodeStage
from streamyolox.stages.packet import Packet
from streamyolox.stages.testing import make_stage
from streamyolox.stages.track import TrackStage
from streamyolox.stages.zmq_sink import encode_payload, message_schema

REPO = Path(__file__).resolve().parents[2]


def encode_and_decode(record: dict[str, Any]) -> Any:
    return json.loads(encode_payload(record, "json"))


Obj = tuple[float, float, float, int]  # cx, cy, score, class


def dets(*objects: Obj) -> Detections:
    """Detections of (cx, cy, score, class) objects, boxes 40 x 80."""
    xyxy = [[cx - 20, cy - 40, cx + 20, cy + 40] for cx, cy, _, _ in objects]
    return Detections(np.array(xyxy, np.float32).reshape(-1, 4), np.array([o[2] for o in objects]),
                      np.array([o[3] for o in objects]))


def packet(stream: str, frame: int, objects: Sequence[Obj], time: float | None = None,
           pts: float | None = None, **extra: Any) -> Packet:
    meta = FrameMeta(stream, frame, pts, frame / 30 if time is None else time, 1280, 720, dict(extra))
    return Packet(meta=meta, detections=dets(*objects))


def opened(options: dict[str, Any] | None = None, **ctx: int) -> TrackStage:
    stage = make_stage(TrackStage, options)
    for key, value in ctx.items():
        setattr(stage.ctx, key, value)
    stage.open()
    assert isinstance(stage, TrackStage)
    return stage


def tracked(stage: TrackStage, p: Packet) -> Detections:
    (out,) = stage.process(p)
    assert out.detections is not None and out.detections.track_ids is not None
    assert out.detections.track_ids.dtype == np.int64
    return out.detections


def ids_of(stage: TrackStage, p: Packet) -> list[int]:
    return tracked(stage, p).track_ids.tolist()  # type: ignore[union-attr]


def test_streams_are_tracked_apart_and_json_shows_null_until_confirmed() -> None:
    stage = opened()
    a, b = [], []
    for f in range(6):
        objs = [(100 + 5 * f, 200, 0.9, 0), (600, 300, 0.8, 2)]
        a.append(ids_of(stage, packet("a", f, objs)))
        b.append(ids_of(stage, packet("b", f, objs)))
    assert a == b == [[-1, -1]] + [[1, 2]] * 5, "identical streams: identical ids, no shared counter"
    (out,) = stage.process(packet("a", 6, [(130, 200, 0.9, 0), (900, 500, 0.95, 0)]))
    record = frame_record(out.meta, out.detections)
    assert [d["track_id"] for d in record["detections"]] == [1, None]
    assert json.loads(json.dumps(record))["detections"][1]["track_id"] is None
    assert Detections.from_json(record["detections"]).track_ids.tolist() == [1, -1]  # type: ignore[union-attr]
    jsonschema.validate(encode_and_decode(record), message_schema())  # the zmq message schema allows null
    assert out.detections is not None
    assert [label_text(out.detections, i).startswith("#") for i in range(2)] == [True, False]


def test_reconnect_marker_and_frame_index_going_back_clear_a_stream() -> None:
    stage = opened()
    obj = [(300, 300, 0.9, 0)]
    assert [ids_of(stage, packet("cam", f, obj, reconnects=0)) for f in range(4)] == [[-1], [1], [1], [1]]
    # the same place after a reconnect is not assumed to be the same object: a new track, a new id
    assert [ids_of(stage, packet("cam", f, obj, reconnects=1)) for f in range(4, 7)] == [[-1], [2], [2]]
    assert stage.ctx.counters["track_resets"] == 1
    assert [ids_of(stage, packet("cam", f, obj, reconnects=1)) for f in range(0, 2)] == [[-1], [3]]
    assert stage.ctx.counters["track_resets"] == 2, "frame index back to 0: the source restarted"


def test_a_stream_idle_for_idle_reset_s_is_cleared() -> None:
    stage = opened({"idle_reset_s": 5.0})
    obj = [(300, 300, 0.9, 0)]
    for f in range(3):
        ids_of(stage, packet("a", f, obj, time=f * 0.1))
    for f, t in enumerate((1.0, 3.0, 6.0)):  # a is quiet; at b's third frame a's last one is 5.8 s old
        ids_of(stage, packet("b", f, obj, time=t))
    assert stage.ctx.counters == {"tracks": 1, "track_resets": 1}, "a's track is gone, b's is there"
    assert ids_of(stage, packet("a", 3, obj, time=6.1)) == [-1]
    assert ids_of(stage, packet("a", 4, obj, time=6.2)) == [2], "a's ids go on: 2, not 1 again"
    kept = opened({"idle_reset_s": None})
    for f in range(3):
        ids_of(kept, packet("a", f, obj, time=f * 0.1))
    ids_of(kept, packet("b", 0, obj, time=1000.0))
    assert ids_of(kept, packet("a", 3, obj, time=1000.0)) == [1]


def gap_keeps_id(stage: TrackStage, gap: int, pts_fps: float, **extra: Any) -> bool:
    """An object for 12 frames, `gap` frames without it, then back: does it keep id 1?"""
    seen: list[Obj] = [(300, 300, 0.9, 0)]
    frames = [seen] * 12 + [[]] * gap + [seen]
    ids = [ids_of(stage, packet("s", f, objs, pts=f / pts_fps, **extra)) for f, objs in enumerate(frames)]
    return ids[-1] == [1]


def test_lost_buffer_follows_the_stream_frame_rate() -> None:
    # 10 fps measured from the PTS: buffer = 10 / 30 * 30 = 10 frames
    assert gap_keeps_id(opened(), 10, pts_fps=10.0) and not gap_keeps_id(opened(), 11, pts_fps=10.0)
    assert gap_keeps_id(opened(), 11, pts_fps=30.0)
    # the source's own rate (meta.extra["fps"]), or the option, win over the PTS
    assert not gap_keeps_id(opened(), 11, pts_fps=30.0, fps=10.0)
    assert not gap_keeps_id(opened({"frame_rate": 10.0}), 11, pts_fps=30.0)
    assert gap_keeps_id(opened({"frame_rate": 60.0, "track_buffer": 10}), 20, pts_fps=10.0)


def test_class_vote_and_classes_filter() -> None:
    voted, plain = opened({"class_vote": True}), opened()
    for f, k in enumerate([2, 7, 7, 2, 7, 7]):
        v = tracked(voted, packet("s", f, [(100 + f, 200, 0.9, k)]))
        p = tracked(plain, packet("s", f, [(100 + f, 200, 0.9, k)]))
    assert v.class_ids.tolist() == [7] and p.class_ids.tolist() == [7]
    v = tracked(voted, packet("s", 6, [(106, 200, 0.9, 2)]))  # 7 seen 4 times, 2 now 3 times
    p = tracked(plain, packet("s", 6, [(106, 200, 0.9, 2)]))
    assert v.class_ids.tolist() == [7] and p.class_ids.tolist() == [2], "class_vote off: the detector's"
    assert v.track_ids is not None and v.track_ids.tolist() == [1]
    people = opened({"classes": [0]})
    for f in range(3):
        got = ids_of(people, packet("s", f, [(100, 200, 0.9, 0), (500, 200, 0.9, 2)]))
    assert got == [1, -1], "other classes pass through untracked"


def test_restarted_stage_does_not_reuse_ids_and_replicas_are_refused() -> None:
    stage = opened(restarts=2)
    assert [ids_of(stage, packet("s", f, [(100, 100, 0.9, 0)])) for f in range(2)] == [[-1], [2_000_000_001]]
    with pytest.raises(ValueError, match=r"track: cannot run as 2 replicas"):
        opened(replicas=2)
    with pytest.raises(ValueError, match=r"track: frame 4 of stream 's' has no detections \(is an nms stage"):
        opened().process(Packet(meta=FrameMeta("s", 4)))


PIPELINE = """
model: {{name: yolox-nano, weights: "{weights}"}}
stages:
  source: {{kind: decode, url: "{video}"}}
  pre:    {{kind: letterbox, inputs: [source]}}
  det:    {{kind: yolox, inputs: [pre]}}
  nms:    {{kind: nms, inputs: [det], score_threshold: 0.1}}
  trk:    {{kind: track, inputs: [nms]{options}}}
  json:   {{kind: json, inputs: [trk], path: "{out}"}}
"""


@pytest.mark.parametrize(("options", "message"), [
    ("track_thresh: 7", "stages.trk.track_thresh: expected a number in [0, 1], got 7"),
    ("track_buffer: 0", "stages.trk.track_buffer: expected an int >= 1, got 0"),
    ("idle_reset_s: -1", "stages.trk.idle_reset_s: expected a number > 0, got -1"),
    ("frame_rate: 0", "stages.trk.frame_rate: expected a number > 0, got 0"),
    ("low_thresh: 0.9", "stages.trk.low_thresh: expected at most track_thresh (0.5), got 0.9"),
    ("track_tresh: 0.4", "stages.trk: unknown option 'track_tresh' (did you mean 'track_thresh'?)"),
])
def test_bad_options_are_one_line_errors_naming_the_path(tmp_path: Path, options: str, message: str) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(PIPELINE.format(weights="w.pth", video="v.mp4", out="o.jsonl", options=", " + options))
    with pytest.raises(SpecError) as info:
        load_pipeline(path)
    assert str(info.value) == f"{path}: {message}"


def test_pipeline_to_json_every_detection_has_a_persistent_track_id(
        tmp_path: Path, street_720p: Path, nano_pth: Path) -> None:
    out, path = tmp_path / "tracks.jsonl", tmp_path / "p.yaml"
    path.write_text(PIPELINE.format(weights=nano_pth, video=street_720p, out=out, options=""))
    cmd = [sys.executable, "-m", "streamyolox", "run", str(path), "--no-dashboard"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=400, cwd=REPO)
    assert result.returncode == 0, result.stderr[-2000:]
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["frame"] for r in records] == list(range(300))
    items = [d for r in records for d in r["detections"]]
    assert items and all(d["track_id"] is None or isinstance(d["track_id"], int) for d in items)
    # confirmed ids persist: an id seen on frame t is seen again on frame t + 1, nearly always
    per_frame = [{d["track_id"] for d in r["detections"]} - {None} for r in records]
    pairs = list(itertools.pairwise(per_frame))
    continued = sum(len(now & nxt) for now, nxt in pairs) / sum(len(now) for now, _ in pairs)
    unique = set().union(*per_frame)
    print(f"{len(unique)} ids over 300 frames; {continued:.1%} of ids continue on the next frame")
    assert continued >= 0.98 and len(unique) <= 20
    # the stage gives the pure tracker's ids (fed the JSON's rounded boxes and scores: a score within
    # 5e-6 of a threshold may fall the other way, hence not 100%)
    tracker, same, total = ByteTracker(), 0, 0
    for r in records:
        d = Detections.from_json(r["detections"])
        same += int(np.sum(tracker.update(d.xyxy, d.scores, d.class_ids).ids == d.track_ids))
        total += len(d)
    assert same / total >= 0.99, f"{same} of {total} ids equal the pure tracker's"


@pytest.mark.rtsp
def test_decode_marks_a_reconnect_and_the_stage_clears_the_stream(street_720p: Path) -> None:
    from tests.sources.conftest import RtspServer, free_port, gst_rtsp_missing

    reason = gst_rtsp_missing()
    if reason:
        pytest.skip(reason)
    server = RtspServer(street_720p, free_port())
    server.start()
    source = make_stage(DecodeStage, {"url": server.url, "open_timeout_s": 3, "read_timeout_s": 2,
                                      "stall_timeout_s": 2, "backoff_initial_s": 0.2, "backoff_max_s": 1.0})
    try:
        source.open()
        gen = source.generate()
        before = [next(gen) for _ in range(20)]
        server.kill()
        restart = threading.Timer(1.0, server.start)
        restart.start()
        try:
            after = [next(gen) for _ in range(30)]  # blocks through the outage, then a new connection
        finally:
            restart.join()
    finally:
        source.close()
        server.stop()
    frames = before + after
    times = np.array([p.meta.time for p in frames])
    # the new connection's first frame: after the kill the decoder still flushes a few old frames (8 here)
    jump = int(np.argmax(np.diff(times))) + 1
    assert jump >= 20 and times[jump] - times[jump - 1] > 0.8
    assert [p.meta.extra["reconnects"] for p in frames] == [0] * jump + [1] * (len(frames) - jump)
    stage = opened()
    ids = []
    for p in frames:  # one synthetic object standing still across the reconnect
        p.detections = dets((300, 300, 0.9, 0))
        ids.append(ids_of(stage, p))
    assert ids == [[-1]] + [[1]] * (jump - 1) + [[-1]] + [[2]] * (len(frames) - jump - 1)
    assert stage.ctx.counters["track_resets"] == 1
