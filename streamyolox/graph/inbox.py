"""Consumer side of edges: each stage's bounded `Inbox`, fed by the process's `Receiver` thread (socket
edges) or directly by an `InprocOutlet` (edges inside a worker).

The receiver drains sockets continuously, so a `drop_oldest` edge discards stale packets (returning their
slots) even while the stage is busy: the producer never waits long and frame age stays bounded. It also
keeps the consumer's half of the restart protocol (`streamyolox.graph.transport`): the unprompted hello of
a restarted consumer, answers to probes, and which frames arrived from each producer incarnation (the
runner's evidence for what a dead stage had already passed on).

The inbox serves streams (`packet.meta.stream`) round robin, not in arrival order: a fast file stream
that fills the queue then takes one slot per round, and a live camera's frame waits at most one round
(`Inbox.get_batch`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import zmq

from streamyolox.graph.replicas import Reorder
from streamyolox.graph.stream_metrics import bump
from streamyolox.graph.transport import (
    POLL_MS,
    Aborted,
    EdgeInfo,
    Key,
    Outlet,
    Tag,
    wake_pipe,
)
from streamyolox.graph.wire import (
    Credit,
    Data,
    EndOfStream,
    Hello,
    Marker,
    Probe,
    Resume,
    SegmentCache,
    encode,
    receive,
)
from streamyolox.stages.packet import Packet

log = logging.getLogger("streamyolox.graph")
EVIDENCE = 1024  # frames remembered per producer incarnation: more than a dead producer can have held


class EndOfInput(Exception):
    """Every input edge has ended and nothing is queued."""


def _noop() -> None:
    return None


@dataclass
class Item:
    """A received packet; `release()` hands its slot back (call it once the packet is no longer needed)."""

    edge: int
    packet: Packet
    release: Callable[[], None] = _noop
    tag: Tag | None = None  # set around replicated stages (streamyolox.graph.replicas)


def _droppable(item: Item) -> bool:
    """A `drop_oldest` edge may evict it: not a frame of a `decode` file stream (`extra["live"]` False)."""
    return item.packet.meta.extra.get("live") is not False


class Inbox:
    """Input queue of one stage, merged over its input edges, bounded per edge, served round robin across
    streams. The edges from the replicas of one stage first pass a `Reorder` buffer, which restores their
    original order."""

    def __init__(self, edges: list[EdgeInfo]) -> None:
        self.edges = {e.index: e for e in edges}
        self.reorders: dict[str, Reorder[Item]] = {}
        for e in edges:
            if e.merge is not None:
                self.reorders.setdefault(e.src.partition("#")[0], Reorder(e.merge[1]))
        self.cond = threading.Condition()
        self.items: deque[Item] = deque()
        self.count = {e.index: 0 for e in edges}
        self.dropped = {e.index: 0 for e in edges}
        self.received: dict[int, dict[str, int]] = {e.index: {} for e in edges}  # per stream
        self.dropped_streams: dict[int, dict[str, int]] = {e.index: {} for e in edges}
        self.ended: set[int] = set()
        # Streams served in the current round (round robin across get_batch calls too). The inbox of a
        # replica keeps arrival order instead: the consumers' reorder buffers take a later tag at a
        # replica's head as proof that the earlier ones were lost. Its producer, which distributes the
        # packets, took them from its own inbox round robin already.
        self.served: set[str] = set()
        self.queued: dict[str, int] = {}  # stream -> its items in `items`
        self.fifo = any(e.split is not None for e in edges)

    def put(self, item: Item, abort: Callable[[], bool] = lambda: False) -> None:
        """Queue `item`; under `drop_oldest` evict this edge's oldest queued packet when full. An inproc
        producer on a `block` edge waits for room; socket edges are bounded by their credits instead."""
        edge = self.edges[item.edge]
        with self.cond:
            if edge.policy == "drop_oldest":
                while self.count[item.edge] >= edge.queue and self._drop_oldest(item.edge):
                    pass
            # A block edge, or a drop_oldest one holding only a file's frames (never dropped): an inproc
            # producer waits for room; a socket edge admits it, bounded by its producer's credits.
            if edge.kind == "inproc":
                while self.count[item.edge] >= edge.queue:
                    if abort():
                        raise Aborted
                    self.cond.wait(POLL_MS / 1000)
            self.count[item.edge] += 1
            bump(self.received[item.edge], item.packet.meta.stream)
            reorder = self._reorder(edge)
            if reorder is None or item.tag is None:
                self._queue([item])
            else:
                self._queue(reorder.push(edge.merge[0], item.tag, item))  # type: ignore[index]
            self.cond.notify_all()

    def put_marker(self, edge: int, tag: Tag) -> None:
        """A replica's input `tag` gave no output: the reorder buffer may skip it."""
        reorder = self._reorder(self.edges[edge])
        if reorder is None:
            return
        with self.cond:
            self._queue(reorder.push(self.edges[edge].merge[0], tag, None))  # type: ignore[index]
            self.cond.notify_all()

    def _reorder(self, edge: EdgeInfo) -> Reorder[Item] | None:
        return None if edge.merge is None else self.reorders[edge.src.partition("#")[0]]

    def _drop_oldest(self, edge: int) -> bool:
        """Evict the edge's oldest droppable packet; False when it holds only a file's frames. A `decode`
        file stream (not `realtime`) marks its frames `extra["live"] = False`: an edge never drops them (a
        file added live to a source of cameras must lose nothing); live frames and other sources' may go."""
        for i, old in enumerate(self.items):
            if old.edge == edge and _droppable(old):
                del self.items[i]
                self._unqueue(old)
                break
        else:  # still waiting in the reorder buffer for an earlier packet
            if any(old.edge == edge for old in self.items):
                return False  # only a file's frames queued
            info = self.edges[edge]
            reorder = self._reorder(info)
            # a file's frames wait there too (for an earlier frame from another replica): never evicted
            held = reorder.remove_oldest(info.merge[0], _droppable) if reorder is not None else None  # type: ignore[index]
            if held is None:
                return False
            old = held
            self._queue(reorder.pop_ready())  # type: ignore[union-attr]
        self.count[edge] -= 1
        self.dropped[edge] += 1
        bump(self.dropped_streams[edge], old.packet.meta.stream)
        old.release()
        return True

    def end(self, edge: int) -> None:
        with self.cond:
            self.ended.add(edge)
            info = self.edges[edge]
            reorder = self._reorder(info)
            if reorder is not None:
                self._queue(reorder.end(info.merge[0]))  # type: ignore[index]
            self.cond.notify_all()

    def get_batch(self, max_n: int, max_wait_s: float, abort: Callable[[], bool]) -> list[Item]:
        """Up to `max_n` items: the first as soon as one is queued, more until `max_wait_s` has passed.
        Streams are served round robin: each round takes the oldest queued packet of each stream with
        one (oldest first), at most one per stream, and rounds carry on across calls; a stream's packets
        keep their arrival order. Raises `EndOfInput` once all inputs ended and the queue is empty,
        `Aborted` on abort."""
        with self.cond:
            while not self.items:
                if len(self.ended) == len(self.edges):
                    raise EndOfInput
                if abort():
                    raise Aborted
                self.cond.wait(POLL_MS / 1000)
            batch = [self._pop()]
            deadline = time.monotonic() + max_wait_s
            while len(batch) < max_n:
                if self.items:
                    batch.append(self._pop())
                    continue
                remaining = deadline - time.monotonic()
                if remaining <= 0 or len(self.ended) == len(self.edges) or abort():
                    break
                self.cond.wait(remaining)
            self.cond.notify_all()  # room for blocked inproc producers
            return batch

    def _pop(self) -> Item:
        """The next item round robin (see `get_batch`). A linear scan: the queue holds at most the edges'
        credits, a few dozen packets."""
        index = 0
        if not self.fifo and self.items[0].packet.meta.stream in self.served:
            if all(s in self.served for s in self.queued):  # every queued stream had its turn: a new round
                self.served.clear()
            else:
                index = next(i for i, it in enumerate(self.items) if it.packet.meta.stream not in self.served)
        item = self.items[index]
        del self.items[index]
        self._unqueue(item)
        if not self.fifo:
            self.served.add(item.packet.meta.stream)
        self.count[item.edge] -= 1
        return item

    def _queue(self, items: list[Item]) -> None:
        for item in items:
            self.items.append(item)
            stream = item.packet.meta.stream
            self.queued[stream] = self.queued.get(stream, 0) + 1

    def _unqueue(self, item: Item) -> None:
        stream = item.packet.meta.stream
        self.queued[stream] -= 1
        if not self.queued[stream]:
            del self.queued[stream]

    def depths(self) -> dict[int, int]:
        with self.cond:
            return dict(self.count)

    def stream_counts(self) -> tuple[dict[int, dict[str, int]], dict[int, dict[str, int]]]:
        """(received, dropped) per edge and stream."""
        with self.cond:
            return ({k: dict(v) for k, v in self.received.items()},
                    {k: dict(v) for k, v in self.dropped_streams.items()})


class InprocOutlet(Outlet):
    """Producer end of an edge inside one worker process: hands over the packet object itself."""

    def __init__(self, edge: EdgeInfo, inbox: Inbox) -> None:
        self.edge = edge
        self.inbox = inbox

    def send(self, packet: Packet, abort: Callable[[], bool],
             release: Callable[[], None] | None = None, tag: Tag | None = None) -> None:
        """`release` runs when the consumer is done (it frees the upstream slots the packet points into)."""
        try:
            self.inbox.put(Item(self.edge.index, packet, release or _noop, tag), abort)
        except Aborted:
            (release or _noop)()
            raise

    def send_eos(self) -> None:
        self.inbox.end(self.edge.index)


class Receiver(threading.Thread):
    """Owns the bound sockets of a process's socket input edges; decodes, queues, returns credits."""

    def __init__(self, context: zmq.Context, edges: list[EdgeInfo], inboxes: dict[int, Inbox],
                 incarnation: int = 0, producer_done: Callable[[int], bool] | None = None) -> None:
        super().__init__(name="streamyolox-receiver", daemon=True)
        self.edges = {e.index: e for e in edges}
        self.inboxes = inboxes
        self.incarnation = incarnation
        # A restarted consumer: hello on every edge once its producer is connected; an edge whose producer
        # process has finished is ended (its end of stream went to the incarnation that died).
        self.hello_pending = set(self.edges) if incarnation > 0 else set()
        self.producer_done = producer_done if incarnation > 0 else None
        self.last_frame: dict[int, dict[str, int]] = {e.index: {} for e in edges}
        self.evidence: dict[int, dict[int, deque[Key]]] = {e.index: {} for e in edges}
        self.socks: dict[int, zmq.Socket] = {}
        for e in edges:
            sock = context.socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.RCVHWM, e.slots + 4)
            sock.bind(e.address)
            self.socks[e.index] = sock
        self.caches = {e.index: SegmentCache() for e in edges}
        self.pending: deque[tuple[int, bytes]] = deque()
        self.wake_r, self.wake_w = wake_pipe()
        self.stopping = threading.Event()
        self.ident_io: int | None = None

    def release_fn(self, edge: int, producer_inc: int, slot: int) -> Callable[[], None]:
        done = [False]

        def release() -> None:
            if done[0]:
                return
            done[0] = True
            self.pending.append((edge, encode(Credit(producer_inc, slot))))
            if threading.get_ident() != self.ident_io:
                with contextlib.suppress(BlockingIOError):  # a full pipe: the receiver is awake anyway
                    os.write(self.wake_w, b"x")

        return release

    def run(self) -> None:
        self.ident_io = threading.get_ident()
        poller = zmq.Poller()
        for sock in self.socks.values():
            poller.register(sock, zmq.POLLIN)
        poller.register(self.wake_r, zmq.POLLIN)
        by_sock = {sock: idx for idx, sock in self.socks.items()}
        while not self.stopping.is_set():
            self._resync()
            events = dict(poller.poll(POLL_MS // 4 if self.hello_pending else POLL_MS))
            if self.wake_r in events:
                with contextlib.suppress(BlockingIOError):
                    os.read(self.wake_r, 65536)
            for sock, idx in by_sock.items():
                if sock in events:
                    self._drain(idx, sock)
            self._flush()

    def _resync(self) -> None:
        for idx in list(self.hello_pending):
            try:  # a bound DEALER refuses to send until the producer has connected
                self.socks[idx].send(encode(Hello(self.incarnation)), zmq.NOBLOCK)
                self.hello_pending.discard(idx)
            except zmq.Again:
                pass
        if self.producer_done is not None:
            for idx, inbox in self.inboxes.items():
                if idx not in inbox.ended and self.producer_done(idx):
                    inbox.end(idx)

    def evidence_report(self) -> dict[int, dict[int, list[Key]]]:
        """edge -> producer incarnation -> the last frames received from it (for the runner's accounting)."""
        return {idx: {inc: list(keys) for inc, keys in by_inc.items()} for idx, by_inc in self.evidence.items()
                if by_inc}

    def _record(self, idx: int, producer_inc: int, packet: Packet) -> None:
        key = (packet.meta.stream, packet.meta.frame)
        self.evidence[idx].setdefault(producer_inc, deque(maxlen=EVIDENCE)).append(key)
        last = self.last_frame[idx]
        last[key[0]] = max(key[1], last.get(key[0], key[1]))

    def _flush(self) -> None:
        while self.pending:
            idx, msg = self.pending.popleft()
            with contextlib.suppress(zmq.Again):  # the producer is gone; its credits no longer matter
                self.socks[idx].send(msg, zmq.NOBLOCK)

    def _drain(self, idx: int, sock: zmq.Socket) -> None:
        while True:
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            try:
                msg, packet = receive(frames, self.caches[idx])
            except FileNotFoundError as exc:  # the producer's run is over and its slots swept
                log.warning("edge %s: dropped a packet whose slot is gone: %s", idx, exc)
                continue
            if isinstance(msg, EndOfStream):
                self.inboxes[idx].end(idx)
            elif isinstance(msg, Marker):
                self.inboxes[idx].put_marker(idx, msg.tag)
            elif isinstance(msg, Probe):
                answer = Resume(msg.producer_inc, self.incarnation, dict(self.last_frame[idx]))
                with contextlib.suppress(zmq.Again):
                    sock.send(encode(answer), zmq.NOBLOCK)
            elif isinstance(msg, Data) and msg.consumer_inc != self.incarnation:
                with contextlib.suppress(zmq.Again):
                    sock.send(encode(Hello(self.incarnation)), zmq.NOBLOCK)
            elif isinstance(msg, Data) and packet is not None:
                self._record(idx, msg.producer_inc, packet)
                self.inboxes[idx].put(Item(idx, packet, self.release_fn(idx, msg.producer_inc, msg.slot), msg.tag))
                self._flush()  # credits of packets dropped just now

    def stop(self, linger_ms: int = 500) -> None:
        """Stop and close; `linger_ms` lets the last credits reach the producers (0 when aborting)."""
        self.stopping.set()
        with contextlib.suppress(BlockingIOError):
            os.write(self.wake_w, b"x")
        if self.is_alive():
            self.join(2)
        self._flush()  # the last credits: the producer waits for them before it ends (`finish`)
        for sock in self.socks.values():
            sock.close(linger=linger_ms)
        for cache in self.caches.values():
            cache.close()
        os.close(self.wake_r)
        os.close(self.wake_w)
