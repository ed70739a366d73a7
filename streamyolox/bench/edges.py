"""Frames over the runtime's edge kinds that `benchmarks/transport_bench.py` does not cover: `inproc`
(two stages in one worker: the packet object is handed over) and `tcp` (zero-copy multipart over loopback).

The `ipc` edge (shared-memory slots between processes) is measured by the runtime's own
`benchmarks/transport_bench.py` (`transport_fps`), which `ops_bench` imports. Both here use the runtime's
real classes (`SocketOutlet`, `InprocOutlet`, `Receiver`, `Inbox`); the consumer reads one pixel per frame
and releases it, as a stage would.
"""

from __future__ import annotations

import multiprocessing as mp
import socket
import threading
import time
from typing import Any

import numpy as np
import zmq

from streamyolox.detections import FrameMeta
from streamyolox.graph.inbox import EndOfInput, Inbox, InprocOutlet, Receiver
from streamyolox.graph.transport import EdgeInfo, SocketOutlet
from streamyolox.stages.packet import Packet

WARMUP = 20


def _drain(inbox: Inbox) -> tuple[int, float]:
    """Consume until end of stream: (frames, seconds from the first frame to the end)."""
    n, t0 = 0, None
    try:
        while True:
            for item in inbox.get_batch(1, 0, lambda: False):
                t0 = t0 or time.perf_counter()
                frame = item.packet.frame
                if frame is not None:
                    int(frame[-1, -1, 0])  # touch the pixels like a stage would
                item.release()
                n += 1
    except EndOfInput:
        pass
    return n, time.perf_counter() - (t0 or time.perf_counter())


def _consumer(edge: EdgeInfo, ready: Any, result: Any) -> None:
    inbox = Inbox([edge])
    recv = Receiver(zmq.Context.instance(), [edge], {edge.index: inbox})
    recv.start()
    ready.set()
    result.put(_drain(inbox)[0])
    recv.stop()


def _send_all(outlet: Any, frame: np.ndarray, n: int) -> tuple[float, float]:
    """Send WARMUP + n packets, then end of stream: (start of the timed n, seconds spent sending them;
    the bounded queue keeps the producer at most `slots` ahead of the consumer)."""
    for i in range(WARMUP):
        outlet.send(Packet(FrameMeta(frame=i), frame=frame), lambda: False)
    t = time.perf_counter()
    for i in range(n):
        outlet.send(Packet(FrameMeta(frame=WARMUP + i), frame=frame), lambda: False)
    sent = time.perf_counter() - t
    outlet.send_eos()
    return t, sent


def inproc_fps(frame: np.ndarray, n: int, slots: int = 8) -> dict[str, float]:
    """Frames/s through an `inproc` edge: producer in this thread, consumer in another."""
    edge = EdgeInfo(0, "a", "b", "inproc", "", slots, "block", slots)
    inbox = Inbox([edge])
    out: dict[str, Any] = {}
    consumer = threading.Thread(target=lambda: out.update(done=_drain(inbox)), daemon=True)
    consumer.start()
    t, sent = _send_all(InprocOutlet(edge, inbox), frame, n)
    consumer.join(60)
    total = time.perf_counter() - t
    received = out.get("done", (0, 0.0))[0]
    if received != n + WARMUP:
        raise RuntimeError(f"inproc edge: received {received} of {n + WARMUP} frames")
    return {"fps": n / total, "send_fps": n / sent}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tcp_fps(frame: np.ndarray, n: int, slots: int = 8) -> dict[str, float]:
    """Frames/s through a `tcp` edge on loopback to a spawned consumer process."""
    edge = EdgeInfo(0, "a", "b", "tcp", f"tcp://127.0.0.1:{_free_port()}", slots, "block", slots)
    ctx = mp.get_context("spawn")
    ready, result = ctx.Event(), ctx.Queue()
    proc = ctx.Process(target=_consumer, args=(edge, ready, result), daemon=True)
    proc.start()
    outlet = SocketOutlet(edge, zmq.Context.instance())
    try:
        if not ready.wait(60):
            raise RuntimeError("tcp edge: the consumer process did not start within 60 s")
        t, sent = _send_all(outlet, frame, n)
        received = result.get(timeout=120)
        total = time.perf_counter() - t
    finally:
        outlet.close()
        proc.join(10)
        if proc.is_alive():
            proc.kill()
            proc.join()
    if received != n + WARMUP:
        raise RuntimeError(f"tcp edge: received {received} of {n + WARMUP} frames")
    return {"fps": n / total, "send_fps": n / sent}
