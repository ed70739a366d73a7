"""Edges without processes: slots, credits, zero-copy views, policies, EOS, hello after a restart; the
HTTP endpoint."""

from __future__ import annotations

import json
import mmap
import os
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import zmq

from streamyolox.detections import Detections, FrameMeta
from streamyolox.graph import shm
from streamyolox.graph.exporter import serve
from streamyolox.graph.inbox import EndOfInput, Inbox, InprocOutlet, Item, Receiver
from streamyolox.graph.metrics import MetricsBoard
from streamyolox.graph.transport import EdgeInfo, SocketOutlet, split_packet, to_host
from streamyolox.graph.wire import Hello
from streamyolox.stages.packet import Packet

NEVER = lambda: False  # noqa: E731


def _packet(i: int, h: int = 36, w: int = 64) -> Packet:
    dets = Detections(np.array([[i, 0, i + 1, 1]], np.float32), [0.9], [1])
    return Packet(FrameMeta(frame=i, time=1.0), frame=np.full((h, w, 3), i, np.uint8),
                  raw=np.arange(6, dtype=np.float32).reshape(2, 3) + i, detections=dets, extra={"i": i})


@pytest.fixture
def edge_pair(tmp_path: Path, request: pytest.FixtureRequest):
    policy, queue = getattr(request, "param", ("block", 2))
    prefix = f"syx-test-{os.getpid()}-"
    slots = queue + (3 if policy == "drop_oldest" else 2)
    edge = EdgeInfo(0, "a", "b", "ipc", f"ipc://{tmp_path}/e0", queue, policy, slots, prefix)
    ctx = zmq.Context()
    inbox = Inbox([edge])
    recv = Receiver(ctx, [edge], {0: inbox})
    recv.start()
    out = SocketOutlet(edge, ctx)
    yield out, inbox
    out.close()
    recv.stop()
    ctx.term()
    shm.sweep(prefix)
    assert shm.leftovers(prefix) == []


def test_shm_edge_zero_copy_and_credits(edge_pair) -> None:
    out, inbox = edge_pair
    for i in range(4):  # 4 slots: all sendable before any release
        out.send(_packet(i), NEVER)
    assert not out.free
    items = [inbox.get_batch(1, 0, NEVER)[0] for _ in range(4)]
    p = items[2].packet
    assert p.extra == {"i": 2} and p.detections.to_json()[0]["bbox"] == [2, 0, 3, 1]
    assert (p.frame == 2).all() and p.frame.shape == (36, 64, 3) and p.raw[0, 0] == 2
    assert isinstance(p.frame.base, mmap.mmap) and isinstance(p.raw.base, mmap.mmap)  # views into the slot
    items[0].release()
    out.send(_packet(4), NEVER)  # the credit came back
    out.send_eos()
    rest = [inbox.get_batch(1, 0, NEVER)[0] for _ in range(1)]
    assert rest[0].packet.meta.frame == 4
    with pytest.raises(EndOfInput):
        inbox.get_batch(1, 0.01, NEVER)


@pytest.mark.parametrize("edge_pair", [("drop_oldest", 2)], indirect=True)
def test_drop_oldest_keeps_newest(edge_pair) -> None:
    out, inbox = edge_pair
    for i in range(20):  # never blocks: the receiver drops old packets and returns their slots
        out.send(_packet(i), NEVER)
    out.send_eos()
    deadline = time.monotonic() + 10
    while 0 not in inbox.ended and time.monotonic() < deadline:  # everything arrived, nothing consumed
        time.sleep(0.01)
    got = []
    try:
        while True:
            for it in inbox.get_batch(1, 0, NEVER):
                got.append(it.packet.meta.frame)
                it.release()
    except EndOfInput:
        pass
    assert got == [18, 19] and inbox.dropped[0] == 18


def test_restarted_consumer_hello_reclaims_slots(edge_pair) -> None:
    out, _ = edge_pair
    for i in range(4):
        out.send(_packet(i), NEVER)
    out._handle(Hello(1))  # what a restarted consumer answers to data meant for its old self
    assert sorted(out.free) == [0, 1, 2, 3] and out.target == 1


def test_inproc_block_waits_and_drop_counts() -> None:
    edge = EdgeInfo(0, "a", "b", "inproc", "", 2, "drop_oldest", 2)
    inbox = Inbox([edge])
    released = []
    out = InprocOutlet(edge, inbox)
    for i in range(5):
        out.send(_packet(i), NEVER, release=lambda i=i: released.append(i))
    assert released == [0, 1, 2] and inbox.dropped[0] == 3
    block = EdgeInfo(1, "a", "c", "inproc", "", 1, "block", 1)
    inbox2 = Inbox([block])
    inbox2.put(Item(1, _packet(0)))
    from streamyolox.graph.transport import Aborted

    with pytest.raises(Aborted):  # full: waits until abort
        inbox2.put(Item(1, _packet(1)), abort=lambda: True)


def test_to_host_and_split() -> None:
    torch = pytest.importorskip("torch")
    p = Packet(FrameMeta(), frame=np.zeros((2, 2, 3), np.uint8), image=torch.ones(3, 4, 4))
    stub, arrays = split_packet(p)
    assert stub.frame is None and stub.image is None and p.frame is not None
    assert [f for f, _ in arrays] == ["frame", "image"] and isinstance(arrays[1][1], np.ndarray)
    assert to_host(torch.zeros(2)).dtype == np.float32


def test_http_metrics_and_health() -> None:
    board = MetricsBoard({"src": "decode", "nms": "nms"})
    board.update({"stage": "nms", "state": "running", "frames_in": 10, "frames_out": 10, "busy_s": 0.5,
                  "ages": [0.01, 0.02, 0.03], "counters": {"reconnects": 2}, "queue": {"src": 3},
                  "dropped": {"src": 4}, "time": 1.0})
    server = serve(board, 0, "demo", host="127.0.0.1")
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        text = urllib.request.urlopen(f"{base}/metrics", timeout=5).read().decode()
        assert 'streamyolox_stage_frames_total{pipeline="demo",stage="nms"} 10.0' in text
        assert 'streamyolox_edge_queue_depth{input="src",pipeline="demo",stage="nms"} 3.0' in text
        assert 'streamyolox_stage_counter{name="reconnects",pipeline="demo",stage="nms"} 2.0' in text
        assert 'quantile="0.5"' in text
        health = json.loads(urllib.request.urlopen(f"{base}/health", timeout=5).read())
        assert health["status"] == "ok" and health["stages"]["nms"]["state"] == "running"
        board.set_state("nms", "failed", "stage 'nms' failed on frame 3: ValueError: x")
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(f"{base}/health", timeout=5)
        assert info.value.code == 503
    finally:
        server.shutdown()
        server.server_close()


def test_restarted_consumer_unfreezes_a_producer_whose_credits_it_held(tmp_path: Path) -> None:
    """The freeze of `restart: on-failure`: every credit was held by the consumer that died, so the producer
    sent nothing and a consumer that only answered data never said hello. Now it says hello unprompted; the
    producer takes the credits back and reports the four frames the dead one held."""
    prefix = f"syx-test-{os.getpid()}-"
    edge = EdgeInfo(0, "a", "b", "ipc", f"ipc://{tmp_path}/e0", 2, "block", 4, prefix)
    ctx = zmq.Context()
    dead = Receiver(ctx, [edge], {0: Inbox([edge])})
    dead.start()
    out = SocketOutlet(edge, ctx)
    try:
        for i in range(4):
            out.send(_packet(i), NEVER)
        assert not out.free
        dead.stop(linger_ms=0)  # dies holding all four (never released)
        inbox = Inbox([edge])
        reborn = Receiver(ctx, [edge], {0: inbox}, incarnation=1)
        reborn.start()
        deadline = time.monotonic() + 10
        out.send(_packet(4), lambda: time.monotonic() > deadline)  # Aborted (a failure) if it still froze
        item = inbox.get_batch(1, 5, NEVER)[0]
        assert item.packet.meta.frame == 4 and out.target == 1
        assert out.take_lost() == [(0, 0, [("0", 0), ("0", 1), ("0", 2), ("0", 3)])] and out.take_lost() == []
        item.release()
        out.send_eos()
        out.finish(lambda: time.monotonic() > deadline)  # returns once the credit is back
        assert not out.outstanding
        reborn.stop()
    finally:
        out.close()
        ctx.term()
        shm.sweep(prefix)


def test_restarted_producer_probe_resumes_after_what_the_consumer_has(edge_pair) -> None:
    out, inbox = edge_pair
    for i in range(3):
        out.send(_packet(i), NEVER)
    for _ in range(3):
        inbox.get_batch(1, 5, NEVER)[0].release()
    out.close()  # the old incarnation is gone (its connection with it: replies go to the live peer)
    time.sleep(0.2)
    ctx = zmq.Context()
    again = SocketOutlet(out.edge, ctx, incarnation=1, resume=True)  # a file source, restarted
    try:
        deadline = time.monotonic() + 10
        skipped = [again.skips(_packet(i), lambda: time.monotonic() > deadline) for i in range(4)]
        assert skipped == [True, True, True, False] and again.resume_after == {"0": 2}
        again.send(_packet(1), NEVER)  # skipped: nothing sent
        again.send(_packet(3), NEVER)
        assert inbox.get_batch(1, 5, NEVER)[0].packet.meta.frame == 3
    finally:
        again.close()
        ctx.term()
