"""Per-stream metrics: each stage tallies frames and frame ages per `packet.meta.stream` between two reports
(`StreamTally`, in the stage's process); the runner adds them up per stage and stream (`StreamBook`) and
makes one row per stream (`StreamBook.rows`) for the dashboard, Prometheus, `/health` and the summary.

A stream's numbers are those at the sinks: its frames are the fewest any sink has finished (a frame counts
once every sink has it), its fps the lowest sink rate, its frame ages pooled over the sinks. Its state,
url and reconnects come from its source: the `streams_status()` of a multi-stream decode stage
("source_streams" in the report), else the source stage's own state (`running` is `up`).

Bounded whatever the run does: at most MAX_STREAMS streams are tracked (the one idle longest is retired
first), a stream that ended or was removed is retired GRACE_S after its last frame (its frames in flight
reach the sinks first), ages live in fixed-size numpy windows, and retired streams keep one summary row
each (at most MAX_STREAMS) for the run's final report.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

MAX_STREAMS = 1024
GRACE_S = 30.0  # an ended/removed stream is kept this long after its last frame
AGES_PER_REPORT = 256  # ages per stream in one stage report (the rest of a burst is not sampled)
RECENT = 256  # ages per stream and sink for the live percentiles
RESERVOIR = 1024  # ages per stream and sink sampled over the whole run, for the summary
QUANTILES = (50, 95, 99)
STAGE_STATE = {"starting": "connecting", "opening": "connecting", "running": "up", "done": "ended",
               "failed": "down", "died": "down"}  # a single-url source's stream, from its stage state
GONE = ("ended", "removed")


def bump(counts: dict[str, int], key: str, n: int = 1, limit: int = MAX_STREAMS) -> None:
    """counts[key] += n, keeping at most `limit` keys: the key bumped least recently goes first (a run that
    sees more streams than that accounts for the latest ones)."""
    value = counts.pop(key, 0) + n  # re-inserted last: dict order is recency order
    counts[key] = value
    if len(counts) > limit:
        del counts[next(iter(counts))]


class StreamTally:
    """Frames, first/last wall time and ages per stream since the last report (stage side, under the
    caller's lock)."""

    def __init__(self) -> None:
        self.data: dict[str, dict[str, Any]] = {}

    def add(self, stream: str, now: float, capture_time: float) -> None:
        entry = self.data.get(stream)
        if entry is None:
            if len(self.data) >= MAX_STREAMS:
                return  # more streams than tracked within one report interval: not sampled
            entry = self.data[stream] = {"n": 0, "first_t": now, "last_t": now, "ages": []}
        entry["n"] += 1
        entry["last_t"] = now
        if capture_time > 0 and len(entry["ages"]) < AGES_PER_REPORT:
            entry["ages"].append(now - capture_time)

    def take(self) -> dict[str, dict[str, Any]]:
        data, self.data = self.data, {}
        return data


class AgeWindow:
    """The last `size` ages (a numpy ring: fixed memory per stream, unlike a deque of floats)."""

    def __init__(self, size: int = RECENT) -> None:
        self.buf = np.zeros(size)
        self.n = 0  # ages ever added

    def extend(self, ages: list[float]) -> None:
        for a in ages[-len(self.buf):]:
            self.buf[self.n % len(self.buf)] = a
            self.n += 1

    def values(self) -> np.ndarray:
        return self.buf[:min(self.n, len(self.buf))]


class Reservoir(AgeWindow):
    """A uniform sample of every age ever added (Vitter's algorithm R, a few lines: no library keeps a
    fixed-size numpy sample; seeded, so a run's summary does not depend on chance)."""

    def __init__(self, size: int = RESERVOIR, seed: int = 0) -> None:
        super().__init__(size)
        self.rng = random.Random(seed)

    def extend(self, ages: list[float]) -> None:
        for a in ages:
            if self.n < len(self.buf):
                self.buf[self.n] = a
            else:
                j = self.rng.randrange(self.n + 1)
                if j < len(self.buf):
                    self.buf[j] = a
            self.n += 1


def percentiles(windows: list[np.ndarray]) -> dict[str, float | None]:
    data = np.concatenate(windows) if windows else np.zeros(0)
    if not len(data):
        return {f"p{q}": None for q in QUANTILES}
    return {f"p{q}": float(v) for q, v in zip(QUANTILES, np.percentile(data, QUANTILES))}


@dataclass
class StreamCell:
    """One stream at one stage, as the runner knows it."""

    frames: int = 0
    fps: float = 0.0  # smoothed over reports
    first_t: float | None = None  # wall time of the first and last frame the stage finished
    last_t: float | None = None
    recent: AgeWindow | None = None  # sinks only
    reservoir: Reservoir | None = None

    def add(self, entry: dict[str, Any], dt: float | None, sink: bool) -> None:
        self.frames += entry["n"]
        self.first_t = entry["first_t"] if self.first_t is None else min(self.first_t, entry["first_t"])
        self.last_t = entry["last_t"] if self.last_t is None else max(self.last_t, entry["last_t"])
        if dt:
            self.rate(entry["n"] / dt)
        if sink:
            if self.recent is None:
                self.recent, self.reservoir = AgeWindow(), Reservoir()
            self.recent.extend(entry["ages"])
            self.reservoir.extend(entry["ages"])  # type: ignore[union-attr]

    def rate(self, inst: float) -> None:
        self.fps = inst if self.fps == 0 else 0.5 * self.fps + 0.5 * inst  # smoothed like the stage rows

    def average_fps(self) -> float:
        span = (self.last_t or 0) - (self.first_t or 0)
        return (self.frames - 1) / span if span > 0 and self.frames > 1 else 0.0  # rate between them


@dataclass
class StageView:
    """What the book keeps of one stage (the runner's StageStats has the rest)."""

    role: str = "stage"  # "source" | "sink" | "stage"
    url: str | None = None
    last_report: float | None = None
    cells: dict[str, StreamCell] = field(default_factory=dict)
    status: dict[str, dict[str, Any]] = field(default_factory=dict)  # a source's streams_status() by id
    multi: bool = False  # the stage reports streams_status(): a stream missing from it was removed


class StreamBook:
    """The runner's per-stream numbers (not thread-safe: the MetricsBoard holds its lock)."""

    def __init__(self, max_streams: int = MAX_STREAMS, grace_s: float = GRACE_S) -> None:
        self.max_streams = max_streams
        self.grace_s = grace_s
        self.stages: dict[str, StageView] = {}
        self.seen: dict[str, float] = {}  # stream -> wall time of its last news, in recency order
        self.retired: dict[str, dict[str, Any]] = {}  # stream -> its final summary row

    def update(self, stage: str, snap: dict[str, Any]) -> None:
        view = self.stages.setdefault(stage, StageView())
        now = snap["time"]
        view.role = snap.get("role", view.role)
        view.url = snap.get("url", view.url)
        dt = now - view.last_report if view.last_report is not None and now > view.last_report else None
        view.last_report = now
        news = snap.get("streams", {})
        for stream, entry in news.items():
            self._touch(stream, now)
            view.cells.setdefault(stream, StreamCell()).add(entry, dt, view.role == "sink")
        if dt:  # streams without frames in this report slow down
            for stream, cell in view.cells.items():
                if stream not in news:
                    cell.rate(0.0)
        if "source_streams" in snap:
            view.multi = True
            view.status = {s["id"]: s for s in snap["source_streams"][:self.max_streams]}
            for sid, s in view.status.items():  # an ended stream's grace runs from its last news
                if s.get("state") not in GONE or (sid not in self.seen and sid not in self.retired):
                    self._touch(sid, now)

    def _touch(self, stream: str, now: float) -> None:
        self.seen.pop(stream, None)
        self.seen[stream] = now
        self.retired.pop(stream, None)  # an id used again is a new stream
        while len(self.seen) > self.max_streams:
            self._retire(next(iter(self.seen)), None)

    def _retire(self, stream: str, row: dict[str, Any] | None) -> None:
        self.retired[stream] = row or self._row(stream, {}, final=True)
        self.seen.pop(stream, None)
        for view in self.stages.values():
            view.cells.pop(stream, None)
            view.status.pop(stream, None)
        while len(self.retired) > self.max_streams:
            del self.retired[next(iter(self.retired))]

    def forget(self, now: float, stage_states: dict[str, str]) -> None:
        """Retire the streams that ended or were removed more than `grace_s` ago."""
        for stream, last in list(self.seen.items()):
            if now - last > self.grace_s:
                source, status = self._status(stream, stage_states)
                if source is None or status.get("state") in GONE:  # no source: this host runs none (--only)
                    self._retire(stream, self._row(stream, stage_states, final=True))

    def rows(self, stage_states: dict[str, str], counters: Callable[[str], dict[str, float]],
             dropped: dict[str, Any], final: bool = False) -> list[dict[str, Any]]:
        """One dict per tracked stream (plus, when `final`, the retired ones), sorted by id."""
        out = {s: self._row(s, stage_states, final, counters) for s in self.seen}
        if final:
            out = {**self.retired, **out}
        for stream, row in out.items():
            row["dropped"] = dropped.get(stream, {}).get("dropped", 0)
        return [out[s] for s in sorted(out)]

    def _status(self, stream: str, stage_states: dict[str, str],
                counters: Callable[[str], dict[str, float]] | None = None) -> tuple[str | None, dict[str, Any]]:
        """(its source stage, what the source says of the stream: state, url, reconnects, error)."""
        source, status = self._source_of(stream)
        if source is not None and status is None and self.stages[source].multi:
            status = {"state": "removed"}  # no longer in its source's list
        elif source is not None and status is None:  # a single-url source: its stage says how it goes
            status = {"state": STAGE_STATE.get(stage_states.get(source, ""), "connecting"),
                      "url": self.stages[source].url,
                      "reconnects": int((counters(source) if counters else {}).get("reconnects", 0))}
        return source, status or {}

    def _row(self, stream: str, stage_states: dict[str, str], final: bool,
             counters: Callable[[str], dict[str, float]] | None = None) -> dict[str, Any]:
        source, status = self._status(stream, stage_states, counters)
        # here, not at the top: the executors import the worker, which imports this module
        from streamyolox.graph.executors.shards import shard_of

        sinks = [v.cells[stream] for v in self.stages.values() if v.role == "sink" and stream in v.cells]
        # a stream passes the sinks of its shard only (`executor.shards`; one shard: every sink)
        n_sinks = sum(v.role == "sink" and (source is None or shard_of(sid) == shard_of(source))
                      for sid, v in self.stages.items())
        ages = percentiles([w.values() for c in sinks if (w := c.reservoir if final else c.recent) is not None])
        slowest = min(sinks, key=lambda c: c.frames) if len(sinks) == n_sinks and sinks else None
        return {
            "id": stream, "source": source.partition("#")[0] if source else None, "url": status.get("url"),
            "state": status.get("state", "ended" if self.retired.get(stream) else "connecting"),
            "frames": slowest.frames if slowest else 0,
            # when the sink that finished the fewest finished its last one (wall time): frames between two
            # readings over these times is a rate without the 1 s steps of the stages' reports in it
            "last_frame_t": slowest.last_t if slowest else None,
            "fps": min(((c.average_fps() if final else c.fps) for c in sinks), default=0.0),
            "age_p50_s": ages["p50"], "age_p95_s": ages["p95"], "age_p99_s": ages["p99"],
            "dropped": 0, "reconnects": int(status.get("reconnects") or 0), "error": status.get("error"),
        }

    def _source_of(self, stream: str) -> tuple[str | None, dict[str, Any] | None]:
        """(the source stage, its status of the stream): the reporting replica, or a source that gave it."""
        for sid, view in self.stages.items():
            if stream in view.status:
                return sid, view.status[stream]
        for sid, view in self.stages.items():
            if view.role == "source" and stream in view.cells:
                return sid, None
        return None, None
