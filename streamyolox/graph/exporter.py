"""HTTP endpoint of a run: Prometheus text at `/metrics` (prometheus_client), stage states at `/health`,
the streams API and the camera wall (`streamyolox.web.api`). Binds 127.0.0.1 unless told otherwise; beyond
loopback a token is required (checked on every route but /health)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric, StateSetMetricFamily
from prometheus_client.registry import Collector

from streamyolox.graph.metrics import MetricsBoard

HEALTHY = ("starting", "opening", "running", "done")
STREAM_STATES = ("connecting", "up", "down", "ended", "removed")
STREAM_UP = ("connecting", "up")
QUANTILE = {"p50": "0.5", "p95": "0.95", "p99": "0.99"}


class BoardCollector(Collector):
    """Reads the board at scrape time (no second copy of the numbers)."""

    def __init__(self, board: MetricsBoard, pipeline: str) -> None:
        self.board = board
        self.pipeline = pipeline

    def collect(self) -> Iterator[Metric]:
        rows = self.board.rows()
        labels = ["pipeline", "stage"]
        frames = CounterMetricFamily("streamyolox_stage_frames", "packets processed by the stage", labels=labels)
        busy = CounterMetricFamily("streamyolox_stage_busy_seconds", "time spent in process()", labels=labels)
        fps = GaugeMetricFamily("streamyolox_stage_fps", "recent frames per second", labels=labels)
        age = GaugeMetricFamily("streamyolox_stage_frame_age_seconds", "frame age after the stage (recent)",
                                labels=[*labels, "quantile"])
        queue = GaugeMetricFamily("streamyolox_edge_queue_depth", "queued packets per input edge",
                                  labels=[*labels, "input"])
        dropped = CounterMetricFamily("streamyolox_stage_dropped_frames",
                                      "frames dropped by drop_oldest or lost when the stage restarted",
                                      labels=labels)
        restarts = CounterMetricFamily("streamyolox_stage_restarts", "process restarts", labels=labels)
        up = GaugeMetricFamily("streamyolox_stage_up", "1 while the stage is healthy", labels=labels)
        custom = GaugeMetricFamily("streamyolox_stage_counter", "ctx.count() values", labels=[*labels, "name"])
        for r in rows:
            key = [self.pipeline, r["stage"]]
            frames.add_metric(key, r["frames_in"] or r["frames_out"])
            busy.add_metric(key, r["busy_s"])
            fps.add_metric(key, r["fps"])
            for q, v in r["age_s"].items():
                if v is not None:
                    age.add_metric([*key, QUANTILE[q]], v)
            for src, depth in r["queue"].items():
                queue.add_metric([*key, src], depth)
            dropped.add_metric(key, r["dropped"])
            restarts.add_metric(key, r["restarts"])
            up.add_metric(key, 1.0 if r["state"] in HEALTHY else 0.0)
            for name, v in r["counters"].items():
                custom.add_metric([*key, name], v)
        yield from (frames, busy, fps, age, queue, dropped, restarts, up, custom)
        yield from self.collect_streams()

    def collect_streams(self) -> Iterator[Metric]:
        """Series per stream (`MetricsBoard.stream_rows`: numbers at the sinks). `streamyolox_stream_up` is 1
        while the stream is `up` or `connecting` (a first connection or a reconnect within its retry
        policy), 0 once it is `down` (failing), `ended` or `removed`; `streamyolox_stream_state` says which."""
        labels = ["pipeline", "stream", "source"]
        frames = CounterMetricFamily("streamyolox_stream_frames", "frames of the stream every sink finished",
                                     labels=labels)
        fps = GaugeMetricFamily("streamyolox_stream_fps", "recent frames per second at the sinks", labels=labels)
        age = GaugeMetricFamily("streamyolox_stream_frame_age_seconds", "frame age at the sinks (recent)",
                                labels=[*labels, "quantile"])
        dropped = CounterMetricFamily("streamyolox_stream_dropped_frames",
                                      "frames of the stream dropped by drop_oldest or lost in a restart",
                                      labels=labels)
        reconnects = CounterMetricFamily("streamyolox_stream_reconnects", "reconnects of the stream's source",
                                         labels=labels)
        up = GaugeMetricFamily("streamyolox_stream_up", "1 while the stream is up or connecting", labels=labels)
        state = StateSetMetricFamily("streamyolox_stream_state", "the stream's state", labels=labels)
        for r in self.board.stream_rows():
            key = [self.pipeline, r["id"], r["source"] or ""]
            frames.add_metric(key, r["frames"])
            fps.add_metric(key, r["fps"])
            for q in ("p50", "p95", "p99"):
                if r[f"age_{q}_s"] is not None:
                    age.add_metric([*key, QUANTILE[q]], r[f"age_{q}_s"])
            dropped.add_metric(key, r["dropped"])
            reconnects.add_metric(key, r["reconnects"])
            up.add_metric(key, 1.0 if r["state"] in STREAM_UP else 0.0)
            state.add_metric(key, {s: r["state"] == s for s in STREAM_STATES})
        yield from (frames, fps, age, dropped, reconnects, up, state)


def serve(board: MetricsBoard, port: int, pipeline: str, host: str = "127.0.0.1", token: str | None = None,
          control: Any = None) -> ThreadingHTTPServer:
    """Start the endpoint in a daemon thread (port 0 picks a free one: see `server.server_port`).
    `control`: the run's `streamyolox.web.control.StreamControl` (streams API and camera wall)."""
    from streamyolox.web.api import Api, send_json

    registry = CollectorRegistry()
    registry.register(BoardCollector(board, pipeline))
    api = Api(control, getattr(getattr(control, "sup", None), "wall", None), token or None)

    class Handler(BaseHTTPRequestHandler):
        def _other(self, method: str) -> None:
            if not api.authorized(self):
                send_json(self, 401, {"error": "unauthorized: send Authorization: Bearer <token>"})
            else:
                api.handle(self, method)

        def do_POST(self) -> None:
            self._other("POST")

        def do_DELETE(self) -> None:
            self._other("DELETE")

        def do_GET(self) -> None:
            if not self.path.startswith(("/metrics", "/health")):
                self._other("GET")
                return
            if self.path.startswith("/metrics") and not api.authorized(self):
                send_json(self, 401, {"error": "unauthorized: send Authorization: Bearer <token>"})
                return
            if self.path.startswith("/metrics"):
                body, ctype, code = generate_latest(registry), "text/plain; version=0.0.4", 200
            else:  # /health
                rows = board.rows()
                ok = all(r["state"] in HEALTHY for r in rows)
                doc = {"pipeline": pipeline, "status": "ok" if ok else "failing",
                       "stages": {r["stage"]: {"state": r["state"], "error": r["error"],
                                               "restarts": r["restarts"]} for r in rows},
                       "streams": {r["id"]: r["state"] for r in board.stream_rows(dropped={})}}
                executor = getattr(getattr(control, "sup", None), "executor", None)
                if executor is not None:  # where the processes run (ray: the node of every shard)
                    doc["executor"] = executor.describe()
                body, ctype, code = json.dumps(doc).encode(), "application/json", 200 if ok else 503
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:  # keep the dashboard clean
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, name="streamyolox-http", daemon=True).start()
    return server
