"""What a run shows: a rich live table on a terminal, plain periodic log lines otherwise, a summary table
at the end, `--metrics-json`, and the optional HTTP endpoint (Prometheus `/metrics`, JSON `/health`)."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from streamyolox.graph.metrics import MetricsBoard
from streamyolox.graph.spec import PipelineSpec

log = logging.getLogger("streamyolox.run")


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v * 1000:.0f}"


def _name(row: dict[str, Any]) -> str:
    """`det`, or `det x2` for a stage with replicas (its row sums them)."""
    n = row.get("replicas", 1)
    return row["stage"] if n == 1 else f"{row['stage']} x{n}"


def metrics_table(rows: list[dict[str, Any]], title: str) -> Table:
    """One row per stage: state, frames, fps, busy %, frame age p50/p95/p99 (ms), queue, drops, restarts."""
    table = Table(title=title, title_justify="left")
    for col in ("stage", "state", "frames", "fps", "busy %", "age p50", "p95", "p99", "queue", "dropped",
                "restarts", "counters"):
        table.add_column(col, justify="left" if col in ("stage", "state", "counters") else "right")
    for r in rows:
        age = r["age_s"]
        counters = ", ".join(f"{k}={v:g}" for k, v in r["counters"].items())
        table.add_row(_name(r), r["state"], str(max(r["frames_in"], r["frames_out"])), f"{r['fps']:.1f}",
                      f"{r['busy_pct']:.0f}", _ms(age["p50"]), _ms(age["p95"]), _ms(age["p99"]),
                      str(sum(r["queue"].values())), str(r["dropped"]), str(r["restarts"]), counters)
    return table


def streams_table(rows: list[dict[str, Any]], limit: int | None = None) -> Group:
    """A compact row per stream (id, state, frames, fps, age p50/p99 ms, drops, reconnects): the first
    `limit`, then `+N more` for the rest."""
    table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
    for col in ("stream", "state", "frames", "fps", "age p50", "p99", "dropped", "reconnects"):
        table.add_column(col, justify="left" if col in ("stream", "state") else "right")
    shown = rows if limit is None else rows[:max(limit, 0)]
    for r in shown:
        table.add_row(r["id"], r["state"], str(r["frames"]), f"{r['fps']:.1f}", _ms(r["age_p50_s"]),
                      _ms(r["age_p99_s"]), str(r["dropped"]), str(r["reconnects"]))
    more = len(rows) - len(shown)
    return Group(table, Text(f"+{more} more streams", style="dim")) if more else Group(table)


def summary_stream_rows(streams: dict[str, Any]) -> list[dict[str, Any]]:
    """The summary's `streams` (losses plus `losses.add_rates`) as `streams_table` rows."""
    return [{"id": sid, "state": s.get("state", "-"), "frames": s.get("sink_frames", s["frames"]),
             "fps": s.get("fps", 0.0), "age_p50_s": s.get("age_s", {}).get("p50"),
             "age_p99_s": s.get("age_s", {}).get("p99"), "dropped": s["dropped"],
             "reconnects": s.get("reconnects", 0)} for sid, s in streams.items()]


def log_line(rows: list[dict[str, Any]]) -> str:
    """`decode 30.1fps age50=12ms q=0 | nms 29.8fps age50=95ms q=2 drop=3 | ...`"""
    parts = []
    for r in rows:
        s = f"{_name(r)} {r['state']} {max(r['frames_in'], r['frames_out'])}f {r['fps']:.1f}fps " \
            f"age50={_ms(r['age_s']['p50'])}ms q={sum(r['queue'].values())}"
        if r["dropped"]:
            s += f" drop={r['dropped']}"
        if r["restarts"]:
            s += f" restarts={r['restarts']}"
        parts.append(s)
    return " | ".join(parts)


def streams_line(rows: list[dict[str, Any]]) -> str:
    """`streams: 3 up, 1 down | slowest cam2 9.8fps | oldest cam1 p99=412ms | dropped 12` (many streams
    on one log line: the states counted, the worst of each)."""
    states: dict[str, int] = {}
    for r in rows:
        states[r["state"]] = states.get(r["state"], 0) + 1
    parts = ["streams: " + ", ".join(f"{n} {s}" for s, n in sorted(states.items()))]
    running = [r for r in rows if r["state"] == "up"]
    if running:
        slow = min(running, key=lambda r: r["fps"])
        parts.append(f"slowest {slow['id']} {slow['fps']:.1f}fps")
    aged = [r for r in rows if r["age_p99_s"] is not None]
    if aged:
        old = max(aged, key=lambda r: r["age_p99_s"])
        parts.append(f"oldest {old['id']} p99={_ms(old['age_p99_s'])}ms")
    dropped = sum(r["dropped"] for r in rows)
    if dropped:
        parts.append(f"dropped {dropped}")
    return " | ".join(parts)


class Reporter:
    """Drives the live view, the log lines, the HTTP endpoint and the final outputs of one run."""

    def __init__(self, board: MetricsBoard, spec: PipelineSpec, options: Any, control: Any = None) -> None:
        self.board = board
        self.control = control  # streams API and camera wall on the HTTP port (streamyolox.web.control)
        self.spec = spec
        self.options = options
        self.interval = options.log_interval_s or spec.metrics.interval_s
        self.console = Console(file=sys.stderr)
        if not self.console.is_terminal:  # logs and CI: wide enough for every column
            self.console = Console(file=sys.stderr, width=160)
        self.live: Live | None = None
        self.server: Any = None
        self.next_at = time.monotonic() + self.interval

    def start(self) -> None:
        port = self.options.http_port if self.options.http_port is not None else self.spec.metrics.http_port
        if port is not None:
            from streamyolox.graph.exporter import serve

            host = getattr(self.options, "http_host", None) or self.spec.metrics.http_host
            token = getattr(self.options, "http_token", None) or self.spec.metrics.http_token
            self.server = serve(self.board, port, self.spec.name, host, token, self.control)
            log.info("metrics on http://%s:%d/metrics, health on /health, camera wall on /", host,
                     self.server.server_port)
        if self.options.dashboard:
            self.live = Live(self.view(), console=self.console, refresh_per_second=4, transient=True)
            self.live.start()

    def tick(self) -> None:
        now = time.monotonic()
        if self.live is not None:
            if now >= self.next_at - self.interval + 0.25:
                self.live.update(self.view())
        elif now >= self.next_at:
            log.info("%s", log_line(self.board.rows()))
            streams = self.board.stream_rows()
            if len(streams) > 1:
                log.info("%s", streams_line(streams))
        if now >= self.next_at:
            self.next_at = now + self.interval

    def view(self) -> Group:
        """The stage rows, and below them a row per stream, capped to what fits on the terminal."""
        stages = self.board.rows()
        streams = self.board.stream_rows()
        # stage table: title, 3 border/header lines, a line per stage; streams: a header, a line for "+N"
        room = self.console.height - (len(stages) + 5) - 2
        return Group(metrics_table(stages, self.spec.name),
                     streams_table(streams, room if room < len(streams) else None))

    def stop(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def finish(self, summary: dict[str, Any]) -> None:
        """The summary table on stderr and the JSON file, when asked for."""
        title = f"{self.spec.name}: {summary['elapsed_s']:.1f} s, exit {summary['exit_code']}"
        self.console.print(metrics_table(summary["stages"], title))
        if summary.get("streams"):
            self.console.print(streams_table(summary_stream_rows(summary["streams"])))
        path = self.options.metrics_json or self.spec.metrics.json
        if path:
            with open(path, "w", encoding="utf-8") as f:
                json.dump(summary, f, indent=1)
