"""`streamyolox bench pipeline FILE.yaml`: a pipeline end to end on a file, as a user runs it.

Drives `streamyolox run FILE --metrics-json M` as a subprocess (so every stage process is real), samples
the RSS of its whole process tree with psutil, and reads the runtime's metrics summary for frames/s,
frame age percentiles at the sinks and per-stage busy time.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from streamyolox.bench.harness import Result, RssSampler

SUITE = "pipeline"


@dataclass
class PipelineBenchConfig:
    """`overrides`: `--set` arguments for `streamyolox run`; `repeats`: whole runs (the median is kept)."""

    file: Path
    overrides: Sequence[str] = field(default_factory=list)
    timeout_s: float = 600.0
    repeats: int = 1


@dataclass
class RunSample:
    """One `streamyolox run`: wall time, peak RSS of the tree (total and per process), its metrics summary,
    and the capture times of the frames the JSON sinks wrote (for the steady-state rate)."""

    wall_s: float
    peak_rss_mb: float
    peak_pss_mb: float
    rss_by_process: dict[str, float]
    metrics: dict[str, Any]
    capture_times: list[float] = field(default_factory=list)
    first_output_s: float | None = None  # start of `streamyolox run` -> the first JSON line on disk
    first_output_cpu_s: float | None = None  # CPU seconds the process tree had used by then
    exit_after_output_s: float | None = None  # the last JSON line on disk -> the run's exit


class SinkWatch:
    """When the JSON sinks' files first grew and last grew, polled every `interval_s` (the sink writes
    line-buffered, so a line is on disk when it is written). Hand-written: a file-size poll is all it takes."""

    def __init__(self, paths: Sequence[Path], t0: float, root: int | None = None) -> None:
        self.paths = list(paths)
        self.t0 = t0
        self.root = root
        self.sizes = [0] * len(self.paths)
        self.first: float | None = None
        self.first_cpu: float | None = None  # CPU seconds of the whole tree at the first line (load-proof)
        self.last: float | None = None

    def tree_cpu_s(self) -> float | None:
        """User + system CPU seconds of the root process and every live descendant."""
        if self.root is None:
            return None
        try:
            root = psutil.Process(self.root)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            return None
        total = 0.0
        for proc in procs:
            try:
                t = proc.cpu_times()
            except psutil.Error:
                continue
            total += t.user + t.system
        return total

    def poll(self) -> None:
        now = time.perf_counter() - self.t0
        for i, path in enumerate(self.paths):
            try:
                size = path.stat().st_size
            except OSError:
                continue
            if size != self.sizes[i]:
                self.sizes[i] = size
                if self.first is None:
                    self.first, self.first_cpu = now, self.tree_cpu_s()
                self.last = now

    def wait(self, proc: subprocess.Popen, timeout_s: float, interval_s: float = 0.005) -> int:
        """Poll until `proc` exits; raises subprocess.TimeoutExpired after `timeout_s`."""
        deadline = time.perf_counter() + timeout_s
        while (rc := proc.poll()) is None:
            self.poll()
            if time.perf_counter() > deadline:
                raise subprocess.TimeoutExpired(proc.args, timeout_s)
            time.sleep(interval_s)
        self.poll()
        return rc


def json_sink_overrides(cfg: PipelineBenchConfig, workdir: Path) -> dict[str, Path]:
    """Every `json` sink of the pipeline whose path is not `-`: stage id -> the file it writes (sent to
    `workdir` unless an override already sets it)."""
    from streamyolox.graph.validate import load_pipeline

    spec = load_pipeline(cfg.file, list(cfg.overrides))
    sinks: dict[str, Path] = {}
    for sid, stage in spec.stages.items():
        path = getattr(stage.options, "path", None)
        if stage.kind != "json" or path in (None, "-"):
            continue
        user_set = any(o.startswith(f"stages.{sid}.path=") for o in cfg.overrides)
        sinks[sid] = Path(path) if user_set else workdir / f"{sid}.jsonl"
    return sinks


def run_once(cfg: PipelineBenchConfig, workdir: Path) -> RunSample:
    """Run the pipeline to its end; raise RuntimeError naming the file and the tail of stderr on failure."""
    metrics_path = workdir / "metrics.json"
    metrics_path.unlink(missing_ok=True)
    sinks = json_sink_overrides(cfg, workdir)
    cmd = [sys.executable, "-m", "streamyolox", "run", str(cfg.file), "--metrics-json", str(metrics_path)]
    for item in [*cfg.overrides, *(f"stages.{sid}.path={p}" for sid, p in sinks.items())]:
        cmd += ["--set", item]
    err_path = workdir / "stderr.log"
    with err_path.open("wb") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
        watch = SinkWatch(list(sinks.values()), t0, proc.pid)
        try:
            with RssSampler(proc.pid, interval_s=0.05, pss=True) as rss:
                rc = watch.wait(proc, cfg.timeout_s)
        except subprocess.TimeoutExpired:
            proc.terminate()  # SIGTERM: the runtime stops its stages and cleans up
            proc.wait(timeout=10)
            raise RuntimeError(f"bench pipeline: {cfg.file} still running after {cfg.timeout_s:.0f} s") from None
        wall = time.perf_counter() - t0
    if rc != 0 or not metrics_path.exists():
        tail = err_path.read_text(errors="replace").strip().splitlines()[-3:]
        raise RuntimeError(f"bench pipeline: `streamyolox run {cfg.file}` exited {rc}: {' | '.join(tail)}")
    times = [json.loads(line)["time"] for p in sinks.values() if p.exists()
             for line in p.read_text().splitlines() if line.strip()]
    return RunSample(wall, rss.peak_total_mb, rss.peak_pss_mb, dict(rss.peak_by_process),
                     json.loads(metrics_path.read_text()), sorted(times), watch.first, watch.first_cpu,
                     None if watch.last is None else wall - watch.last)


def steady_fps(capture_times: Sequence[float], skip: float = 0.25) -> float | None:
    """Frames/s in steady state: the rate at which frames were captured after the first `skip` fraction.

    With `block` edges the source runs at most a queue ahead of the sink, so once the pipeline has filled
    (the skipped part, which also hides start-up) capture rate = output rate.
    """
    k = int(len(capture_times) * skip)
    tail = capture_times[k:]
    if len(tail) < 2 or tail[-1] <= tail[0]:
        return None
    return (len(tail) - 1) / (tail[-1] - tail[0])


def summarize(sample: RunSample, name: str) -> list[Result]:
    """One row for the pipeline (frames/s, frame age at the sinks) and one per stage (busy time)."""
    m = sample.metrics
    stages = {s["stage"]: s for s in m["stages"]}
    consumed = {i for s in stages.values() for i in s.get("inputs", ())}
    sinks = [s for sid, s in stages.items() if sid not in consumed and s.get("kind") in ("json", "mp4", "zmq")]
    sink = sinks[0] if sinks else list(stages.values())[-1]
    frames, elapsed = int(sink["frames_in"]), float(m["elapsed_s"])
    age_ms = {k: (v * 1e3 if v is not None else None) for k, v in sink["age_s"].items()}
    steady = steady_fps(sample.capture_times)
    # name processes by their stage when the runtime reports pids (else "python[pid]")
    names = {f"[{s['pid']}]": sid for sid, s in stages.items() if s.get("pid")}
    rss = {next((f"{sid}{key[key.index('['):]}" for tag, sid in names.items() if key.endswith(tag)), key): mb
           for key, mb in sample.rss_by_process.items()}
    extra: dict[str, Any] = {"frames": frames, "elapsed_s": elapsed, "wall_s": sample.wall_s,
             "fps_with_startup": frames / elapsed if elapsed else None, "steady_fps": steady,
             # as a user sees it: frames over the whole `streamyolox run` (process start to exit)
             "fps_wall": frames / sample.wall_s if sample.wall_s else None,
             "first_output_s": sample.first_output_s, "first_output_cpu_s": sample.first_output_cpu_s,
             "exit_after_output_s": sample.exit_after_output_s,
             "peak_pss_mb": sample.peak_pss_mb, "rss_by_process_mb": rss,
             "busy_s": {sid: s["busy_s"] for sid, s in stages.items()},
             "dropped": {sid: s["dropped"] for sid, s in stages.items()}}
    rows = [Result(SUITE, name, params={"file": name, "sink": sink["stage"]},
                   fps=steady or extra["fps_with_startup"], p50_ms=age_ms["p50"], p95_ms=age_ms["p95"],
                   p99_ms=age_ms["p99"], peak_rss_mb=sample.peak_rss_mb, extra=extra)]
    for sid, s in stages.items():
        n, busy = max(s["frames_in"], s["frames_out"]), s["busy_s"]
        if busy > 0 and n > 0:  # per-stage capacity: frames it could pass per second of its own work
            rows.append(Result(SUITE, f"{name} stage {sid}", params={"stage": sid, "kind": s["kind"]},
                               fps=n / busy, p50_ms=1e3 * busy / n,
                               extra={"busy_s": busy, "busy_pct": s["busy_pct"], "frames": n}))
    return rows


def run_pipeline_bench(cfg: PipelineBenchConfig, log: Callable[[str], None] = lambda s: None) -> list[Result]:
    """`cfg.repeats` whole runs; the run with the median frames/s is reported (peak RSS: max over runs)."""
    name = cfg.file.stem
    runs: list[list[Result]] = []
    with tempfile.TemporaryDirectory(prefix="streamyolox-bench-") as tmp:
        for i in range(max(1, cfg.repeats)):
            log(f"pipeline: {cfg.file} run {i + 1}/{cfg.repeats}")
            runs.append(summarize(run_once(cfg, Path(tmp)), name))
    fps = [r[0].fps or 0.0 for r in runs]
    chosen = runs[int(np.argsort(fps)[len(fps) // 2])]
    chosen[0].peak_rss_mb = max(r[0].peak_rss_mb or 0.0 for r in runs)
    chosen[0].extra["peak_pss_mb"] = max(r[0].extra["peak_pss_mb"] for r in runs)
    chosen[0].extra["fps_runs"] = fps
    return chosen
