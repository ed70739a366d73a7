"""Transport benchmark: 1080p frames across one process edge (shared-memory slots) vs a plain memcpy.

    python benchmarks/transport_bench.py [--frames 2000] [--size 1080p] [--slots 8] [--json out.json]

The producer (this process) sends `frames` packets whose `frame` is a (H, W, 3) uint8 array through a
`SocketOutlet` (copy into a slot + a small header); a spawned consumer process receives each as a view into
the slot, reads one pixel, and releases it. The floor is `np.copyto` of the same bytes into a preallocated
buffer, in one process.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import tempfile
import time

import numpy as np
import zmq

from streamyolox.detections import FrameMeta
from streamyolox.graph import shm
from streamyolox.graph.inbox import EndOfInput, Inbox, Receiver
from streamyolox.graph.transport import EdgeInfo, SocketOutlet
from streamyolox.stages.packet import Packet

SIZES = {"1080p": (1080, 1920), "720p": (720, 1280)}


def consumer(edge: EdgeInfo, ready: mp.Event, result: mp.Queue) -> None:
    inbox = Inbox([edge])
    recv = Receiver(zmq.Context.instance(), [edge], {edge.index: inbox})
    recv.start()
    ready.set()
    n, checksum, t0 = 0, 0, None
    try:
        while True:
            for item in inbox.get_batch(1, 0, lambda: False):
                t0 = t0 or time.perf_counter()
                checksum += int(item.packet.frame[-1, -1, 0])
                n += 1
                item.release()
    except EndOfInput:
        pass
    result.put((n, checksum, time.perf_counter() - (t0 or time.perf_counter())))
    recv.stop()


def memcpy_fps(frame: np.ndarray, n: int) -> float:
    dst = np.empty_like(frame)
    np.copyto(dst, frame)
    t = time.perf_counter()
    for _ in range(n):
        np.copyto(dst, frame)
    return n / (time.perf_counter() - t)


def transport_fps(frame: np.ndarray, n: int, slots: int) -> dict[str, float]:
    run_dir = tempfile.mkdtemp(prefix="syx-bench-")
    prefix = f"syx-bench-{os.getpid()}-"
    edge = EdgeInfo(0, "a", "b", "ipc", f"ipc://{run_dir}/e0", slots, "block", slots, prefix)
    ctx = mp.get_context("spawn")
    ready, result = ctx.Event(), ctx.Queue()
    proc = ctx.Process(target=consumer, args=(edge, ready, result), daemon=True)
    proc.start()
    ready.wait(30)
    out = SocketOutlet(edge, zmq.Context.instance())
    frames = [frame.copy() for _ in range(2)]
    try:
        for i in range(50):  # warm-up: slots created and faulted in
            frames[i % 2][-1, -1, 0] = 1
            out.send(Packet(FrameMeta(frame=i), frame=frames[i % 2]), lambda: False)
        t = time.perf_counter()
        for i in range(n):
            out.send(Packet(FrameMeta(frame=i), frame=frames[i % 2]), lambda: False)
        sent = time.perf_counter() - t
        out.send_eos()
        received, _, _ = result.get(timeout=120)
        total = time.perf_counter() - t
    finally:
        out.close()
        proc.join(10)
        shm.sweep(prefix)
        shutil.rmtree(run_dir, ignore_errors=True)  # with the ipc socket file (one left per run before)
    assert received == n + 50, f"received {received} of {n + 50}"
    return {"fps": n / total, "send_fps": n / sent}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=2000)
    ap.add_argument("--size", choices=sorted(SIZES), default="1080p")
    ap.add_argument("--slots", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    h, w = SIZES[args.size]
    frame = np.random.default_rng(0).integers(0, 255, (h, w, 3), np.uint8)
    mem = sorted(memcpy_fps(frame, args.frames) for _ in range(args.repeats))[args.repeats // 2]
    runs = [transport_fps(frame, args.frames, args.slots) for _ in range(args.repeats)]
    fps = sorted(r["fps"] for r in runs)[args.repeats // 2]
    res = {"size": args.size, "bytes": frame.nbytes, "frames": args.frames, "slots": args.slots,
           "memcpy_fps": round(mem, 1), "transport_fps": round(fps, 1),
           "transport_send_fps": round(sorted(r["send_fps"] for r in runs)[args.repeats // 2], 1),
           "memcpy_gbps": round(mem * frame.nbytes / 1e9, 2), "ratio_memcpy_over_transport": round(mem / fps, 2),
           "cpus": os.cpu_count()}
    print(json.dumps(res, indent=1))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
