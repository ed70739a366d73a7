"""Fair batching across streams: the inbox serves streams round robin (a stream that floods the queue gets
one slot per round), keeps each stream's order, and keeps arrival order for a replica's inbox; end to end,
each stream's frames stay in order through batches and replicas."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import av
import psutil
import pytest

from streamyolox.detections import FrameMeta
from streamyolox.graph import shm
from streamyolox.graph.inbox import EndOfInput, Inbox, Item
from streamyolox.graph.runner import RunOptions, run_pipeline
from streamyolox.graph.transport import EdgeInfo
from streamyolox.graph.validate import load_pipeline
from streamyolox.stages.packet import Packet

NEVER = lambda: False  # noqa: E731
BATCH = 4


def _edge(index: int, split: tuple[int, int] | None = None, policy: str = "block", queue: int = 64) -> EdgeInfo:
    return EdgeInfo(index, f"src{index}", "det", "inproc", "", queue, policy, queue, split=split)


def _item(edge: int, stream: str, frame: int) -> Item:
    return Item(edge, Packet(FrameMeta(stream=stream, frame=frame, time=1.0)))


def _flood(inbox: Inbox, edges: tuple[int, int], steps: int = 40) -> list[tuple[list[tuple[str, int]], bool]]:
    """Each step: the file stream queues 5 frames (more than a batch), the camera 1 every other step; then
    one batch is taken. Returns each batch and whether a camera frame was queued when it was taken."""
    batches = []
    n = {"file": 0, "cam": 0}
    for step in range(steps):
        for _ in range(5):
            inbox.put(_item(edges[0], "file", n["file"]))
            n["file"] += 1
        if step % 2 == 0:
            inbox.put(_item(edges[1], "cam", n["cam"]))
            n["cam"] += 1
        cam_waiting = any(it.packet.meta.stream == "cam" for it in inbox.items)
        batch = inbox.get_batch(BATCH, 0, NEVER)
        batches.append(([(it.packet.meta.stream, it.packet.meta.frame) for it in batch], cam_waiting))
    return batches


def _drain(inbox: Inbox) -> list[tuple[str, int]]:
    for e in inbox.edges:
        inbox.end(e)
    out = []
    while True:
        try:
            out += [(it.packet.meta.stream, it.packet.meta.frame) for it in inbox.get_batch(BATCH, 0, NEVER)]
        except EndOfInput:
            assert inbox.queued == {} and not inbox.items  # the per-stream bookkeeping adds up
            return out


def _check_order(frames: list[tuple[str, int]], counts: dict[str, int]) -> None:
    for stream, n in counts.items():
        assert [f for s, f in frames if s == stream] == list(range(n)), stream


@pytest.mark.parametrize("edges", [(0, 0), (0, 1)], ids=["one-edge", "two-edges"])
def test_flooding_stream_does_not_starve_the_camera(edges: tuple[int, int]) -> None:
    inbox = Inbox([_edge(i) for i in sorted(set(edges))])
    batches = _flood(inbox, edges)
    for frames, cam_waiting in batches:
        assert len(frames) == BATCH
        if cam_waiting:  # its frame takes a slot of this very batch, although 100+ file frames are older
            assert ("cam" in {s for s, _ in frames}), frames
    taken = [f for frames, _ in batches for f in frames]
    assert sum(s == "cam" for s, _ in taken) == 20  # every camera frame got out before the backlog
    _check_order(taken + _drain(inbox), {"file": 200, "cam": 20})


def test_round_robin_takes_one_frame_per_stream_per_round() -> None:
    inbox = Inbox([_edge(0)])
    for stream, n in (("a", 6), ("b", 1), ("c", 2)):
        for i in range(n):
            inbox.put(_item(0, stream, i))
    first = inbox.get_batch(BATCH, 0, NEVER)
    # round 1: the oldest queued frame of each stream (oldest first), then round 2 starts
    assert [(it.packet.meta.stream, it.packet.meta.frame) for it in first] == [("a", 0), ("b", 0), ("c", 0),
                                                                              ("a", 1)]
    second = inbox.get_batch(BATCH, 0, NEVER)  # the round carries on across batches: c before a
    assert [(it.packet.meta.stream, it.packet.meta.frame) for it in second] == [("c", 1), ("a", 2), ("a", 3),
                                                                               ("a", 4)]


def test_replica_inbox_keeps_arrival_order() -> None:
    """A replica's outputs must leave in its input order (the consumers' reorder buffers rely on it): its
    inbox is FIFO, so there the flood does delay the camera (what the round robin above prevents)."""
    inbox = Inbox([_edge(0, split=(0, 2))])
    batches = _flood(inbox, (0, 0))
    taken = [f for frames, _ in batches for f in frames]
    starved = [frames for frames, cam_waiting in batches if cam_waiting and "cam" not in {s for s, _ in frames}]
    assert len(starved) > 10
    rest = _drain(inbox)
    _check_order(taken + rest, {"file": 200, "cam": 20})
    # FIFO: the i-th camera frame came after 10*i+5 file frames, and leaves after exactly those
    flat = taken + rest
    for i in range(20):
        assert sum(s == "file" for s, _ in flat[:flat.index(("cam", i))]) == 10 * i + 5


def test_drop_oldest_drops_the_edge_oldest_and_keeps_order() -> None:
    inbox = Inbox([_edge(0, policy="drop_oldest", queue=4)])
    for i in range(6):  # a0 b0 a1 b1 a2 b2 into a queue of 4: a0 and b0 are dropped
        inbox.put(_item(0, "ab"[i % 2], i // 2))
    assert inbox.dropped == {0: 2} and inbox.stream_counts()[1] == {0: {"a": 1, "b": 1}}
    got = _drain(inbox)
    assert got == [("a", 1), ("b", 1), ("a", 2), ("b", 2)]


# -- end to end --------------------------------------------------------------------------------------------
def _run(tmp_path: Path, text: str) -> dict:
    f = tmp_path / "p.yaml"
    f.write_text(text)
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    result = run_pipeline(load_pipeline(f, (), env={"T": str(tmp_path)}), RunOptions())
    time.sleep(0.1)
    assert not [p for p in psutil.Process().children(recursive=True)
                if p.pid not in before and "resource_tracker" not in " ".join(p.cmdline())]
    assert shm.leftovers(f"syx-{os.getpid()}-") == []
    assert result.exit_code == 0, result.error
    return result.metrics


TWO_SOURCES = """
stages:
  fast: {kind: "fake_stages:Synthetic", frames: 240, stream: fast}
  slow: {kind: "fake_stages:Synthetic", frames: 40, fps: 60, stream: slow}
  pre: {kind: "fake_stages:Passthrough", inputs: [fast, slow]}
  det: {kind: "fake_stages:Passthrough", inputs: [pre], batch: 4, wait_ms: 30, jitter_ms: 6REPLICAS}
  sink: {kind: "fake_stages:Collect", inputs: [det], path: "${T}/out.jsonl"}
"""


@pytest.mark.timeout(120)
@pytest.mark.parametrize("replicas", [1, 2])
def test_each_stream_in_order_through_batches(tmp_path: Path, replicas: int) -> None:
    text = TWO_SOURCES.replace("REPLICAS", f", replicas: {replicas}" if replicas > 1 else "")
    metrics = _run(tmp_path, text)
    recs = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    recs = [r for r in recs if "frame" in r]
    _check_order([(r["stream"], r["frame"]) for r in recs], {"fast": 240, "slow": 40})
    batches = [r["extra"].get("batch", 1) for r in recs]
    assert max(batches) == BATCH  # frames of both streams were batched together
    mixed = {r["frame"] for r in recs if r["stream"] == "slow" and r["extra"].get("batch", 1) > 1}
    assert mixed  # the slow stream rode in batches with the fast one
    assert {s: metrics["streams"][s]["sink_frames"] for s in ("fast", "slow")} == {"fast": 240, "slow": 40}


def _pyav_frames(path: Path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


@pytest.mark.timeout(300)
def test_yolox_batch4_two_sources_keep_order(tmp_path: Path, nano_onnx: Path, street_720p: Path) -> None:
    """The real detector batches 4 frames of two decode sources; every frame of each reaches the JSON
    sink once and in order (counts from PyAV)."""
    dog = street_720p.parent / "dog_pan_480p.mp4"
    text = f"""
model: {{name: yolox-nano, weights: "{nano_onnx}", backend: onnxruntime}}
stages:
  street: {{kind: decode, url: "{street_720p}", stride: 4}}
  dog: {{kind: decode, url: "{dog}"}}
  pre: {{kind: letterbox, inputs: [street, dog]}}
  det: {{kind: yolox, inputs: [pre], batch: 4, max_wait_ms: 50, threads: 2}}
  post: {{kind: nms, inputs: [det], score_threshold: 0.3}}
  json: {{kind: json, inputs: [post], path: "${{T}}/det.jsonl"}}
"""
    metrics = _run(tmp_path, text)
    recs = [json.loads(x) for x in (tmp_path / "det.jsonl").read_text().splitlines()]
    by_stream: dict[str, list[int]] = {}
    for r in recs:
        if "frame" in r:
            by_stream.setdefault(r["stream"], []).append(r["frame"])
    street_n, dog_n = _pyav_frames(street_720p), _pyav_frames(dog)
    assert by_stream["dog"] == list(range(dog_n))
    assert by_stream["street"] == list(range(0, street_n, 4))  # stride 4 keeps the frame indices
    assert metrics["streams"]["dog"]["sink_frames"] == dog_n
    assert metrics["streams"]["street"]["sink_frames"] == len(range(0, street_n, 4))
