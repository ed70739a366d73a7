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
    """One `streamyolox run`: wall time, peak RSS of the tree (total and per process), its metrics."""

    wall_s: float
    peak_rss_mb: float
    rss_by_process: dict[str, float]
    metrics: dict[str, Any]


def run_once(cfg: PipelineBenchConfig, workdir: Path) -> RunSample:
    """Run the pipeline to its end; raise RuntimeError naming the file and the tail of stderr on failure."""
    metrics_path = workdir / "metrics.json"
    metrics_path.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "streamyolox", "run", str(cfg.file), "--metrics-json", str(metrics_path)]
    for item in cfg.overrides:
        cmd += ["--set", item]
    err_path = workdir / "stderr.log"
    with err_path.open("wb") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
        try:
            with RssSampler(proc.pid, interval_s=0.02) as rss:
                rc = proc.wait(timeout=cfg.timeout_s)
        except subprocess.TimeoutExpired:
            proc.terminate()  # SIGTERM: the runtime stops its stages and cleans up
            proc.wait(timeout=10)
            raise RuntimeError(f"bench pipeline: {cfg.file} still running after {cfg.timeout_s:.0f} s") from None
        wall = time.perf_counter() - t0
    if rc != 0 or not metrics_path.exists():
        tail = err_path.read_text(errors="replace").strip().splitlines()[-3:]
        raise RuntimeError(f"bench pipeline: `streamyolox run {cfg.file}` exited {rc}: {' | '.join(tail)}")
    return RunSample(wall, rss.peak_total_mb, dict(rss.peak_by_process), json.loads(metrics_path.read_text()))


def _stages(metrics: dict[str, Any]) -> dict[str, dict[str, Any]]:
    stages = metrics.get("stages", {})
    if isinstance(stages, list):
        return {s.get("id", str(i)): s for i, s in enumerate(stages)}
    return dict(stages)


def summarize(sample: RunSample, name: str) -> list[Result]:
    """One row for the pipeline (frames/s, frame age at the sinks) and one per stage (busy time)."""
    m = sample.metrics
    stages = _stages(m)
    sinks = [s for s in stages.values() if s.get("sink") or s.get("is_sink")] or list(stages.values())[-1:]
    frames = int(m.get("frames") or max((s.get("frames_out", s.get("frames", 0)) for s in sinks), default=0))
    elapsed = float(m.get("elapsed_s") or m.get("duration_s") or sample.wall_s)
    age = (sinks[0].get("age_ms") or {}) if sinks else {}
    extra = {"frames": frames, "elapsed_s": elapsed, "wall_s": sample.wall_s,
             "wall_fps": frames / sample.wall_s if sample.wall_s else None,
             "rss_by_process_mb": sample.rss_by_process,
             "busy_s": {sid: s.get("busy_s") for sid, s in stages.items()}}
    rows = [Result(SUITE, name, params={"file": name}, fps=frames / elapsed if elapsed else None,
                   p50_ms=age.get("p50"), p95_ms=age.get("p95"), p99_ms=age.get("p99"),
                   peak_rss_mb=sample.peak_rss_mb, extra=extra)]
    for sid, s in stages.items():
        busy = s.get("busy_s")
        n = s.get("frames_in") or s.get("frames") or frames
        if busy:
            rows.append(Result(SUITE, f"{name} stage {sid}", params={"stage": sid, "kind": s.get("kind")},
                               fps=n / busy if busy else None, p50_ms=1e3 * busy / n if n else None,
                               extra={"busy_s": busy, "busy_fraction": busy / elapsed if elapsed else None}))
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
    chosen[0].extra["fps_runs"] = fps
    return chosen
