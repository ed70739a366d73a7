"""Stage replicas: the reorder buffer against a shuffled model, then whole runs with test stages (order
with 2 and 3 replicas and random per-packet times, filtering, fan-out, drop_oldest, a failing replica,
kill -9 with and without restart). Every run: the right exit, no orphan process, no /dev/shm left."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
from pathlib import Path

import pytest
from test_runner import _finish, _records, _run_here, _start_cli, _wait_lines

from streamyolox.detections import FrameMeta
from streamyolox.graph.inbox import EndOfInput, Inbox, Item
from streamyolox.graph.replicas import Reorder, output_tags
from streamyolox.graph.transport import EdgeInfo
from streamyolox.graph.validate import SpecError, parse_pipeline
from streamyolox.stages.packet import Packet

pytestmark = pytest.mark.timeout(120)


def _replica_streams(n_items: int, n: int, rng: random.Random, drop: float = 0.0,
                     empty: float = 0.0) -> tuple[list[list[tuple]], list[int]]:
    """What each of `n` replicas sends for seqs 0..n_items-1 (dropped ones: nothing; filtered ones: a
    marker; others one or two outputs), and the expected released order."""
    streams: list[list[tuple]] = [[] for _ in range(n)]
    expected = []
    for seq in range(n_items):
        r = seq % n
        if rng.random() < drop:
            continue
        if rng.random() < empty:
            streams[r].append(((0, seq, True), None))
            continue
        outs = 2 if rng.random() < 0.2 else 1
        for k in range(outs):
            streams[r].append(((0, seq, k == outs - 1), (seq, k)))
            expected.append(seq)
    return streams, expected


@pytest.mark.parametrize("n", [2, 3])
@pytest.mark.parametrize("seed", range(5))
def test_reorder_restores_order_of_random_interleavings(n: int, seed: int) -> None:
    rng = random.Random(seed)
    streams, expected = _replica_streams(200, n, rng, drop=0.1 * (seed % 2), empty=0.1)
    buf: Reorder[tuple[int, int]] = Reorder(n)
    released = []
    pending = [list(s) for s in streams]
    while any(pending):  # deliver the replicas' messages in a random interleaving (each stream in order)
        r = rng.choice([i for i, p in enumerate(pending) if p])
        tag, item = pending[r].pop(0)
        released += buf.push(r, tag, item)
        if not pending[r]:
            released += buf.end(r)
    assert [seq for seq, _ in released] == expected
    assert released == sorted(released)  # multi-output inputs keep their outputs' order too


def test_reorder_waits_for_a_live_replica_and_skips_an_ended_one() -> None:
    buf: Reorder[str] = Reorder(2)
    assert buf.push(1, (0, 1, True), "b") == []  # seq 0 may still come from replica 0
    assert buf.push(1, (0, 3, True), "d") == []
    assert buf.end(0) == ["b", "d"]  # replica 0 ended: seq 0 and 2 will never come


def test_reorder_new_epoch_after_old_one_drains() -> None:
    buf: Reorder[str] = Reorder(2)
    assert buf.push(0, (0, 0, True), "a") == ["a"]
    assert buf.push(0, (1, 0, True), "A") == []  # the producer restarted; replica 1 may still send seq 1
    assert buf.push(1, (0, 1, True), "b") == ["b"]
    assert buf.push(1, (1, 1, True), "B") == ["A", "B"]


def test_reorder_drop_oldest_from_buffer() -> None:
    buf: Reorder[str] = Reorder(2)
    assert buf.push(1, (0, 1, True), "b") == []
    assert buf.held(1) == 1 and buf.remove_oldest(1) == "b" and buf.remove_oldest(1) is None
    assert buf.push(0, (0, 0, True), "a") == ["a"]
    assert buf.push(1, (0, 3, True), "d") == [] and buf.push(0, (0, 2, True), "c") == ["c", "d"]


def test_output_tags() -> None:
    tags = [(0, 4, True), (0, 5, True)]
    assert output_tags(tags, 2) == (tags, [])
    assert output_tags(tags, 0) == ([], tags)
    assert output_tags(tags, 3) == ([(0, 5, False), (0, 5, False), (0, 5, True)], [(0, 4, True)])
    assert output_tags([None], 2) == ([None, None], [])


RUN = """
stages:
  src: {kind: "fake_stages:Synthetic", frames: 90, size: 720p, with_raw: true}
  a: {kind: "fake_stages:Passthrough", inputs: [src], replicas: N, jitter_ms: 12, skip_every: 7, queue: 3}
  sink: {kind: "fake_stages:Collect", inputs: [a], path: "${T}/out.jsonl"}
  b: {kind: "fake_stages:Passthrough", inputs: [a], worker: w}
  sink2: {kind: "fake_stages:Collect", inputs: [b], path: "${T}/out2.jsonl", worker: w}
"""


@pytest.mark.parametrize("n", [2, 3])
def test_replicas_keep_order_with_random_times(tmp_path: Path, n: int) -> None:
    res = _run_here(tmp_path, RUN.replace("N", str(n)), metrics_json=str(tmp_path / "m.json"))
    assert res.exit_code == 0, res.error
    want = [i for i in range(90) if i % 7]
    for name, path in (("out", ["a#{}"]), ("out2", ["a#{}", "b"])):
        recs, closed = _records(tmp_path / f"{name}.jsonl")
        assert closed and [r["frame"] for r in recs] == want  # in order; filtered frames skipped
        for r in recs:  # round robin: frame i went to replica i % n
            assert r["extra"]["path"] == [p.format(r["frame"] % n) for p in path]
            assert r["raw_sum"] == 24.0 * r["frame"]
    rows = {r["stage"]: r for r in json.loads((tmp_path / "m.json").read_text())["stages"]}
    assert rows["a"]["replicas"] == n and rows["a"]["frames_in"] == 90 and rows["a"]["frames_out"] == 77
    assert rows["a"]["counters"]["seen"] == 77 and rows["sink"]["frames_in"] == 77


def test_replicas_with_drop_oldest(tmp_path: Path) -> None:
    text = """
stages:
  src: {kind: "fake_stages:Synthetic", frames: 150, size: 720p, fps: 150}
  slow: {kind: "fake_stages:Passthrough", inputs: [src], replicas: 2, sleep_ms: 25, jitter_ms: 10,
         queue: 2, policy: drop_oldest}
  sink: {kind: "fake_stages:Collect", inputs: [slow], path: "${T}/out.jsonl", queue: 2, policy: drop_oldest}
"""
    res = _run_here(tmp_path, text)
    assert res.exit_code == 0, res.error
    recs, closed = _records(tmp_path / "out.jsonl")
    rows = {r["stage"]: r for r in res.metrics["stages"]}
    frames = [r["frame"] for r in recs]
    assert closed and frames == sorted(set(frames)) and rows["slow"]["dropped"] > 20
    assert len(recs) + rows["slow"]["dropped"] + rows["sink"]["dropped"] == 150
    assert max(r["age"] for r in recs[5:]) < 0.4  # bounded by the queues, not by the 150 frames


def test_failing_replica_names_it(tmp_path: Path) -> None:
    text = RUN.replace("N", "2").replace("skip_every: 7", "fail_on: 33")
    res = _run_here(tmp_path, text)
    assert res.exit_code == 1
    assert res.error == "stage 'a#1' failed on frame 33: ValueError: boom at 33"
    recs, closed = _records(tmp_path / "out.jsonl")
    frames = [r["frame"] for r in recs]
    assert closed and frames == sorted(frames) and 33 not in frames


SLOW = """
stages:
  src: {kind: "fake_stages:Synthetic", frames: 100000, size: 720p, fps: 60}
  a: {kind: "fake_stages:Passthrough", inputs: [src], replicas: 2, pid_file: "${T}/a.pid", restart: RESTART}
  sink: {kind: "fake_stages:Collect", inputs: [a], path: "${T}/out.jsonl"}
"""


def _kill_replica(tmp_path: Path) -> None:
    _wait_lines(tmp_path / "out.jsonl", 10)
    pids = (tmp_path / "a.pid").read_text().split()
    assert len(pids) == 2
    os.kill(int(pids[1]), signal.SIGKILL)


def test_kill9_replica_fails_pipeline(tmp_path: Path) -> None:
    proc = _start_cli(tmp_path, SLOW.replace("RESTART", "never"))
    _kill_replica(tmp_path)
    code, err, _ = _finish(proc, 15)
    assert code == 1
    line = err.strip().splitlines()[-1]
    assert line in {f"streamyolox: error: stage 'a#{i}' died (killed by SIGKILL)" for i in (0, 1)}, err
    recs, closed = _records(tmp_path / "out.jsonl")
    assert closed and [r["frame"] for r in recs] == sorted(r["frame"] for r in recs)


def test_kill9_replica_restarts_on_failure(tmp_path: Path) -> None:
    proc = _start_cli(tmp_path, SLOW.replace("RESTART", "on-failure").replace("100000", "300"))
    _kill_replica(tmp_path)
    code, err, _ = _finish(proc, 60)
    assert code == 0, err
    assert len((tmp_path / "a.pid").read_text().split()) == 3  # two replicas, one of them opened twice
    recs, closed = _records(tmp_path / "out.jsonl")
    frames = [r["frame"] for r in recs]
    assert closed and frames == sorted(set(frames)) and frames[-1] == 299 and len(frames) > 250
    rows = {r["stage"]: r for r in json.loads((tmp_path / "m.json").read_text())["stages"]}
    assert rows["a"]["restarts"] == 1 and rows["a"]["state"] == "done"


BASE = {"src": {"kind": "fake_stages:Synthetic"},
        "a": {"kind": "fake_stages:Passthrough", "inputs": ["src"]},
        "b": {"kind": "fake_stages:Passthrough", "inputs": ["a"]},
        "sink": {"kind": "fake_stages:Collect", "inputs": ["b"], "path": "x"}}


@pytest.mark.parametrize(("stage", "extra", "message"), [
    ("a", {"replicas": 0}, "stages.a.replicas: expected a positive int, got 0"),
    ("src", {"replicas": 2}, "stages.src.replicas: a source stage ('fake_stages:Synthetic') cannot be replicated"),
    ("sink", {"replicas": 2}, "stages.sink.replicas: a sink stage ('fake_stages:Collect') cannot be replicated"),
    ("a", {"replicas": 2, "worker": "w"},
     "stages.a.replicas: cannot be combined with 'worker' (each replica is its own process)"),
    ("b", {"replicas": 2, "inputs": ["a", "src"]},
     "stages.b.replicas: a replicated stage takes exactly one input, got ['a', 'src']"),
])
def test_invalid_replicas(stage: str, extra: dict, message: str) -> None:
    doc = {"stages": {k: dict(v) for k, v in BASE.items()}}
    doc["stages"][stage].update(extra)
    with pytest.raises(SpecError) as info:
        parse_pipeline(doc)
    assert str(info.value) == message


def test_adjacent_replicated_stages_rejected() -> None:
    doc = {"stages": {k: dict(v) for k, v in BASE.items()}}
    doc["stages"]["a"]["replicas"] = 2
    doc["stages"]["b"]["replicas"] = 2
    with pytest.raises(SpecError, match=r"^stages\.b\.replicas: its input 'a' is replicated too; put a stage "
                                        r"with replicas: 1 between them$"):
        parse_pipeline(doc)


def test_reorder_skips_a_large_gap_at_once() -> None:
    base = 3 * 10**8  # e.g. a consumer restarted mid-stream; seq s comes from replica s % 3
    buf: Reorder[str] = Reorder(3)
    assert buf.push(2, (0, base + 2, True), "c") == []
    assert buf.push(1, (0, base + 1, True), "b") == []
    assert buf.push(0, (0, base + 3, True), "d") == ["b", "c", "d"]
    assert buf.next == (0, base + 4)


def _merged_inbox(queue: int) -> Inbox:
    """The inbox of a stage fed by 2 replicas of `a` over drop_oldest socket edges of `queue` packets."""
    return Inbox([EdgeInfo(i, f"a#{i}", "sink", "ipc", "", queue, "drop_oldest", queue + 2, merge=(i, 2))
                  for i in range(2)])


@pytest.mark.parametrize("live", [False, True])
def test_drop_oldest_never_evicts_a_file_frame_waiting_in_the_reorder_buffer(live: bool) -> None:
    # replica 1's outputs (frames 1, 3, 5, 7) wait for frame 0, which replica 0 is slow to send: the edge is
    # over its queue, but a file's frames (extra["live"] False) are never dropped; a camera's are
    inbox = _merged_inbox(queue=2)
    for seq in (1, 3, 5, 7):
        inbox.put(Item(1, Packet(FrameMeta(frame=seq, extra={"live": live})), tag=(0, seq, True)))
    for seq in (0, 2, 4, 6):
        inbox.put(Item(0, Packet(FrameMeta(frame=seq, extra={"live": live})), tag=(0, seq, True)))
    inbox.end(0)
    inbox.end(1)
    frames = []
    with contextlib.suppress(EndOfInput):
        while True:
            frames += [it.packet.meta.frame for it in inbox.get_batch(8, 0.0, lambda: False)]
    if live:  # nobody consumed while they arrived: the oldest went, in order, each one counted
        assert frames == sorted(frames) and len(frames) < 8 and sum(inbox.dropped.values()) == 8 - len(frames)
        assert inbox.dropped[1] > 0  # replica 1's frames evicted from the reorder buffer too
    else:
        assert frames == list(range(8)) and inbox.dropped == {0: 0, 1: 0}
