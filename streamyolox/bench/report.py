"""Render benchmark results: a rich table, a JSON document with the machine recorded, a matplotlib plot."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from streamyolox.bench.harness import Result

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


def print_results(results: Sequence[Result], console: Console | None = None) -> None:
    if console is None:  # not a terminal (CI logs, pipes): wide enough to keep every row on one line
        console = Console() if sys.stdout.isatty() else Console(width=160)
    console.print(results_table(results))


def to_document(results: Sequence[Result], machine: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    """The `--json` document: schema tag, machine info, the settings used and every result row."""
    return {"schema": SCHEMA, "machine": machine, "settings": settings,
            "results": [r.to_json() for r in results]}


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
