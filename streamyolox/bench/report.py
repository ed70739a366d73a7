"""Render benchmark results: a rich table, a JSON document with the machine recorded, a matplotlib plot."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from streamyolox.bench.harness import Result
from streamyolox.bench.machine import cpu_family_text

SCHEMA = "streamyolox-bench/1"


def _num(value: float | None, fmt: str = "{:,.1f}") -> str:
    return "-" if value is None else fmt.format(value)


def results_table(results: Sequence[Result], title: str = "streamyolox bench") -> Table:
    """One row per result: frames/s, latency p50/p99 (ms), peak RSS (MB), and the ratio to its ref."""
    table = Table(title=title)
    for col, justify in (("suite", "left"), ("case", "left"), ("frames/s", "right"), ("p50 ms", "right"),
                         ("p99 ms", "right"), ("peak RSS MB", "right"), ("vs", "left")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for r in results:
        if r.skipped:
            table.add_row(r.suite, r.name, "[dim]skipped[/dim]", "", "", "", f"[dim]{r.skipped}[/dim]")
            continue
        vs = f"{r.ratio:.2f}x {r.ref}" if r.ratio is not None else (r.ref or "")
        table.add_row(r.suite, r.name, _num(r.fps), _num(r.p50_ms, "{:.2f}"), _num(r.p99_ms, "{:.2f}"),
                      _num(r.peak_rss_mb, "{:,.0f}"), vs)
    return table


def _find(results: Sequence[Result], suite: str, pred: Callable[[Result], bool]) -> Result | None:
    return next((r for r in results if r.suite == suite and r.fps and pred(r)), None)


def check_targets(results: Sequence[Result]) -> list[dict[str, Any]]:
    """The issue's targets, from whichever rows this run has: each {target, value, goal, met}."""
    pipe = _find(results, "pipeline", lambda r: "sink" in r.params)
    ort = _find(results, "model", lambda r: r.params.get("backend") == "ort-bare")
    demo = _find(results, "pipeline", lambda r: r.name == "official-demo")
    ipc = _find(results, "ops", lambda r: r.name == "transport ipc 1080p")
    out: list[dict[str, Any]] = []

    def add(target: str, value: float, goal: str, met: bool) -> None:
        out.append({"target": target, "value": round(value, 3), "goal": goal, "met": bool(met)})

    # _find returns only rows with an fps
    pipe_fps, ort_fps, demo_fps, ipc_fps = (r.fps if r else None for r in (pipe, ort, demo, ipc))
    if pipe_fps and ort_fps:
        add("pipeline fps / onnxruntime bare b1 fps", pipe_fps / ort_fps, ">= 0.75", pipe_fps >= 0.75 * ort_fps)
    if pipe_fps and demo_fps:
        add("pipeline fps / official demo fps", pipe_fps / demo_fps, ">= 4", pipe_fps >= 4 * demo_fps)
    if ipc and ipc_fps:
        add("1080p over a process edge (ipc), frames/s", ipc_fps, ">= 1000", ipc_fps >= 1000)
        if ipc.ratio:
            add("ipc 1080p fps / memcpy fps", ipc.ratio, ">= 0.5 (within 2x)", ipc.ratio >= 0.5)
    if pipe and pipe.peak_rss_mb:
        add("pipeline peak RSS, all processes (MB)", pipe.peak_rss_mb, "< 1536", pipe.peak_rss_mb < 1536)
        pss = pipe.extra.get("peak_pss_mb")
        if pss:
            add("pipeline peak PSS, all processes (MB)", pss, "< 1536", pss < 1536)
    return out


def targets_table(targets: Sequence[dict[str, Any]]) -> Table:
    table = Table(title="targets")
    for col in ("target", "value", "goal", "met"):
        table.add_column(col)
    for t in targets:
        table.add_row(t["target"], f"{t['value']:,.2f}", t["goal"], "[green]yes[/green]" if t["met"] else "[red]no[/red]")
    return table


def print_results(results: Sequence[Result], console: Console | None = None) -> None:
    if console is None:  # not a terminal (CI logs, pipes): wide enough to keep every row on one line
        console = Console() if sys.stdout.isatty() else Console(width=160)
    console.print(results_table(results))
    targets = check_targets(results)
    if targets:
        console.print(targets_table(targets))


def to_document(results: Sequence[Result], machine: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    """The `--json` document: schema tag, machine info, the settings used, every result row, the targets."""
    return {"schema": SCHEMA, "machine": machine, "settings": settings,
            "results": [r.to_json() for r in results], "targets": check_targets(results)}


def markdown(document: dict[str, Any]) -> str:
    """The results section of `benchmarks/README.md`: machine, commit, targets and every measured row."""
    m = document["machine"]
    lines = [f"Measured {m['date']} at commit `{m['commit']}` on {m['cpu_model']} "
             f"({cpu_family_text(m)}{m['cores_usable']} usable cores, {m['memory_gb']} GB), GPU: {m['gpu'] or 'none'}; "
             f"torch {m['versions'].get('torch')}, onnxruntime {m['versions'].get('onnxruntime')}; "
             f"load average (1/5/15 min) at the end: {m.get('load_avg')}.", ""]
    if document.get("targets"):
        lines += ["| target | value | goal | met |", "| --- | ---: | --- | --- |"]
        lines += [f"| {t['target']} | {t['value']:,.2f} | {t['goal']} | {'yes' if t['met'] else '**no**'} |"
                  for t in document["targets"]]
        lines.append("")
    lines += ["| suite | case | frames/s | p50 ms | p99 ms | peak RSS MB | vs |",
              "| --- | --- | ---: | ---: | ---: | ---: | --- |"]
    for r in (Result(**row) for row in document["results"]):
        if r.skipped:
            lines.append(f"| {r.suite} | {r.name} | skipped | | | | {r.skipped} |")
            continue
        vs = f"{r.ratio:.2f}x {r.ref}" if r.ratio is not None else ""
        lines.append(f"| {r.suite} | {r.name} | {_num(r.fps)} | {_num(r.p50_ms, '{:.2f}')} | "
                     f"{_num(r.p99_ms, '{:.2f}')} | {_num(r.peak_rss_mb, '{:,.0f}')} | {vs} |")
    return "\n".join(lines) + "\n"


MARK_START, MARK_END = "<!-- bench-results:start -->", "<!-- bench-results:end -->"


def update_markdown(path: Path, document: dict[str, Any]) -> None:
    """Replace the text between the bench-results markers of `path` with `markdown(document)`."""
    text = path.read_text()
    if MARK_START not in text or MARK_END not in text:
        raise ValueError(f"{path}: no {MARK_START} ... {MARK_END} section to fill")
    head, rest = text.split(MARK_START, 1)
    tail = rest.split(MARK_END, 1)[1]
    path.write_text(f"{head}{MARK_START}\n{markdown(document)}{MARK_END}{tail}")


def write_json(path: Path, document: dict[str, Any]) -> None:
    """Write atomically (temp file + rename) so an interrupted run never leaves half a JSON file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(document, indent=2) + "\n")
    tmp.replace(path)


def load_results(path: Path) -> tuple[dict[str, Any], list[Result]]:
    """Read a `--json` document back: (document, results)."""
    doc = json.loads(Path(path).read_text())
    if doc.get("schema") != SCHEMA:
        raise ValueError(f"{path}: not a streamyolox bench document (schema {doc.get('schema')!r})")
    return doc, [Result(**r) for r in doc["results"]]


def plot(results: Sequence[Result], path: Path, title: str = "streamyolox bench") -> None:
    """Per suite: horizontal bars of frames/s (log scale) and of latency p50 with a p99 whisker."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    suites = [s for s in dict.fromkeys(r.suite for r in results) if any(r.suite == s and r.fps for r in results)]
    if not suites:
        raise ValueError("nothing to plot: every case was skipped")
    heights = [max(1.6, 0.28 * sum(1 for r in results if r.suite == s and r.fps) + 0.9) for s in suites]
    fig, axes = plt.subplots(len(suites), 2, figsize=(13, sum(heights)), squeeze=False,
                             gridspec_kw={"height_ratios": heights})
    for row, suite in zip(axes, suites):
        rows = [r for r in results if r.suite == suite and r.fps]
        names = [r.name for r in rows]
        ypos = range(len(rows))
        row[0].barh(ypos, [r.fps for r in rows], color="tab:blue")
        row[0].set_xscale("log")
        row[0].set_title(f"{suite}: throughput (frames/s, log)")
        lat = [(r.p50_ms or 0.0) for r in rows]
        err = [max(0.0, (r.p99_ms or 0.0) - (r.p50_ms or 0.0)) for r in rows]
        row[1].barh(ypos, lat, xerr=[[0.0] * len(rows), err], color="tab:orange", capsize=2)
        row[1].set_xscale("log")
        row[1].set_title(f"{suite}: latency p50, whisker to p99 (ms, log)")
        for ax in row:
            ax.set_yticks(list(ypos), names, fontsize=7)
            ax.invert_yaxis()
            ax.grid(axis="x", alpha=0.3, which="both")
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)

