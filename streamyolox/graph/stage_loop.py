"""The loop that drives one stage: open -> (generate | take batches from the inbox -> process) -> close.

Outputs go to every outlet (socket edges copy the arrays, so they go first; each in-process consumer but
the last gets its own shallow copy). An input packet is released (its slot handed back) only after the
outputs made from it were sent. End of stream follows the last packet on every output; the stage then
stays until its consumers have released what it sent (`Outlet.finish`), so a consumer that dies at the
end still has a producer to count what it held. A resumed source skips the frames its consumers already
have (`Outlet.skips`).
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time
from collections.abc import Callable

from streamyolox.graph.inbox import EndOfInput, Inbox, Item
from streamyolox.graph.lanes import Turns, run_lanes
from streamyolox.graph.metrics import StageMetrics
from streamyolox.graph.replicas import output_tags
from streamyolox.graph.spec import StageSpec
from streamyolox.graph.stream_metrics import bump
from streamyolox.graph.transport import Aborted, Outlet, Tag, fork_packet
from streamyolox.model.spec import ModelSpec
from streamyolox.stages.base import Stage, StageContext, StopPipeline
from streamyolox.stages.packet import Packet
from streamyolox.stages.registry import load_stage_class


def set_threads(n: int | None) -> None:
    """Intra-op threads of libraries the stage loaded (env vars were set before the process started)."""
    if n is None:
        return
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(n)
    cv2 = sys.modules.get("cv2")
    if cv2 is not None:
        cv2.setNumThreads(n)


class Ticket:
    """Keeps a batch's input slots until this stage *and* every in-process consumer of its outputs are
    done with them (an inproc edge forwards views into the input slots, not copies)."""

    def __init__(self, releases: list[Callable[[], None]]) -> None:
        self.releases = releases
        self.holders = 1
        self.lock = threading.Lock()

    def hold(self) -> Callable[[], None]:
        with self.lock:
            self.holders += 1
        return self.drop

    def drop(self) -> None:
        with self.lock:
            self.holders -= 1
            last = self.holders == 0
        if last:
            for release in self.releases:
                release()


class StageLoop:
    """Runs one stage in the current thread (`run`); `error` holds the one-line failure, if any."""

    def __init__(self, spec: StageSpec, model: ModelSpec, pipeline: str, inbox: Inbox | None,
                 outlets: list[Outlet], stop_set: Callable[[], bool], abort_set: Callable[[], bool],
                 restarts: int = 0) -> None:
        self.spec = spec
        self.inbox = inbox
        self.outlets = sorted(outlets, key=lambda o: o.edge.kind == "inproc")
        self.abort = abort_set
        self.metrics = StageMetrics(spec.id)
        self.ctx = StageContext(stage_id=spec.id, model=model, pipeline=pipeline,
                                log=logging.getLogger(f"streamyolox.stage.{spec.id}"),
                                should_stop=lambda: stop_set() or abort_set(), replicas=spec.replicas,
                                restarts=restarts)
        self.stage: Stage | None = None
        self.error: str | None = None
        self.frame: int | None = None
        self.stop_request: str | None = None  # a StopPipeline's message: the run ends cleanly (exit 0)
        self.streams_out: dict[str, int] = {}  # a source's frames per stream (skipped ones not counted)
        self.resumed = 0  # frames a resumed source skipped: its consumers had them already
        self.tap: Callable[[list[Packet]], None] | None = None  # the camera wall's (streamyolox.web.tap)

    def opened(self) -> Stage | None:
        """The stage once open() has returned (commands wait for it), else None."""
        return self.stage if self.metrics.state not in ("starting", "opening") else None

    def snapshot(self) -> dict:
        depths = drops = {}
        received: dict[int, dict[str, int]] = {}
        dropped: dict[int, dict[str, int]] = {}
        if self.inbox is not None:
            names = {e.index: e.src for e in self.inbox.edges.values()}
            depths = {names[i]: n for i, n in self.inbox.depths().items()}
            drops = {names[i]: n for i, n in dict(self.inbox.dropped).items()}
            received, dropped = self.inbox.stream_counts()
        snap = self.metrics.snapshot(self.ctx.counters, depths, drops)
        snap.update(received=received, dropped_streams=dropped, streams_out=dict(self.streams_out),
                    resumed=self.resumed, lost=[x for o in self.outlets for x in o.take_lost()],
                    role="source" if self.spec.is_source else "stage" if self.outlets else "sink")
        if self.spec.is_source:
            snap["url"] = getattr(self.spec.options, "url", None)
            status = getattr(self.stage, "streams_status", None)  # a multi-stream source (thread-safe)
            if status is not None and self.metrics.state in ("running", "done"):  # opened
                try:
                    snap["source_streams"] = status()
                except Exception as exc:  # a report must not end the stage: its rows go stale instead
                    self.ctx.log.warning("streams_status() failed: %s: %s", type(exc).__name__, exc)
        return snap

    def emit(self, packets: list[Packet], ticket: Ticket | None = None,
             tags: list[Tag | None] | None = None) -> None:
        """Send each packet on every outlet; a replica passes each packet's order `tags` on."""
        last_inproc = max((i for i, o in enumerate(self.outlets) if o.edge.kind == "inproc"), default=-1)
        for k, packet in enumerate(packets):
            tag = tags[k] if tags is not None else None
            for i, outlet in enumerate(self.outlets):
                if outlet.edge.kind != "inproc":
                    outlet.send(packet, self.abort, tag=tag)
                    continue
                release = ticket.hold() if ticket is not None else None
                outlet.send(packet if i == last_inproc else fork_packet(packet), self.abort, release, tag)

    def run(self) -> None:
        spec = self.spec
        self.metrics.state = "opening"
        try:
            self.stage = load_stage_class(spec.kind)(spec.options, self.ctx)
            self.stage.open()
        except Exception as exc:
            self.error = f"stage {spec.id!r} failed to open: {type(exc).__name__}: {exc}"
            self.metrics.state = "failed"
            self._end(close=False)
            return
        set_threads(spec.threads)
        self.metrics.state = "running"
        try:
            self._run_source() if spec.is_source else self._run_inputs()
        except Aborted:
            pass
        except StopPipeline as exc:
            self.stop_request = str(exc) or f"stage {spec.id!r} asked to stop"
            self._drain()
        except Exception as exc:
            where = f" on frame {self.frame}" if self.frame is not None else ""
            self.error = f"stage {spec.id!r} failed{where}: {type(exc).__name__}: {exc}"
        self._end(close=True)

    def _run_source(self) -> None:
        assert self.stage is not None
        t = time.perf_counter()
        for packet in self.stage.generate():
            self.frame = packet.meta.frame
            busy = time.perf_counter() - t
            if self.outlets and all(o.skips(packet, self.abort) for o in self.outlets):
                self.resumed += 1
                t = time.perf_counter()
                continue
            self.emit([packet])
            bump(self.streams_out, packet.meta.stream)
            self.metrics.record(0, 1, busy, [packet.meta.time], [packet.meta.stream])
            if self.ctx.should_stop():
                break
            t = time.perf_counter()

    def _run_inputs(self) -> None:
        assert self.stage is not None and self.inbox is not None
        inbox = self.inbox
        max_batch = max(1, int(getattr(self.stage, "max_batch", 1)))
        wait_s = float(getattr(self.stage, "max_wait_ms", 0.0)) / 1000
        lanes = max(1, int(getattr(self.stage, "lanes", 1)))
        if lanes > 1:
            run_lanes(lanes, lambda turns: self._lane(turns, max_batch, wait_s), self.abort)
            return
        while True:
            try:
                batch: list[Item] = inbox.get_batch(max_batch, wait_s, self.abort)
            except EndOfInput:
                return
            out, busy = self._process(batch)
            self._send(batch, out, busy)

    def _lane(self, turns: Turns, max_batch: int, wait_s: float) -> None:
        """One of the stage's lanes (`streamyolox.graph.lanes`): its outputs leave in the inbox's order."""
        assert self.inbox is not None
        inbox = self.inbox
        while True:
            seq, batch = turns.take(lambda abort: inbox.get_batch(max_batch, wait_s, abort))
            try:
                out, busy = self._process(batch, note_frame=False)
                turns.wait_turn(seq)
            except StopPipeline:
                raise  # _process handed the inputs back
            except BaseException as exc:
                if not isinstance(exc, Aborted):
                    self._fail_in_turn(turns, seq, exc, batch)
                for it in batch:
                    it.release()
                raise
            try:
                self._send(batch, out, busy)
            finally:
                turns.done(seq)

    def _fail_in_turn(self, turns: Turns, seq: int, exc: BaseException, batch: list[Item]) -> None:
        """A lane's failure waits for its turn, so that the batches taken before it still send their outputs
        (seen: frame 16 lost when frame 17 failed first on another lane); a failure of an earlier batch, or
        an abort, stands instead. The error names the frame that failed first in input order."""
        with contextlib.suppress(Aborted):
            turns.wait_turn(seq)
        if turns.fail(exc):
            self.frame = batch[0].packet.meta.frame

    def _process(self, batch: list[Item], note_frame: bool = True) -> tuple[list[Packet], float]:
        """The stage's outputs for `batch` and the seconds it took; a StopPipeline hands the inputs back.
        `note_frame`: `frame` (named in the error if it fails) becomes this batch's first."""
        assert self.stage is not None
        if note_frame:
            self.frame = batch[0].packet.meta.frame
        packets = [it.packet for it in batch]
        t = time.perf_counter()
        try:
            out = self.stage.process_batch(packets) if len(packets) > 1 else self.stage.process(packets[0])
        except StopPipeline:
            for it in batch:
                it.release()
            raise
        return out, time.perf_counter() - t

    def _send(self, batch: list[Item], out: list[Packet], busy: float) -> None:
        """Send `out` (made from `batch`), then hand `batch`'s slots back once every consumer is done."""
        packets = [it.packet for it in batch]
        if self.tap is not None:  # a sink's inputs are what it wrote; another stage's outputs
            self.tap(packets if self.spec.is_sink else out)
        tags: list[Tag | None] | None = None
        if self.spec.replicas > 1:  # keep the distributor's order for the consumers' reorder buffers
            tags, markers = output_tags([it.tag for it in batch], len(out))
            for tag in markers:
                for outlet in self.outlets:
                    outlet.send_marker(tag, self.abort)
        ticket = Ticket([it.release for it in batch])
        try:
            self.emit(out, ticket, tags)
        finally:
            ticket.drop()
        self.metrics.record(len(batch), len(out), busy, [p.meta.time for p in packets],
                            [p.meta.stream for p in packets])

    def _drain(self) -> None:
        """After a StopPipeline: hand back what still arrives (upstream must not block on us) until the
        sources, told to stop by the runner, end the stream."""
        if self.inbox is None:
            return
        while True:
            try:
                batch = self.inbox.get_batch(64, 0.05, self.abort)
            except (EndOfInput, Aborted):
                return
            for item in batch:
                item.release()

    def _end(self, close: bool) -> None:
        """close() (a sink flushes what it got), pass on its final packets, then end of stream (unless failed)."""
        if close and self.stage is not None:
            try:
                finals = self.stage.close()
                if finals and not self.error and not self.abort():
                    self.emit(finals)
            except Aborted:
                pass
            except Exception as exc:
                self.error = self.error or f"stage {self.spec.id!r} failed to close: {type(exc).__name__}: {exc}"
        if not self.error and not self.abort():
            # Not after a failure or an abort: the stage is restarted (and its consumers must keep waiting
            # for it), or the runner aborts every stage anyway.
            for outlet in self.outlets:
                outlet.send_eos()
            for outlet in self.outlets:
                outlet.finish(self.abort)
        self.metrics.state = "failed" if self.error else "done"
