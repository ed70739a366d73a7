"""Measure a callable: warm-up, repeats, median throughput, latency percentiles, peak RSS.

`measure` times a function; `RssSampler` polls the resident memory of a process and all its children in a
background thread (the pipeline bench uses it on `streamyolox run`'s process tree); `Result` is the one
record every sub-benchmark produces and `report` renders.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import psutil


def percentile_ms(times_s: list[float], q: float) -> float:
    """The q-th percentile (0..100, linear interpolation) of durations in seconds, in milliseconds."""
    return float(np.percentile(np.asarray(times_s, dtype=np.float64), q) * 1e3)


class RssSampler:
    """Peak resident memory of a process tree, sampled every `interval_s` in a daemon thread.

    Use as a context manager. `peak_total_mb` is the peak of the sum over the process and all its live
    descendants at one instant; `peak_by_process` maps "name[pid]" to each process's own peak (MB).
    RSS counts shared pages (the same libtorch mapped by every stage) once per process; with `pss=True`
    `peak_pss_mb` also tracks the proportional set size sum (shared pages split between their users: the
    memory the tree really occupies). PSS reads /proc/PID/smaps: 8 ms per torch/onnxruntime process per read
    (measured), so at 20 Hz over a 7-process pipeline the sampler itself took over half a core and cut the
    pipeline's frames/s by ~15%. It is read every `pss_interval_s` only; RSS at every sample.
    """

    def __init__(self, pid: int | None = None, interval_s: float = 0.01, pss: bool = False,
                 pss_interval_s: float = 1.0) -> None:
        self.root = psutil.Process(pid)
        self.interval_s = interval_s
        self.pss = pss
        self.pss_interval_s = pss_interval_s
        self._next_pss = 0.0
        self.peak_total_mb = 0.0
        self.peak_pss_mb = 0.0
        self.peak_by_process: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def sample(self) -> float:
        """Take one sample now; returns the tree's total RSS in MB."""
        try:
            procs = [self.root, *self.root.children(recursive=True)]
        except psutil.Error:
            return 0.0
        total = pss_total = 0.0
        read_pss = self.pss and time.monotonic() >= self._next_pss
        if read_pss:
            self._next_pss = time.monotonic() + self.pss_interval_s
        for proc in procs:
            try:
                mem = proc.memory_full_info() if read_pss else proc.memory_info()
                key = f"{proc.name()}[{proc.pid}]"
            except psutil.Error:  # exited between listing and reading: nothing to count
                continue
            rss_mb = mem.rss / 2**20
            total += rss_mb
            pss_total += getattr(mem, "pss", 0) / 2**20
            self.peak_by_process[key] = max(self.peak_by_process.get(key, 0.0), rss_mb)
        self.peak_total_mb = max(self.peak_total_mb, total)
        if read_pss:
            self.peak_pss_mb = max(self.peak_pss_mb, pss_total)
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval_s)

    def __enter__(self) -> RssSampler:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()


@dataclass
class Timing:
    """Durations of `repeats` calls that each handled `items` frames, and the peak RSS meanwhile."""

    times_s: list[float]
    items: int
    peak_rss_mb: float

    @property
    def median_s(self) -> float:
        return float(np.median(self.times_s))

    @property
    def fps(self) -> float:
        """Frames per second at the median call duration."""
        return self.items / self.median_s

    def latency_ms(self, q: float) -> float:
        """Per-call (per-batch) latency percentile in ms."""
        return percentile_ms(self.times_s, q)


def measure(fn: Callable[[], Any], *, repeats: int = 20, warmup: int = 3, items: int = 1,
            min_time_s: float = 0.0) -> Timing:
    """Call `fn` `warmup` times untimed, then at least `repeats` times (and for at least `min_time_s`).

    Args:
        fn: the work of one call, with its inputs prepared outside (only `fn` is timed).
        items: frames one call handles (the batch size), for frames/s.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    for _ in range(warmup):
        fn()
    times: list[float] = []
    with RssSampler(interval_s=0.005) as rss:
        start = time.perf_counter()
        while len(times) < repeats or time.perf_counter() - start < min_time_s:
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    return Timing(times_s=times, items=items, peak_rss_mb=rss.peak_total_mb)


@dataclass
class Result:
    """One benchmark row (a case of a suite), JSON-ready through `to_json`.

    Attributes:
        suite: `model`, `ops` or `pipeline`.
        name: the case, unique within the suite (e.g. `torch-fp32 b4 416`).
        params: what distinguishes the case (backend, batch, input_size, bytes, ...).
        fps: frames (or items) per second; None when skipped.
        p50_ms, p95_ms, p99_ms: latency percentiles (per call, or frame age for pipelines).
        peak_rss_mb: peak resident memory while the case ran (whole process tree for pipelines).
        ref: name of the baseline or floor row in the same suite this one is compared with.
        ratio: fps / ref's fps.
        extra: further numbers (per-stage busy time, per-process RSS, ...).
        skipped: why the case did not run (missing backend, GPU, module...), else None.
    """

    suite: str
    name: str
    params: dict[str, Any] = field(default_factory=dict)
    fps: float | None = None
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    peak_rss_mb: float | None = None
    ref: str | None = None
    ratio: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    skipped: str | None = None

    @classmethod
    def from_timing(cls, suite: str, name: str, timing: Timing, **kw: Any) -> Result:
        return cls(suite=suite, name=name, fps=timing.fps, p50_ms=timing.latency_ms(50),
                   p95_ms=timing.latency_ms(95), p99_ms=timing.latency_ms(99),
                   peak_rss_mb=timing.peak_rss_mb, **kw)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def link_refs(results: list[Result]) -> None:
    """Fill `ratio` = fps / fps of the row named by `ref` (same suite), where both ran."""
    by_name = {(r.suite, r.name): r for r in results}
    for r in results:
        base = by_name.get((r.suite, r.ref)) if r.ref else None
        if base is not None and r.fps and base.fps:
            r.ratio = r.fps / base.fps
