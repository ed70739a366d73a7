"""Edges: how packets move from a stage to the next one.

One ZeroMQ DEALER pair per edge (the consumer binds, the producer connects). The socket carries a small
pickled header (the `Packet` minus its arrays); the arrays (`frame`, `image`, `raw`) travel

- `ipc` edges (stages in different processes): through a ring of shared-memory slots. The producer owns
  `slots` credits; it copies the arrays into a free slot, sends the header, and gets the credit back when
  the consumer releases the packet. No free credit means the producer waits (a bounded queue).
- `tcp` edges (a stage on another host): as extra frames of a zero-copy multipart message.
- `inproc` edges (stages in one worker process): the packet object itself (`InprocOutlet`), GPU arrays
  stay on the GPU.

Which kind an edge is and where its consumer binds: `streamyolox.graph.wiring`. The messages on a socket
edge are typed, encoded and decoded in `streamyolox.graph.wire`: `Data`, `Marker` (a replica's input that
gave no output), `EndOfStream`, `Probe` producer -> consumer; `Credit`, `Hello`, `Resume` (the answer to a
probe) consumer -> producer.

Incarnations (restart counts) let a restarted peer resynchronise:
- a restarted consumer says hello as soon as the producer is connected (and again to data meant for an
  earlier incarnation of itself). The producer then takes back every credit that the dead consumer held,
  and reports the frames in those slots as lost (`take_lost`). Without the unprompted hello, a producer
  whose credits were all held by the dead consumer sent nothing, so it was never told: the run froze.
- a restarted producer probes first: the answer names the consumer's incarnation (so no packet is sent to
  a dead one) and the last frame it received of each stream, which a restarted file source uses to resume
  after it (`resume`) instead of sending the file again.
- after end of stream a producer stays until the consumer has released every packet it sent (`finish`),
  so a consumer that dies near the end still has a producer that counts what it held.
"""

from __future__ import annotations

import abc
import dataclasses
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import zmq

from streamyolox.graph import shm, wire
from streamyolox.graph.wire import Credit, Data, EndOfStream, Hello, Marker, Message, Probe, Resume, Tag
from streamyolox.graph.wire import split_packet as split_packet  # re-exported: where the edges' users look
from streamyolox.graph.wire import to_host as to_host
from streamyolox.stages.packet import Packet

POLL_MS = 100

EdgeKind = Literal["ipc", "tcp", "inproc"]
Key = tuple[str, int]  # (stream, frame): names a frame for the loss accounting
Lost = tuple[int, int, list[Key]]  # (edge index, consumer incarnation that died, frames it held)


class Aborted(Exception):
    """The pipeline is stopping: a blocked send or receive gives up."""


@dataclass(frozen=True)
class EdgeInfo:
    """One producer -> consumer link, as the runner planned it."""

    index: int
    src: str
    dst: str
    kind: EdgeKind
    address: str  # the zmq address the consumer binds ("" for inproc)
    queue: int
    policy: str
    slots: int  # credits of the producer (= queue + room for the packets being processed)
    shm_prefix: str = ""
    split: tuple[int, int] | None = None  # (i, n): feeds replica i of n of `dst` (the producer distributes)
    merge: tuple[int, int] | None = None  # (i, n): comes from replica i of n of `src` (the consumer reorders)


def fork_packet(packet: Packet) -> Packet:
    """A shallow copy for a second consumer of the same packet (own `extra`, shared arrays)."""
    return dataclasses.replace(packet, extra=dict(packet.extra))


class Outlet(abc.ABC):
    """Producer end of an edge."""

    edge: EdgeInfo

    @abc.abstractmethod
    def send(self, packet: Packet, abort: Callable[[], bool],
             release: Callable[[], None] | None = None, tag: Tag | None = None) -> None:
        """Pass `packet` on (waiting while the edge is full, unless `abort()`)."""

    def send_marker(self, tag: Tag, abort: Callable[[], bool]) -> None:  # noqa: B027 (optional: no-op default)
        """Tell a reordering consumer that the input `tag` gave no output (only replicas send these, and a
        replica's edges are never in-process)."""

    @abc.abstractmethod
    def send_eos(self) -> None:
        """End of stream on this edge."""

    def skips(self, packet: Packet, abort: Callable[[], bool]) -> bool:
        """True for a packet that a resumed source already delivered before it restarted."""
        return False

    def finish(self, abort: Callable[[], bool]) -> None:  # noqa: B027 (optional: no-op default)
        """After end of stream: wait until the consumer no longer holds anything of ours."""

    def take_lost(self) -> list[Lost]:
        """Frames held by consumers that died since the last call (see `SocketOutlet`)."""
        return []

    def close(self) -> None:  # noqa: B027 (optional: no-op default)
        """Release sockets (segments stay until the runner sweeps them: the consumer may still read)."""


class SocketOutlet(Outlet):
    """Producer end of an `ipc` (shared-memory slots) or `tcp` (multipart payload) edge."""

    def __init__(self, edge: EdgeInfo, context: zmq.Context, incarnation: int = 0, resume: bool = False) -> None:
        self.edge = edge
        self.incarnation = incarnation
        self.target = 0  # the consumer incarnation we believe is listening
        self.free: deque[int] = deque(range(edge.slots))
        self.outstanding: set[int] = set()
        self.held: dict[int, Key] = {}  # slot -> the frame in it, while the consumer has it
        self.lost: deque[Lost] = deque()  # appended by the stage thread, taken by the report thread
        self.probing = incarnation > 0  # a restarted producer asks first (see the module doc)
        self.resume = resume
        self.resume_after: dict[str, int] = {}
        self.segments: dict[int, shm.Segment] = {}
        self.generation = 0
        self.sock = context.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.SNDHWM, edge.slots + 4)
        self.sock.connect(edge.address)
        self.probe_sent = False

    def _handle(self, msg: Message) -> None:
        if isinstance(msg, Credit) and msg.producer_inc == self.incarnation and msg.slot in self.outstanding:
            self.outstanding.discard(msg.slot)
            self.held.pop(msg.slot, None)
            self.free.append(msg.slot)
        elif isinstance(msg, Hello) and msg.consumer_inc > self.target:
            self._retarget(msg.consumer_inc)
        elif isinstance(msg, Resume) and msg.producer_inc == self.incarnation and self.probing:
            self.probing = False
            if msg.consumer_inc > self.target:
                self._retarget(msg.consumer_inc)
            if self.resume:
                self.resume_after = dict(msg.last_frames)

    def _retarget(self, consumer_inc: int) -> None:
        """A restarted consumer: what the old one held is lost; take its credits back."""
        keys = [self.held[s] for s in sorted(self.outstanding) if s in self.held]
        if keys:
            self.lost.append((self.edge.index, self.target, keys))
        self.target = consumer_inc
        self.free.extend(sorted(self.outstanding))
        self.outstanding.clear()
        self.held.clear()

    def take_lost(self) -> list[Lost]:
        out = []
        while self.lost:
            out.append(self.lost.popleft())
        return out

    def _drain(self, timeout_ms: int = 0) -> None:
        while self.sock.poll(timeout_ms, zmq.POLLIN):
            self._handle(wire.decode(self.sock.recv()))
            timeout_ms = 0

    def _await_probe(self, abort: Callable[[], bool]) -> None:
        if self.probing and not self.probe_sent:
            self._send([wire.encode(Probe(self.incarnation))], abort)
            self.probe_sent = True
        while self.probing:
            if abort():
                raise Aborted
            self._drain(POLL_MS)

    def skips(self, packet: Packet, abort: Callable[[], bool]) -> bool:
        self._await_probe(abort)
        last = self.resume_after.get(packet.meta.stream)
        # A live stream's frames are new on every read (its index starts again at 0): never skipped.
        return last is not None and packet.meta.frame <= last and not packet.meta.extra.get("live")

    def _acquire(self, abort: Callable[[], bool]) -> int:
        self._await_probe(abort)
        self._drain()
        while not self.free:
            if abort():
                raise Aborted
            self._drain(POLL_MS)
        slot = self.free.popleft()
        self.outstanding.add(slot)
        return slot

    def _send(self, frames: list[Any], abort: Callable[[], bool], copy: bool = True) -> None:
        while not self.sock.poll(POLL_MS, zmq.POLLOUT):  # no peer yet: wait, but stay abortable
            if abort():
                raise Aborted
        tracker = self.sock.send_multipart(frames, copy=copy, track=not copy)
        while tracker is not None and not tracker.done:  # zero-copy: keep the arrays until zmq is done
            try:
                tracker.wait(POLL_MS / 1000)
            except zmq.NotDone:
                if abort():
                    raise Aborted from None

    def _segment(self, slot: int, nbytes: int) -> shm.Segment:
        seg = self.segments.get(slot)
        if seg is None or seg.size < nbytes:
            if seg is not None:  # the consumer released this slot, so it no longer reads the old one
                seg.close()
                seg.unlink()
            self.generation += 1
            name = f"{self.edge.shm_prefix}e{self.edge.index}-p{self.incarnation}-s{slot}-g{self.generation}"
            seg = self.segments[slot] = shm.Segment(name, nbytes, create=True)
        return seg

    def send(self, packet: Packet, abort: Callable[[], bool],
             release: Callable[[], None] | None = None, tag: Tag | None = None) -> None:
        if self.resume and self.skips(packet, abort):
            return
        slot = self._acquire(abort)
        self.held[slot] = (packet.meta.stream, packet.meta.frame)
        stub, arrays = split_packet(packet)
        head = Data(self.target, self.incarnation, slot, None, (), stub, tag)
        if self.edge.kind == "tcp":
            self._send(wire.tcp_frames(head, arrays), abort, copy=False)
            return
        seg = self._segment(slot, wire.slot_bytes(arrays))
        descs = wire.write_slot(seg.buf, arrays)
        self._send([wire.encode(dataclasses.replace(head, segment=seg.name, descs=descs))], abort)

    def send_marker(self, tag: Tag, abort: Callable[[], bool]) -> None:
        self._drain()  # markers hold no slot; the socket's high-water mark bounds them
        self._send([wire.encode(Marker(tag))], abort)

    def send_eos(self) -> None:
        if self.sock.poll(1000, zmq.POLLOUT):  # a full pipe means a consumer that no longer reads
            self.sock.send(wire.encode(EndOfStream()), zmq.NOBLOCK)

    def finish(self, abort: Callable[[], bool]) -> None:
        """Stay until every packet we sent was released, or its loss counted (a consumer restarted and said
        hello), so the consumer never dies holding frames nobody counts. Gives up on abort."""
        self._drain()
        while self.outstanding and not abort():
            self._drain(POLL_MS)

    def close(self, linger_ms: int = 0) -> None:
        """Unmap the slots and close; `linger_ms` lets the end-of-stream message reach a live consumer."""
        for seg in self.segments.values():
            seg.close()
        self.sock.close(linger=linger_ms)


def wait_writable(sock: zmq.Socket, deadline: float) -> bool:
    """Poll until `sock` can send or `deadline` (monotonic) passes."""
    while time.monotonic() < deadline:
        if sock.poll(20, zmq.POLLOUT):
            return True
    return False


def wake_pipe() -> tuple[int, int]:
    """A non-blocking pipe: any thread writes a byte to wake the receiver's poll loop."""
    r, w = os.pipe()
    os.set_blocking(r, False)
    os.set_blocking(w, False)
    return r, w
