"""Many streams read by one `decode` stage: a reader thread per stream, their frames merged round robin.

Each stream has its own reader thread (`stream_frames`: the file loop, or `reconnecting_frames` with its
own reconnect state), its own sampler, stats and bounded buffer of `depth` frames:

- a file (or image folder) stream blocks its reader while its buffer is full: back-pressure, a file never
  loses a frame;
- a live stream, when `keep_newest`, drops its oldest buffered frame for the new one when the consumer is
  slower (counted per stream, `dropped`): its frames stay fresh without ever making a file stream's frames
  wait or go. A single-`url` source keeps the old behaviour (the reader blocks; the edges' policy decides).

`next()` hands out the frames round robin among the streams that have one ready, so one fast stream never
starves the others; each stream's frames stay in order. A stream that fails for good (its `max_retries`
spent, a corrupt file with `on_corrupt: stop`) is `down` with its error kept; the others go on. `next()`
returns None once every stream has ended (or failed, or was removed) and every buffer is empty.

`add` / `remove` / `status` may be called from any thread while `next()` runs (one lock guards the state).
Counters reach the stage context through a `Mailbox`, drained in the thread that calls `next()`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from streamyolox.detections import FrameMeta
from streamyolox.sources.av_reader import AvReader
from streamyolox.sources.background import Mailbox
from streamyolox.sources.reconnect import SourceHooks
from streamyolox.sources.sampling import FrameSampler
from streamyolox.sources.spec import SourceSpec
from streamyolox.sources.stream_reader import stream_frames
from streamyolox.sources.streams import StreamExists, StreamOptions
from streamyolox.stages.packet import Packet

POLL_S = 0.1
MAX_FINISHED = 256  # ended / failed / removed streams kept for `status` (the oldest are forgotten)
JOIN_S = 1.0  # at close, how long to wait for the readers together (a hung read ends by its own timeout)


def _strip_tracebacks(exc: BaseException) -> BaseException:
    """Drop the tracebacks of `exc` and its causes: a kept error must not keep the reader's frames (and
    with them its decoder and last images) alive."""
    seen: BaseException | None = exc
    while seen is not None:
        seen.__traceback__ = None
        seen = seen.__cause__ or seen.__context__
    return exc


@dataclass
class _Stream:
    opts: StreamOptions
    spec: SourceSpec
    keep_newest: bool
    first: AvReader | None = None  # a connection opened by the stage already (fail fast)
    base_index: int = 0  # a re-added id continues the frame index of the stream it replaces
    state: str = "connecting"
    frames: int = 0
    decoded: int = 0
    skipped: int = 0
    dropped: int = 0
    reconnects: int = 0
    error: str | None = None
    failure: BaseException | None = None
    last_frame: int | None = None
    finished: bool = False  # the reader thread is done
    buffer: deque[Packet] = field(default_factory=deque)
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    @property
    def over(self) -> bool:
        """Nothing more comes from this stream: its id may be taken again."""
        return self.state == "removed" or (self.finished and not self.buffer)

    @property
    def next_index(self) -> int:
        return self.base_index + self.decoded

    def status(self) -> dict[str, Any]:
        live = self.spec.live or self.opts.realtime
        return {"id": self.opts.id, "url": self.opts.url, "state": self.state, "live": live,
                "frames": self.frames, "decoded": self.decoded, "skipped": self.skipped,
                "dropped": self.dropped, "reconnects": self.reconnects, "error": self.error,
                "last_frame": self.last_frame, "buffered": len(self.buffer)}


class StreamSet:
    """The streams of one source stage (see the module doc).

    Args:
        should_stop: the stage's stop flag (polled by readers and by `next()`).
        log: the stage's logger.
        count, set_value: the stage context's counter hooks (called in the `next()` thread only).
        depth: frames buffered per stream.
    """

    def __init__(self, should_stop: Callable[[], bool], log: logging.Logger,
                 count: Callable[[str, float], None], set_value: Callable[[str, float], None],
                 depth: int = 2) -> None:
        self._should_stop = should_stop
        self.log = log
        self._count, self._set_value = count, set_value
        self.depth = depth
        self.mailbox = Mailbox()
        self._cond = threading.Condition()
        self._streams: dict[str, _Stream] = {}
        self._rr = 0
        self._running = False
        self._closed = False

    # -- control (any thread) -------------------------------------------------------------------------
    def add(self, opts: StreamOptions, spec: SourceSpec, keep_newest: bool,
            first: AvReader | None = None) -> dict[str, Any]:
        """Add a stream (started at once when the set runs); raises `StreamExists` for a taken id."""
        with self._cond:
            if self._closed:
                raise ValueError(f"streams.{opts.id}: the source has ended; no stream can be added")
            old = self._streams.get(opts.id)
            if old is not None and not old.over:
                raise StreamExists(f"stream {opts.id!r} exists (state {old.state})")
            stream = _Stream(opts, spec, keep_newest, first, old.next_index if old is not None else 0)
            self._streams.pop(opts.id, None)  # a re-added id goes to the end of the round robin
            self._streams[opts.id] = stream
            self._forget_finished()
            if self._running:
                self._start(stream)
            return stream.status()

    def remove(self, stream_id: str) -> dict[str, Any]:
        """Stop a stream's reader; the frames it buffered but not handed out yet are dropped (counted).
        Raises KeyError for an unknown (or already removed) id."""
        with self._cond:
            stream = self._streams.get(stream_id)
            if stream is None or stream.state == "removed":
                raise KeyError(stream_id)
            stream.stop.set()
            stream.dropped += len(stream.buffer)
            stream.buffer.clear()
            stream.state = "removed"
            self._cond.notify_all()
            return stream.status()

    def status(self) -> list[dict[str, Any]]:
        with self._cond:
            return [s.status() for s in self._streams.values()]

    def stream(self, stream_id: str) -> _Stream:
        return self._streams[stream_id]

    def _forget_finished(self) -> None:
        over = [sid for sid, s in self._streams.items() if s.over]
        for sid in over[:max(0, len(over) - MAX_FINISHED)]:
            del self._streams[sid]

    # -- running --------------------------------------------------------------------------------------
    def start(self) -> None:
        with self._cond:
            self._running = True
            for stream in self._streams.values():
                if stream.thread is None and stream.state != "removed":
                    self._start(stream)

    def _start(self, stream: _Stream) -> None:
        stream.thread = threading.Thread(target=self._read, args=(stream,), name=f"{stream.opts.id}-reader",
                                         daemon=True)
        stream.thread.start()

    def next(self) -> Packet | None:
        """The next frame (round robin over the streams with one ready); None when all are over or on stop."""
        while True:
            with self._cond:
                packet = self._pop()
                # With no stream yet (`streams: {}`), wait for one added live; after that, end when all are over.
                ended = packet is None and (self._should_stop() or (
                    bool(self._streams) and all(s.over for s in self._streams.values())))
                if ended:
                    self._closed = True  # from now on `add` refuses: nobody would read the stream
                elif packet is None:
                    self._cond.wait(POLL_S)
            self.mailbox.drain()
            if packet is not None or ended:
                return packet

    def _pop(self) -> Packet | None:
        ids = list(self._streams)
        for k in range(len(ids)):
            stream = self._streams[ids[(self._rr + k) % len(ids)]]
            if stream.buffer:
                packet = stream.buffer.popleft()
                stream.frames += 1
                stream.last_frame = packet.meta.frame
                self._rr = (self._rr + k + 1) % len(ids)
                self._cond.notify_all()  # a blocked file reader has room again
                return packet
        return None

    def failures(self) -> list[_Stream]:
        """Streams that failed for good."""
        with self._cond:
            return [s for s in self._streams.values() if s.failure is not None]

    def all_failed(self) -> bool:
        with self._cond:
            return bool(self._streams) and all(s.failure is not None for s in self._streams.values())

    def close(self) -> None:
        """Stop every reader and wait briefly for them (each closes its own connection)."""
        with self._cond:
            self._closed = True
            streams = list(self._streams.values())
            for s in streams:
                s.stop.set()
            self._cond.notify_all()
        deadline = time.monotonic() + JOIN_S
        for s in streams:
            if s.thread is not None and s.thread is not threading.current_thread():
                s.thread.join(max(0.0, deadline - time.monotonic()))
            if s.first is not None:  # never started: close the connection the stage opened
                s.first.close()
                s.first = None
        self.mailbox.drain()

    # -- reader threads -------------------------------------------------------------------------------
    def _hooks(self, stream: _Stream) -> SourceHooks:
        def count(name: str, n: float) -> None:
            if name == "reconnects":
                stream.reconnects += int(n)
            self.mailbox.post(self._count, name, n)

        return SourceHooks(self.log, count, lambda name, v: self.mailbox.post(self._set_value, name, v),
                           lambda: stream.stop.is_set() or self._should_stop(),
                           lambda state, error: self._report(stream, state, error))

    def _report(self, stream: _Stream, state: str, error: str | None) -> None:
        with self._cond:
            if stream.state != "removed":
                stream.state = state
            stream.error = error or stream.error

    def _read(self, stream: _Stream) -> None:
        hooks = self._hooks(stream)
        sampler = FrameSampler(stream.opts.stride, stream.opts.max_fps)
        first, stream.first = stream.first, None
        frames = stream_frames(stream.spec, stream.opts, hooks, lambda: stream.reconnects, first)
        try:
            for index, raw, extra in frames:
                stream.decoded += 1
                hooks.count("decoded", 1)
                if not sampler.keep(raw.pts, raw.time):
                    stream.skipped += 1
                    hooks.count("skipped", 1)
                    continue
                height, width = raw.size
                meta = FrameMeta(stream.opts.id, stream.base_index + index, raw.pts, raw.time, width, height, extra)
                if not self._put(stream, Packet(meta=meta, frame=raw.image, yuv=raw.yuv)):
                    return
        except Exception as exc:  # the stream is down for good; the others go on
            self._failed(stream, exc)
        finally:
            frames.close()  # closes the connection in this thread
            with self._cond:
                stream.finished = True
                if stream.state not in ("removed", "down"):
                    stream.state = "ended"
                self._cond.notify_all()

    def _put(self, stream: _Stream, packet: Packet) -> bool:
        """Buffer `packet`: wait for room (file) or drop the oldest (live); False once stopped."""
        with self._cond:
            while len(stream.buffer) >= self.depth:
                if stream.stop.is_set() or self._should_stop():
                    return False
                if stream.keep_newest:
                    stream.buffer.popleft()
                    stream.dropped += 1
                    self.mailbox.post(self._count, "source_dropped", 1)
                    break
                self._cond.wait(POLL_S)
            if stream.stop.is_set() or self._should_stop():
                return False
            stream.buffer.append(packet)
            if stream.state == "connecting":
                stream.state = "up"
            self._cond.notify_all()
            return True

    def _failed(self, stream: _Stream, exc: Exception) -> None:
        # Log the text, never the exception (see reconnect.py: a kept record keeps the traceback alive).
        error = " ".join(str(exc).split()) or type(exc).__name__
        with self._cond:
            stream.failure = _strip_tracebacks(exc)
            stream.error = error
            if stream.state != "removed":
                stream.state = "down"
        self.log.error("stream %r is down for good: %s", stream.opts.id, error)
