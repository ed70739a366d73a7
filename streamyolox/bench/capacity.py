"""`streamyolox bench capacity PIPELINE --target-fps 15 --max-age-ms 500`: how many cameras this machine
sustains through a pipeline.

One `streamyolox run PIPELINE --http PORT` (every stage a real process, the model loaded once) whose
source reads copies of one clip played as cameras (`realtime: true`, `loop: true`; stream ids cap0,
cap1, ...). It starts with one stream; after each measuring window one more is added while it runs
(`POST /streams`, the streams API). Each window measures, per stream, the frames that reached every sink
(frames/s = their increase between two readings of `GET /streams`, over the time between the last frames
each reading counted: `window_fps`) and the frame age p99 at the sinks;
the step holds when every stream keeps `target_fps` (less `fps_tolerance`, for the window's
frame-count granularity) and every p99 stays within `max_age_ms`. The search ends at the first step
that misses, or at `max_streams`; the answer is the most streams of a step that held. The RSS of the
whole process tree is recorded per step (what each added stream costs).

The pipeline's source is its decode stage (`source` names one when there are several): its `url` is
replaced by the streams, its other options are every stream's defaults. Output paths (json, mp4) go to a
temporary folder, one file per stream, so a bench never writes over the user's outputs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from streamyolox.config_fields import OUTPUT_KEY

STREAM_PREFIX = "cap"
API_TIMEOUT_S = 10.0


@dataclass
class CapacityConfig:
    """What to measure and how long; see the module doc."""

    pipeline: Path
    clip: Path
    target_fps: float = 15.0
    max_age_ms: float = 500.0
    max_streams: int = 16
    warmup_s: float = 5.0
    window_s: float = 10.0
    fps_tolerance: float = 0.05
    source: str | None = None
    overrides: Sequence[str] = field(default_factory=list)
    start_timeout_s: float = 300.0

    def __post_init__(self) -> None:
        for name in ("target_fps", "max_age_ms", "window_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"--{name.replace('_', '-')}: expected a number > 0, got {getattr(self, name)}")
        if self.max_streams < 1:
            raise ValueError(f"--max-streams: expected an int >= 1, got {self.max_streams}")
        if self.warmup_s < 0 or not 0 <= self.fps_tolerance < 1:
            raise ValueError("--warmup: expected >= 0; fps tolerance: expected a number in [0, 1)")


@dataclass
class Step:
    """One measuring window with `streams` streams."""

    streams: int
    window_s: float
    fps: dict[str, float]
    age_p99_ms: dict[str, float | None]
    rss_mb: float
    sustained: bool
    reason: str | None

    @property
    def min_fps(self) -> float:
        return min(self.fps.values())

    @property
    def max_age_p99_ms(self) -> float | None:
        ages = [a for a in self.age_p99_ms.values() if a is not None]
        return max(ages) if ages else None


def stream_id(index: int) -> str:
    return f"{STREAM_PREFIX}{index}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_overrides(cfg: CapacityConfig, out_dir: Path) -> tuple[str, list[str]]:
    """(source stage id, the `--set` list): the user's overrides, the source turned into one looping
    real-time stream of the clip, and every output path moved into `out_dir` (a file per stream)."""
    from streamyolox.graph.validate import load_pipeline

    # the pipeline's own streams (url, streams, streams_file) give way to the bench's
    src_sets = ["url=null", "streams={}", "streams_file=null", f"streams.{stream_id(0)}={cfg.clip}",
                "realtime=true", "loop=true"]
    spec = load_pipeline(cfg.pipeline, list(cfg.overrides))
    decodes = [sid for sid, st in spec.stages.items() if st.kind == "decode"]
    source = cfg.source or (decodes[0] if len(decodes) == 1 else None)
    if source is None or source not in decodes:
        raise ValueError(f"--source: name the decode stage to load ({', '.join(decodes) or 'none in the pipeline'})")
    sets = [*cfg.overrides, *(f"stages.{source}.{s}" for s in src_sets)]
    for sid, st in spec.stages.items():
        for f in dataclasses.fields(st.options):
            value = getattr(st.options, f.name)
            if f.metadata.get(OUTPUT_KEY) and isinstance(value, str) and value != "-":
                sets.append(f"stages.{sid}.{f.name}={out_dir / sid / ('{stream}' + Path(value).suffix)}")
    return source, sets


class Api:
    """The run's streams API (reuses `streamyolox streams`' client: one-line errors, JSON answers)."""

    def __init__(self, port: int) -> None:
        self.args = argparse.Namespace(http=f"http://127.0.0.1:{port}", token=None, timeout=API_TIMEOUT_S)

    def rows(self) -> dict[str, dict[str, Any]]:
        from streamyolox.cli.streams import request

        _, rows = request(self.args, "GET", "/streams")
        return {r["id"]: r for r in rows}

    def add(self, sid: str, url: str, source: str) -> None:
        from streamyolox.cli.streams import request

        request(self.args, "POST", "/streams", {"id": sid, "url": url, "source": source})


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and its descendants (MB)."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return total / 2**20


class Run:
    """`streamyolox run` in the background with its HTTP API; stopped by SIGINT (a clean stop)."""

    def __init__(self, cfg: CapacityConfig, sets: list[str], log_path: Path) -> None:
        self.port = free_port()
        cmd = [sys.executable, "-m", "streamyolox", "run", str(cfg.pipeline), "--no-dashboard",
               "--http", str(self.port), *[a for s in sets for a in ("--set", s)]]
        self.log_path = log_path
        self._log = open(log_path, "w", encoding="utf-8")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=dict(os.environ))
        self.api = Api(self.port)

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            tail = self.log_path.read_text(errors="replace").strip().splitlines()[-3:]
            raise RuntimeError(f"the pipeline exited ({self.proc.returncode}): {' / '.join(tail)}")

    def wait_frames(self, sid: str, timeout_s: float) -> None:
        """Until stream `sid` has frames at the sinks (the model loaded, the stream connected)."""
        from streamyolox.cli.streams import ApiError

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                if (self.api.rows().get(sid) or {}).get("frames", 0) > 0:
                    return
            except ApiError:
                pass  # not serving yet
            time.sleep(0.25)
        raise RuntimeError(f"stream {sid} delivered no frame within {timeout_s:g} s (log: {self.log_path})")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


def measure(run: Run, cfg: CapacityConfig, k: int) -> Step:
    """Warm up, then one window: frames/s from the sinks' frame counts, age p99 at the window's end."""
    time.sleep(cfg.warmup_s)
    run.check_alive()
    ids = [stream_id(i) for i in range(k)]
    t0, first = time.monotonic(), run.api.rows()
    worst: dict[str, float | None] = dict.fromkeys(ids)
    deadline = t0 + cfg.window_s
    while (now := time.monotonic()) < deadline:
        time.sleep(min(1.0, deadline - now))
        run.check_alive()
        rows = run.api.rows()
        for sid in ids:  # the worst p99 seen in the window: a budget holds only if it holds throughout
            age = (rows.get(sid) or {}).get("age_p99_s")
            if age is not None:
                worst[sid] = max(worst[sid] or 0.0, age * 1000)
    t1, last = time.monotonic(), run.api.rows()
    fps = {sid: window_fps(first.get(sid) or {}, last.get(sid) or {}, t1 - t0) for sid in ids}
    return judge(cfg, k, t1 - t0, fps, worst, tree_rss_mb(run.proc.pid))


def window_fps(first: dict[str, Any], last: dict[str, Any], wall_s: float) -> float:
    """Frames/s of one stream between two readings of `GET /streams`: the frames finished between the two
    readings' last frames, over the time between those frames. The counts move in steps of the stages'
    1 s reports, so over the readings' own wall time a 2 s window of a 30 fps clip read up to 45 fps
    (and a 10 s window at 15 fps +-10%, twice the default tolerance)."""
    frames = last.get("frames", 0) - first.get("frames", 0)
    t0, t1 = first.get("last_frame_t"), last.get("last_frame_t")
    if t0 is not None and t1 is not None and t1 > t0:
        return float(frames / (t1 - t0))
    return float(frames / wall_s)  # no frame at one end: at most what the wall time allows


def judge(cfg: CapacityConfig, k: int, window_s: float, fps: dict[str, float], ages: dict[str, float | None],
          rss_mb: float) -> Step:
    """The step's verdict: every stream at the target rate (less the tolerance) and within the age budget."""
    floor = cfg.target_fps * (1 - cfg.fps_tolerance)
    slow = sorted((f, sid) for sid, f in fps.items() if f < floor)
    old = sorted(((a, sid) for sid, a in ages.items() if a is not None and a > cfg.max_age_ms), reverse=True)
    reason = None
    if slow:
        reason = f"{slow[0][1]} at {slow[0][0]:.1f} fps < {cfg.target_fps:g}"
    elif old:
        reason = f"{old[0][1]} frame age p99 {old[0][0]:.0f} ms > {cfg.max_age_ms:g}"
    elif any(a is None for a in ages.values()):
        reason = "no frame age measured for " + ", ".join(sid for sid, a in ages.items() if a is None)
    return Step(k, round(window_s, 3), {s: round(f, 3) for s, f in fps.items()},
                {s: None if a is None else round(a, 1) for s, a in ages.items()}, round(rss_mb, 1),
                reason is None, reason)


def run_capacity(cfg: CapacityConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Add streams one by one until a step misses (or `max_streams`); returns the result document."""
    from streamyolox.bench.machine import machine_info

    steps: list[Step] = []
    with tempfile.TemporaryDirectory(prefix="syx-capacity-") as tmp:
        source, sets = run_overrides(cfg, Path(tmp) / "out")
        run = Run(cfg, sets, Path(tmp) / "run.log")
        try:
            run.wait_frames(stream_id(0), cfg.start_timeout_s)
            for k in range(1, cfg.max_streams + 1):
                if k > 1:
                    run.api.add(stream_id(k - 1), str(cfg.clip), source)
                step = measure(run, cfg, k)
                steps.append(step)
                log(f"{k} stream(s): min {step.min_fps:.1f} fps, age p99 max "
                    f"{step.max_age_p99_ms if step.max_age_p99_ms is not None else '-'} ms, RSS {step.rss_mb:.0f} MB"
                    f" -> {'held' if step.sustained else 'missed: ' + str(step.reason)}")
                if not step.sustained:
                    break
        finally:
            run.stop()
    return document(cfg, steps, machine_info())


def sustained_streams(steps: Sequence[Step]) -> int:
    """The most streams of a step that held, counting only the steps before the first miss."""
    best = 0
    for step in steps:
        if not step.sustained:
            break
        best = step.streams
    return best


def document(cfg: CapacityConfig, steps: Sequence[Step], machine: dict[str, Any]) -> dict[str, Any]:
    held = sustained_streams(steps)
    last = steps[-1] if steps else None
    return {
        "suite": "capacity",
        "pipeline": str(cfg.pipeline), "clip": str(cfg.clip), "target_fps": cfg.target_fps,
        "max_age_ms": cfg.max_age_ms, "fps_tolerance": cfg.fps_tolerance, "warmup_s": cfg.warmup_s,
        "window_s": cfg.window_s, "max_streams": cfg.max_streams, "overrides": list(cfg.overrides),
        "max_streams_sustained": held,
        "stopped": ("max_streams reached" if last is not None and last.sustained else
                    f"at {last.streams} stream(s): {last.reason}" if last is not None else "no step ran"),
        "steps": [{**dataclasses.asdict(s), "min_fps": s.min_fps, "max_age_p99_ms": s.max_age_p99_ms}
                  for s in steps],
        "machine": machine,
    }


def write_json(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")


def plot(doc: dict[str, Any], path: Path) -> None:
    """Frames/s (min and mean over streams) and frame age p99 (max over streams) against the stream count,
    with the target and the budget as lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = doc["steps"]
    ks = [s["streams"] for s in steps]
    fig, (ax_fps, ax_age) = plt.subplots(1, 2, figsize=(11, 4))
    ax_fps.plot(ks, [s["min_fps"] for s in steps], "o-", label="slowest stream")
    ax_fps.plot(ks, [sum(s["fps"].values()) / len(s["fps"]) for s in steps], "s--", label="mean")
    ax_fps.axhline(doc["target_fps"], color="tab:red", lw=1, label=f"target {doc['target_fps']:g} fps")
    ax_fps.set(xlabel="streams", ylabel="frames/s per stream", title="throughput per stream")
    ax_age.plot(ks, [s["max_age_p99_ms"] or 0 for s in steps], "o-", color="tab:orange", label="worst stream p99")
    ax_age.axhline(doc["max_age_ms"], color="tab:red", lw=1, label=f"budget {doc['max_age_ms']:g} ms")
    ax_age.set(xlabel="streams", ylabel="frame age p99 (ms)", title="frame age at the sinks")
    for ax in (ax_fps, ax_age):
        ax.set_xticks(ks)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"{Path(doc['pipeline']).name}: {doc['max_streams_sustained']} stream(s) sustained "
                 f"({doc['machine'].get('cpu_model', '')}, {doc['machine'].get('cores_usable', '?')} cores)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
