"""Streams added and removed while the pipeline runs: what `POST /streams` and `DELETE /streams/{id}` do.

The source stages that take live streams are those whose class has `add_stream` (a multi-stream `decode`).
A stream is added to the named source (`"source": "<stage id>"`; by default the only such source), to the
replica (`source#k`, with `processes: N`) holding the fewest streams; removed from the replica holding it.
The calls run in the stage's process over the command channel (`Supervisor.command`). A DELETE returns once
the frames the stream's source emitted have passed every sink (per-stream counts reported by the stages),
or after a timeout. After each add or remove the runner's plan of that replica is rewritten to the streams
it now reads (`streamyolox.web.ledger`): a replica that restarts opens that set, not its YAML's.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from typing import TYPE_CHECKING, Any

from streamyolox.graph.commands import StageUnavailable
from streamyolox.graph.executors.shards import least_loaded, unsharded
from streamyolox.graph.replicas import base_id
from streamyolox.stages.registry import load_stage_class
from streamyolox.web.ledger import StreamLedger

if TYPE_CHECKING:
    from streamyolox.graph.runner import Supervisor

log = logging.getLogger("streamyolox.streams")
STREAM_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")
GONE = ("removed", "ended")
CALL_TIMEOUT_S = 10.0  # an add opens the stream's reader in the source's process
FLUSH_TIMEOUT_S = 15.0


class StreamTaken(ValueError):
    """The id names a stream of another source (a source's own `StreamExists` covers its streams)."""


def is_taken(exc: BaseException) -> bool:
    """409 errors: ours, or the source's `StreamExists` (streamyolox.sources.streams)."""
    return type(exc).__name__ in ("StreamTaken", "StreamExists")


class StreamControl:
    """Thread-safe (one lock: two adds cannot both pick a replica or both take an id)."""

    def __init__(self, sup: Supervisor) -> None:
        self.sup = sup
        self.lock = threading.Lock()
        local = [sid for sid, s in sup.spec.stages.items() if s.is_source and sid in sup.only]
        self.live: dict[str, list[str]] = {}  # source id -> its replicas (of every shard) that take live streams
        self.fixed: dict[str, str] = {}  # stream id -> the single-url source reading it
        for sid in local:
            s = sup.spec.stages[sid]
            if hasattr(load_stage_class(s.kind), "add_stream"):
                self.live.setdefault(unsharded(sid), []).append(sid)
            elif getattr(s.options, "url", None) is not None:
                self.fixed[getattr(s.options, "stream", None) or base_id(sid)] = sid
        self.ledger = StreamLedger(sup)  # what a restarted replica opens

    # -- reading ---------------------------------------------------------------------------------------
    def rows(self) -> list[dict[str, Any]]:
        """`GET /streams`: the board's row per stream (graph/stream_metrics.py)."""
        return [{**r, **self.sup.executor.where(r["source"])} if r.get("source") else r
                for r in self.sup.board.stream_rows()]  # ray: the shard and node of each stream

    def _status(self, replica: str) -> list[dict[str, Any]]:
        return list(self.sup.command(replica, "streams_status", {}, CALL_TIMEOUT_S))

    def _held(self) -> dict[str, tuple[str, dict[str, Any]]]:
        """Stream id -> (replica, status row) of every live stream not removed or ended."""
        out = {}
        self.ended: set[str] = set()  # replicas whose process ended (a shard whose files are over): no adds
        for replicas in self.live.values():
            for r in replicas:
                try:
                    rows = self._status(r)
                except StageUnavailable:
                    self.ended.add(r)
                    continue
                for row in rows:
                    if row.get("state") not in GONE:
                        out[row["id"]] = (r, row)
        return out

    # -- POST ------------------------------------------------------------------------------------------
    def _source(self, name: Any) -> str:
        if name is None:
            if len(self.live) == 1:
                return next(iter(self.live))
            if not self.live:
                raise ValueError("no source of this pipeline takes streams (a decode stage with `streams:`)")
            raise ValueError(f"source: required: the pipeline has {len(self.live)} sources that take streams "
                             f"({', '.join(self.live)})")
        if name not in self.live and name not in {base_id(r) for rs in self.live.values() for r in rs}:
            raise ValueError(f"source: {name!r} is not a source that takes streams "
                             f"(those: {', '.join(self.live) or 'none'})")
        return str(name)

    def add(self, body: Any) -> dict[str, Any]:
        """`{"id": "cam9", "url": "...", "source": "<stage id>", ...options}` -> the stream's status row."""
        if not isinstance(body, dict):
            raise ValueError(f"body: expected a JSON object, got {type(body).__name__}")
        options = dict(body)
        stream = options.pop("id", None)
        if not isinstance(stream, str) or not STREAM_ID.fullmatch(stream):
            raise ValueError(f"id: expected 1-64 characters of A-Z a-z 0-9 _ . -, got {stream!r}")
        source = self._source(options.pop("source", None))
        with self.lock:
            held = self._held()
            if stream in held or stream in self.fixed:
                where = held[stream][0] if stream in held else self.fixed[stream]
                raise StreamTaken(f"id: stream {stream!r} exists (source {base_id(where)!r})")
            # a named shard (`source@1`) or, by default, the least loaded of all (graph/executors/shards.py)
            counts = {r: 0 for r in self.live[unsharded(source)] if source in (unsharded(r), base_id(r))
                      and r not in self.ended}
            for r, _ in held.values():
                if r in counts:
                    counts[r] += 1
            replica = least_loaded(counts)
            row = self.sup.command(replica, "add_stream", {"stream_id": stream, "options": options},
                                   CALL_TIMEOUT_S)
            reading = [s for s, (r, _) in held.items() if r == replica]
            self.ledger.changed(replica, [*reading, stream], {stream: options})
        log.info("stream %r added to %s", stream, replica)
        return {"id": stream, "source": base_id(replica), **self.sup.executor.where(replica), **(row or {})}

    # -- DELETE ----------------------------------------------------------------------------------------
    def remove(self, stream: str, timeout_s: float = FLUSH_TIMEOUT_S) -> dict[str, Any]:
        """Stop the stream's reader; wait until what it emitted has passed every sink. Returns
        {"id", "source", "frames", "flushed"} (flushed False: the timeout came first)."""
        with self.lock:
            held = self._held()
            if stream not in held:
                if stream in self.fixed:
                    raise ValueError(f"stream {stream!r} is the url of stage {self.fixed[stream]!r}: it ends with "
                                     "the pipeline")
                raise KeyError(f"no stream {stream!r}")
            replica = held[stream][0]
            result = self.sup.command(replica, "remove_stream", {"stream_id": stream}, CALL_TIMEOUT_S) or {}
            self.ledger.changed(replica, [s for s, (r, _) in held.items() if r == replica and s != stream])
        emitted = self._emitted(replica, stream, result)
        flushed = self._wait_sinks(stream, emitted, timeout_s)
        if not flushed:
            log.warning("stream %r removed; its last frames had not reached every sink within %.0f s", stream,
                        timeout_s)
        return {"id": stream, "source": base_id(replica), "frames": emitted, "flushed": flushed}

    def _emitted(self, replica: str, stream: str, result: dict[str, Any]) -> int:
        """Frames the source emitted for the stream, now that its reader has stopped."""
        status = next((r for r in self._status(replica) if r.get("id") == stream), {})
        return int(max(result.get("frames", 0) or 0, status.get("frames", 0) or 0))

    def _wait_sinks(self, stream: str, emitted: int, timeout_s: float) -> bool:
        """Poll the board until the stream's frames at the sinks (plus those dropped on the way) reach
        what the source emitted."""
        deadline = time.monotonic() + timeout_s
        while True:
            row = next((r for r in self.sup.board.stream_rows() if r["id"] == stream), None)
            if row is not None:
                dropped = row.get("dropped") or 0
                dropped = sum(dropped.values()) if isinstance(dropped, dict) else int(dropped)
                # frames a live source dropped before emitting them are not in `emitted`: not counted here
                dropped = max(0, dropped - int(row.get("dropped_source") or 0))
                if row.get("frames", 0) + dropped >= emitted:
                    return True
            elif emitted == 0:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)
