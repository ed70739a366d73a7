"""The side-by-side CPU run of issue 14: pipelines vs bare runtimes vs the official demo, interleaved.

Every case runs as its own process, as a user would run it, on the same clip (by default the 720p street
pan remuxed to 900 frames), round after round in alternation so that load from other work on a shared
machine hits every case alike:

- `ort-bare` / `openvino-bare`: the official ONNX export alone at batch 1 (`streamyolox.bench.bare`):
  steady frames/s of the loop, and frames/s over the whole process (interpreter start, imports, session).
- each pipeline (`streamyolox run FILE`, `streamyolox.bench.pipeline_bench`): steady frames/s, frames/s
  over the whole run (start to exit), time to the first JSON line, exit after the last one, peak RSS.
- `official-demo` (optional): `benchmarks/official_demo_baseline.py` on the same clip (its frame loop).
- `ceiling`: the frames/s the cores would reach doing nothing but decode, letterbox (from YUV) and 1-thread
  inference, each measured alone (`streamyolox.bench.ceiling`): the most any pipeline can do here, so
  whether a ratio target to `ort-bare` can be met at all on this machine.

Ratios are to `ort-bare`'s steady rate (the issue's yardstick); the run with the median value is kept.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from streamyolox.bench.harness import Result
from streamyolox.bench.machine import cpu_family_text
from streamyolox.bench.pipeline_bench import PipelineBenchConfig, run_pipeline_bench

SUITE = "side-by-side"
BASELINE = "ort-bare b1"
CEILING = "ceiling (no pipeline)"


@dataclass
class SideBySideConfig:
    """`pipelines`: YAML files run with `overrides` (+ the clip and weights); `threads`: bare runtimes'."""

    clip: Path
    weights: Path
    onnx: Path
    pipelines: Sequence[Path]
    overrides: Sequence[str] = field(default_factory=list)
    frames: int = 900
    threads: int = 2
    rounds: int = 2
    official_demo: Path | None = None  # benchmarks/official_demo_baseline.py, or None to leave it out
    runtimes: Sequence[str] = ("onnxruntime", "openvino")
    before: bool = True  # also each pipeline as it ran before issue 14: spawned, one process per stage
    ceiling: bool = True  # also the no-pipeline ceiling (`streamyolox.bench.ceiling`)
    warmup: bool = True  # before round 1: the first pipeline once on an empty cache, then each once untimed


def before_sets(file: Path, sets: Sequence[str]) -> list[str]:
    """Overrides that place every stage in its own process (a worker of its own name), as before the
    default placement; with STREAMYOLOX_START_METHOD=spawn the processes start as before the forkserver."""
    from streamyolox.graph.validate import load_pipeline

    spec = load_pipeline(file, list(sets))
    return [f"stages.{sid}.worker={sid}" for sid, s in spec.stages.items() if s.replicas == 1 and s.worker is None]


def remux_copies(src: Path, dst: Path, copies: int) -> Path:
    """`src`'s video packets `copies` times in a row (PTS continued), without re-encoding: a longer clip of
    the same frames. Hand-written: PyAV remuxing is a few lines, ffmpeg's concat demuxer needs a list file."""
    import av

    if dst.exists():
        return dst
    tmp = dst.with_name(f".{dst.name}.part")
    with av.open(str(src)) as inp:
        stream = inp.streams.video[0]
        packets = [p for p in inp.demux(stream) if p.size]
        span = max(p.pts for p in packets) - min(p.pts for p in packets) + (packets[-1].duration or 1)
        with av.open(str(tmp), "w", format="mp4") as out:
            ostream = out.add_stream_from_template(stream)
            for k in range(copies):
                for p in packets:
                    if k:
                        p.pts += span
                        p.dts += span
                    p.stream = ostream
                    out.mux(p)
    tmp.replace(dst)
    return dst


def bare_case(runtime: str, onnx: Path, frames: int, threads: int) -> Result:
    """One `streamyolox.bench.bare` process: its own numbers plus the wall time of the whole process."""
    cmd = [sys.executable, "-m", "streamyolox.bench.bare", runtime, str(onnx), "--frames", str(frames),
           "--threads", str(threads)]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    wall = time.perf_counter() - t0
    name = f"{'ort' if runtime == 'onnxruntime' else runtime}-bare b1"
    if done.returncode != 0:
        tail = " | ".join(done.stderr.strip().splitlines()[-2:])
        return Result(SUITE, name, params={"runtime": runtime}, skipped=f"exit {done.returncode}: {tail}")
    out = json.loads(done.stdout.strip().splitlines()[-1])
    return Result(SUITE, name, params={"runtime": runtime, "threads": threads, "batch": 1},
                  fps=out["steady_fps"], p50_ms=out["p50_ms"], p99_ms=out["p99_ms"],
                  extra={"fps_with_startup": frames / wall, "wall_s": wall, "startup_s": out["startup_s"],
                         "frames": frames})


def ceiling_case(cfg: SideBySideConfig) -> Result:
    """One `streamyolox.bench.ceiling` process on the clip: the work no pipeline can skip, summed per frame."""
    cmd = [sys.executable, "-m", "streamyolox.bench.ceiling", str(cfg.clip), str(cfg.onnx)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        tail = " | ".join(done.stderr.strip().splitlines()[-2:])
        return Result(SUITE, CEILING, skipped=f"exit {done.returncode}: {tail}")
    out = json.loads(done.stdout.strip().splitlines()[-1])
    parts = {k: out[k] for k in ("decode_ms", "yuv_letterbox_ms", "bgr_ms", "letterbox_ms", "infer_ms",
                                 "core_ms_per_frame")}
    return Result(SUITE, CEILING, params={"cores": out["cores"]}, fps=out["ceiling_fps"],
                  extra={"parts_ms": parts, "ceiling_bgr_fps": out["ceiling_bgr_fps"]})


@contextlib.contextmanager
def _environ(name: str, value: str) -> Iterator[None]:
    """`name=value` in this process's environment (which the runs it starts inherit), restored after."""
    saved = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        os.environ.pop(name)
        if saved is not None:
            os.environ[name] = saved


def pipeline_case(file: Path, cfg: SideBySideConfig, before: bool = False) -> Result:
    sets = [f"stages.source.url={cfg.clip}", f"model.weights={cfg.weights}", *cfg.overrides]
    if before:
        sets += before_sets(file, sets)
    method = "spawn" if before else os.environ.get("STREAMYOLOX_START_METHOD", "")
    with _environ("STREAMYOLOX_START_METHOD", method):
        top, *stages = run_pipeline_bench(PipelineBenchConfig(file, sets, repeats=1))
    e = top.extra
    name = f"{file.stem} (before: spawn, a process per stage)" if before else file.stem
    return Result(SUITE, name, params={"file": str(file), "before": before}, fps=top.fps, p50_ms=top.p50_ms,
                  p99_ms=top.p99_ms, peak_rss_mb=top.peak_rss_mb,
                  extra={"fps_with_startup": e["fps_wall"], "wall_s": e["wall_s"], "frames": e["frames"],
                         "first_output_s": e["first_output_s"], "first_output_cpu_s": e["first_output_cpu_s"],
                         "exit_after_output_s": e["exit_after_output_s"],
                         "peak_pss_mb": e["peak_pss_mb"], "busy_s": e["busy_s"],
                         "stage_ms": {r.params["stage"]: r.p50_ms for r in stages}})


def warm_caches(cfg: SideBySideConfig, log: Callable[[str], None]) -> Result:
    """Run the first pipeline on an empty cache (its first JSON line then includes the ONNX export and
    `auto`'s backend measurement: returned), then every pipeline once, untimed, on the user's cache, so that
    round 1 starts cached like the others (a cold round 1 once read 8.4 s to the first line: 0.57x)."""
    with tempfile.TemporaryDirectory(prefix="streamyolox-cold-cache-") as empty, _environ("STREAMYOLOX_CACHE", empty):
        log(f"side-by-side: {cfg.pipelines[0].stem} on an empty cache")
        cold = pipeline_case(cfg.pipelines[0], cfg)
    for file in cfg.pipelines:
        log(f"side-by-side: warm-up {file.stem}")
        pipeline_case(file, cfg)
    return cold


def official_case(script: Path, cfg: SideBySideConfig) -> Result:
    with tempfile.TemporaryDirectory(prefix="streamyolox-official-") as tmp:
        out = Path(tmp) / "official.json"
        cmd = [sys.executable, str(script), "--path", str(cfg.clip), "--ckpt", str(cfg.weights), "--json", str(out)]
        t0 = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=1200)
        wall = time.perf_counter() - t0
        if done.returncode != 0 or not out.exists():
            return Result(SUITE, "official-demo", skipped=f"exit {done.returncode}")
        row = json.loads(out.read_text())["results"][0]
    frames = row.get("extra", {}).get("frames", cfg.frames)
    return Result(SUITE, "official-demo", params={"script": str(script)}, fps=row["fps"],
                  peak_rss_mb=row.get("peak_rss_mb"), extra={"fps_with_startup": frames / wall, "wall_s": wall,
                                                             "frames": frames})


def _median(rows: list[Result]) -> Result:
    ran = [r for r in rows if r.fps]
    if not ran:
        return rows[0]
    chosen = sorted(ran, key=lambda r: r.fps or 0.0)[len(ran) // 2]
    chosen.extra["fps_rounds"] = [r.fps for r in ran]
    if all(r.extra.get("fps_with_startup") for r in ran):
        chosen.extra["fps_with_startup_rounds"] = [r.extra["fps_with_startup"] for r in ran]
    return chosen


def _pair_rounds(runs: list[list[Result]], rows: list[Result]) -> None:
    """Each case's ratio to the baseline's run of the same round, beside the ratio of the medians: the
    yardstick itself swings from round to round (bare onnxruntime with 2 threads: 147, 220 and 148
    frames/s in one run on a 2-core AMD EPYC), so the range says more than one ratio."""
    base = next((r for r in runs if r and r[0].name == BASELINE), None)
    if base is None:
        return
    for row, mine in zip(rows, runs):
        if mine is base:
            continue
        pairs = [(m, b) for m, b in zip(mine, base) if m.fps and b.fps]
        row.extra["ratio_rounds"] = [m.fps / b.fps for m, b in pairs]  # type: ignore[operator]
        if all(m.extra.get("fps_with_startup") for m, _ in pairs):  # the ceiling has no start-up to count
            row.extra["ratio_with_startup_rounds"] = [
                m.extra["fps_with_startup"] / b.fps for m, b in pairs]  # type: ignore[operator]


def run_side_by_side(cfg: SideBySideConfig, log: Callable[[str], None] = lambda s: None) -> list[Result]:
    """`cfg.rounds` rounds of every case in alternation; per case the median round, ratios to ort-bare."""
    cases: dict[str, Callable[[], Result]] = {}
    for rt in cfg.runtimes:
        cases[rt] = lambda rt=rt: bare_case(rt, cfg.onnx, cfg.frames, cfg.threads)  # type: ignore[misc]
    for file in cfg.pipelines:
        cases[file.stem] = lambda file=file: pipeline_case(file, cfg)  # type: ignore[misc]
        if cfg.before:
            cases[f"{file.stem} before"] = lambda file=file: pipeline_case(file, cfg, before=True)  # type: ignore[misc]
    if cfg.ceiling:
        cases[CEILING] = lambda: ceiling_case(cfg)
    cold = warm_caches(cfg, log) if cfg.warmup and cfg.pipelines else None
    runs: dict[str, list[Result]] = {name: [] for name in cases}
    for rnd in range(cfg.rounds):
        for name, case in cases.items():
            log(f"side-by-side round {rnd + 1}/{cfg.rounds}: {name}")
            runs[name].append(case())
    rows = [_median(r) for r in runs.values()]
    _pair_rounds(list(runs.values()), rows)
    if cold is not None:
        first = next(r for r in rows if r.name == cfg.pipelines[0].stem)
        first.extra.update(cold_first_output_s=cold.extra["first_output_s"],
                           cold_first_output_cpu_s=cold.extra["first_output_cpu_s"])
    if cfg.official_demo is not None:
        log("side-by-side: official demo")
        rows.append(official_case(cfg.official_demo, cfg))
    base = next((r for r in rows if r.name == BASELINE and r.fps), None)
    for r in rows:
        if base is not None and r.fps and r is not base:
            r.ref, r.ratio = base.name, r.fps / (base.fps or np.nan)
            if r.extra.get("fps_with_startup"):
                r.extra["ratio_with_startup"] = r.extra["fps_with_startup"] / (base.fps or np.nan)
    return rows


def _n(value: float | None, fmt: str = "{:,.1f}") -> str:
    return "-" if value is None else fmt.format(value)


def _ratio(value: float | None, rounds: list[float] | None) -> str:
    """`0.89x`, with the range of the per-round ratios when there were several rounds: `0.89x (0.57-0.89)`."""
    text = _n(value, "{:.2f}x")
    if value is not None and rounds and len(rounds) > 1:
        text += f" ({min(rounds):.2f}-{max(rounds):.2f})"
    return text


def markdown_table(document: dict[str, Any]) -> str:
    """The README table: one row per case, steady and with start-up, start-up and shutdown, memory."""
    m = document["machine"]
    lines = [f"Measured {m['date']} at commit `{m['commit']}` on {m['cpu_model']} ({cpu_family_text(m)}{m['cores_usable']} usable "
             f"cores, {m['memory_gb']} GB), onnxruntime {m['versions'].get('onnxruntime')}, openvino "
             f"{m['versions'].get('openvino', '-')}; load average (1/5/15 min) at the end: {m.get('load_avg')}.", "",
             "Ratios: of the median rounds, and in brackets the range of each round's ratio to the same "
             "round's ort-bare run.", "",
             "| case | steady frames/s | vs ort-bare | frames/s with start-up | vs ort-bare | first JSON line s "
             "| CPU s by then | exit after last s | peak RSS MB | peak PSS MB |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in document["results"]:
        e = r.get("extra", {})
        if r.get("skipped"):
            lines.append(f"| {r['name']} | skipped: {r['skipped']} | | | | | | | | |")
            continue
        lines.append(f"| {r['name']} | {_n(r['fps'])} | {_ratio(r.get('ratio'), e.get('ratio_rounds'))} | "
                     f"{_n(e.get('fps_with_startup'))} | "
                     f"{_ratio(e.get('ratio_with_startup'), e.get('ratio_with_startup_rounds'))} | "
                     f"{_n(e.get('first_output_s'), '{:.2f}')} | {_n(e.get('first_output_cpu_s'), '{:.2f}')} | "
                     f"{_n(e.get('exit_after_output_s'), '{:.2f}')} | "
                     f"{_n(r.get('peak_rss_mb'), '{:,.0f}')} | {_n(e.get('peak_pss_mb'), '{:,.0f}')} |")
    lines += _ceiling_lines(document["results"]) + _cold_lines(document["results"])
    stage_rows = [(r["name"], e["stage_ms"]) for r in document["results"] if (e := r.get("extra", {})).get("stage_ms")]
    if stage_rows:
        lines += ["", "Busy ms per frame of each stage (wall time of `process`, sends excluded):", "",
                  "| pipeline | stage ms per frame |", "| --- | --- |"]
        for name, ms in stage_rows:
            lines.append(f"| {name} | " + ", ".join(f"{sid} {v:.2f}" for sid, v in ms.items()) + " |")
    return "\n".join(lines)


def _ceiling_lines(results: list[dict[str, Any]]) -> list[str]:
    row = next((r for r in results if r["name"] == CEILING and not r.get("skipped")), None)
    if row is None:
        return []
    parts = row.get("extra", {}).get("parts_ms", {})
    cores = row.get("params", {}).get("cores")
    bgr = row.get("extra", {}).get("ceiling_bgr_fps")
    return ["", f"The ceiling: CPU ms per frame of the work no pipeline can skip, each measured alone on one core "
            f"(decode {parts.get('decode_ms', 0):.2f}, letterbox from the decoder's YUV planes "
            f"{parts.get('yuv_letterbox_ms', 0):.2f}, 1-thread inference {parts.get('infer_ms', 0):.2f}: "
            f"{parts.get('core_ms_per_frame', 0):.2f} in all), {cores} cores busy with it and nothing else. "
            f"With BGR frames instead (`pixel_format: bgr24`: swscale BGR {parts.get('bgr_ms', 0):.2f}, letterbox "
            f"{parts.get('letterbox_ms', 0):.2f}) it is {bgr or 0:.1f} frames/s."]


def _cold_lines(results: list[dict[str, Any]]) -> list[str]:
    row = next((r for r in results if r.get("extra", {}).get("cold_first_output_s") is not None), None)
    if row is None:
        return []
    e = row["extra"]
    return ["", f"Every pipeline ran once before round 1, so the rounds start with the model cached. The first of "
            f"those runs, {row['name']} on an empty cache (ONNX export and `auto`'s backend measurement), wrote "
            f"its first JSON line after {e['cold_first_output_s']:.2f} s ({e['cold_first_output_cpu_s']:.2f} CPU s)."]
