"""Per-stage metrics: counted in the stage's process (`StageMetrics`), reported to the runner over a
ZeroMQ PUSH/PULL side channel, aggregated there (`MetricsBoard`) for the dashboard, logs, JSON and
Prometheus.

Frame age = now - `packet.meta.time` (the capture time) when the stage has finished with the packet.
Each stage also counts frames and ages per stream (`meta.stream`); `MetricsBoard.stream_rows` turns them
into one row per stream (`streamyolox.graph.stream_metrics`).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from streamyolox.graph.stream_metrics import StreamBook, StreamTally

AGE_WINDOW = 4096  # recent ages kept per stage for live percentiles
AGE_RESERVOIR = 50_000  # ages kept for the final summary


class StageMetrics:
    """Counters of one stage, updated by its thread, snapshotted by its process's main thread."""

    def __init__(self, stage_id: str) -> None:
        self.stage_id = stage_id
        self.lock = threading.Lock()
        self.frames_in = 0
        self.frames_out = 0
        self.busy_s = 0.0
        self.ages: list[float] = []
        self.state = "starting"
        self.first_t: float | None = None  # wall-clock of the first and last packet handled
        self.last_t: float | None = None
        self.streams = StreamTally()

    def record(self, n_in: int, n_out: int, busy_s: float, capture_times: list[float],
               streams: list[str] | None = None) -> None:
        """`capture_times` and `streams`: of the packets the stage finished (a source: those it gave)."""
        now = time.time()
        with self.lock:
            self.first_t = self.first_t or now - busy_s
            self.last_t = now
            self.frames_in += n_in
            self.frames_out += n_out
            self.busy_s += busy_s
            if len(self.ages) < AGE_WINDOW:
                self.ages.extend(now - t for t in capture_times if t > 0)
            for stream, t in zip(streams or (), capture_times):
                self.streams.add(stream, now, t)

    def snapshot(self, counters: dict[str, float], depths: dict[str, int], drops: dict[str, int]) -> dict:
        """Cumulative counts plus the ages recorded since the last snapshot."""
        with self.lock:
            ages, self.ages = self.ages, []
            return {"stage": self.stage_id, "state": self.state, "frames_in": self.frames_in,
                    "frames_out": self.frames_out, "busy_s": self.busy_s, "ages": ages,
                    "counters": dict(counters), "queue": depths, "dropped": drops, "time": time.time(),
                    "first_t": self.first_t, "last_t": self.last_t, "streams": self.streams.take()}


@dataclass
class StageStats:
    """What the runner knows about one stage."""

    stage: str
    kind: str = ""
    state: str = "starting"
    frames_in: int = 0
    frames_out: int = 0
    busy_s: float = 0.0
    fps: float = 0.0
    restarts: int = 0
    queue: dict[str, int] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)
    counters: dict[str, float] = field(default_factory=dict)
    recent: deque = field(default_factory=lambda: deque(maxlen=AGE_WINDOW))
    reservoir: list[float] = field(default_factory=list)
    first_time: float | None = None
    last_time: float | None = None
    active: tuple[float, float] | None = None  # (first, last) packet time, for the run's average fps
    error: str | None = None
    # per stream (for the run's drop accounting): received per input edge, dropped by drop_oldest per input
    # edge, a source's frames; frames held by consumers that died (reported by this stage as their producer)
    received: dict[int, dict[str, int]] = field(default_factory=dict)
    dropped_streams: dict[int, dict[str, int]] = field(default_factory=dict)
    streams_out: dict[str, int] = field(default_factory=dict)
    resumed: int = 0
    lost: list[tuple[int, int, list[tuple[str, int]]]] = field(default_factory=list)
    # counts of earlier incarnations, so they survive a restart (those of a killed one: its last report)
    base_in: int = 0
    base_out: int = 0
    base: dict[str, Any] = field(default_factory=dict)

    def percentiles(self, recent: bool = True) -> dict[str, float | None]:
        data = list(self.recent) if recent else self.reservoir
        if not data:
            return {"p50": None, "p95": None, "p99": None}
        p = np.percentile(np.asarray(data), [50, 95, 99])
        return {"p50": float(p[0]), "p95": float(p[1]), "p99": float(p[2])}


class MetricsBoard:
    """Aggregates the reports of every stage (thread-safe: the HTTP server reads it)."""

    def __init__(self, kinds: dict[str, str], edge_dst: dict[int, str] | None = None) -> None:
        self.lock = threading.Lock()
        self.started = time.time()
        self.stats = {sid: StageStats(sid, kind) for sid, kind in kinds.items()}
        self.edge_dst = edge_dst or {}  # edge index -> consumer stage (where a reported loss happened)
        self.evidence: dict[int, dict[int, set[tuple[str, int]]]] = {}  # edge -> producer inc -> frames
        self.book = StreamBook()
        self.forgot_at = 0.0
        # the run's per-stream loss accounting (`losses.account`, set by the runner): the rows' `dropped`
        self.accounting: Callable[[], dict[str, Any]] | None = None

    def update(self, snap: dict[str, Any]) -> None:
        with self.lock:
            st = self.stats.get(snap["stage"])
            if st is None:
                return
            now = snap["time"]
            frames_in, frames_out = st.base_in + snap["frames_in"], st.base_out + snap["frames_out"]
            if st.last_time is not None and now > st.last_time:
                # frames handled: a sink sends nothing on, so its rate is what it took in
                done = max(frames_in, frames_out) - max(st.frames_in, st.frames_out)
                inst = done / (now - st.last_time)
                st.fps = inst if st.fps == 0 else 0.5 * st.fps + 0.5 * inst  # smoothed
            st.first_time = st.first_time or now
            st.last_time = now
            st.frames_in, st.frames_out = frames_in, frames_out
            st.busy_s = snap["busy_s"]
            st.state = snap["state"] if st.state not in ("failed", "died") else st.state
            st.queue, st.counters = snap["queue"], snap["counters"]
            for name in ("dropped", "received", "dropped_streams", "streams_out", "resumed"):
                setattr(st, name, add_counts(st.base.get(name), snap.get(name)))
            st.lost.extend(snap.get("lost", []))
            if snap.get("first_t") is not None:
                first = snap["first_t"] if st.active is None else min(st.active[0], snap["first_t"])
                st.active = (first, snap["last_t"])
            st.recent.extend(snap["ages"])
            room = AGE_RESERVOIR - len(st.reservoir)
            st.reservoir.extend(snap["ages"][:room])
            self.book.update(st.stage, snap)
            if now - self.forgot_at > 1.0:
                self.forgot_at = now
                self.book.forget(now, {sid: s.state for sid, s in self.stats.items()})

    def set_state(self, stage: str, state: str, error: str | None = None) -> None:
        with self.lock:
            st = self.stats[stage]
            st.state = state
            st.error = error or st.error

    def restarted(self, stage: str) -> None:
        with self.lock:
            st = self.stats[stage]
            st.restarts += 1
            st.base_in, st.base_out = st.frames_in, st.frames_out
            st.base = {name: getattr(st, name) for name in
                       ("dropped", "received", "dropped_streams", "streams_out", "resumed")}

    def add_evidence(self, evidence: dict[int, dict[int, list[tuple[str, int]]]]) -> None:
        """A process's final report: the frames its receiver got from each producer incarnation."""
        with self.lock:
            for edge, by_inc in evidence.items():
                for inc, keys in by_inc.items():
                    self.evidence.setdefault(edge, {}).setdefault(inc, set()).update((k[0], k[1]) for k in keys)

    def rows(self, final: bool = False) -> list[dict[str, Any]]:
        """One dict per stage: state, frames, fps (average over the run when `final`), busy, ages, queues.
        The replicas of a stage (`det#0`, `det#1`) make one row `det` with their sums and `replicas`."""
        with self.lock:
            elapsed = max(time.time() - self.started, 1e-9)
            groups: dict[str, list[StageStats]] = {}
            lost: dict[str, int] = {}  # so far: what producers took back from consumers that died
            for st in self.stats.values():
                groups.setdefault(st.stage.partition("#")[0], []).append(st)
                for edge, _, keys in st.lost:
                    at = self.edge_dst.get(edge, "").partition("#")[0]
                    lost[at] = lost.get(at, 0) + len(keys)
            out = []
            for sid, members in groups.items():
                st = members[0] if len(members) == 1 else _merged(sid, members)
                out.append({
                    "stage": sid, "kind": st.kind, "state": st.state, "replicas": len(members),
                    "frames_in": st.frames_in, "frames_out": st.frames_out,
                    "fps": self._average_fps(st, elapsed) if final else st.fps,
                    "busy_s": round(st.busy_s, 3), "busy_pct": 100 * st.busy_s / elapsed,
                    "age_s": st.percentiles(recent=not final),
                    "queue": dict(st.queue), "dropped": sum(st.dropped.values()) + lost.get(sid, 0),
                    "lost": lost.get(sid, 0),
                    "restarts": st.restarts, "counters": dict(st.counters), "error": st.error,
                })
            return out

    @staticmethod
    def _average_fps(st: StageStats, elapsed: float) -> float:
        """Frames over the time between the stage's first and last packet (start-up excluded)."""
        frames = max(st.frames_in, st.frames_out)
        span = st.active[1] - st.active[0] if st.active else 0.0
        return frames / span if span > 0 and frames > 1 else frames / elapsed

    def stream_rows(self, final: bool = False, dropped: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """One dict per stream: id, source, url, state, frames (the fewest any sink finished),
        last_frame_t (wall time of the last of those frames), fps (the lowest sink rate; the run's average
        when `final`), age_p50_s/age_p95_s/age_p99_s (at the sinks),
        dropped (the loss accounting's, or `dropped`), reconnects, error. `final` adds the retired streams."""
        if dropped is None:
            dropped = self.accounting() if self.accounting is not None else {}  # it takes the lock itself
        with self.lock:
            states = {sid: st.state for sid, st in self.stats.items()}
            return self.book.rows(states, lambda sid: self.stats[sid].counters if sid in self.stats else {},
                                  dropped, final)

    def summary(self) -> dict[str, Any]:
        return {"elapsed_s": time.time() - self.started, "stages": self.rows(final=True)}


def add_counts(a: Any, b: Any) -> Any:
    """a + b for counts: numbers, or dicts of them (nested), keys of either; None counts as nothing."""
    if isinstance(a, dict) or isinstance(b, dict):
        a, b = a or {}, b or {}
        return {k: add_counts(a.get(k), b.get(k)) for k in {**a, **b}}
    return (a or 0) + (b or 0)


STATE_RANK = ("failed", "died", "running", "opening", "starting", "done")  # the row shows the first present


def _sum_dicts(dicts: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for d in dicts:
        for k, v in d.items():
            out[k] = out.get(k, 0) + v
    return out


def _merged(stage: str, members: list[StageStats]) -> StageStats:
    """One `StageStats` for the replicas of `stage`: counts, fps and busy time add up, ages pool, the
    active span is the union of theirs, the state is the worst one."""
    states = [m.state for m in members]
    active = [m.active for m in members if m.active is not None]
    merged = StageStats(
        stage, kind=members[0].kind, state=min(states, key=lambda x: STATE_RANK.index(x) if x in STATE_RANK
                                                else len(STATE_RANK)),
        frames_in=sum(m.frames_in for m in members), frames_out=sum(m.frames_out for m in members),
        busy_s=sum(m.busy_s for m in members), fps=sum(m.fps for m in members),
        restarts=sum(m.restarts for m in members), queue=_sum_dicts([m.queue for m in members]),
        dropped=_sum_dicts([m.dropped for m in members]), counters=_sum_dicts([m.counters for m in members]),
        reservoir=[a for m in members for a in m.reservoir],
        active=(min(a[0] for a in active), max(a[1] for a in active)) if active else None,
        error=next((m.error for m in members if m.error), None))
    merged.recent.extend(a for m in members for a in m.recent)
    return merged
