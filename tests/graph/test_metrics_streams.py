"""Per-stream metrics of real runs: the summary's `streams` (frames at the sinks, fps, frame ages) against
what the sinks wrote, and the Prometheus series with a `stream` label and `/health`'s streams, scraped
from `streamyolox run --http 0` while it runs (parsed with prometheus_client's parser)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import av
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from streamyolox.graph.runner import RunOptions, run_pipeline
from streamyolox.graph.validate import load_pipeline

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
pytestmark = pytest.mark.timeout(180)


def _frames(path: Path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


def _records(path: Path) -> list[dict]:
    return [r for r in map(json.loads, path.read_text().splitlines()) if "frame" in r]


def test_summary_streams_match_what_the_sinks_wrote(tmp_path: Path, street_720p: Path) -> None:
    dog = street_720p.parent / "dog_pan_480p.mp4"
    text = f"""
metrics: {{interval_s: 0.2}}
stages:
  src: {{kind: decode, streams: {{dog: "{dog}", street: {{url: "{street_720p}", stride: 3}}}}}}
  all: {{kind: "fake_stages:Collect", inputs: [src], path: "${{T}}/all.jsonl"}}
  some: {{kind: "fake_stages:Passthrough", inputs: [src], skip_every: 4, check_pixels: false}}
  fewer: {{kind: "fake_stages:Collect", inputs: [some], path: "${{T}}/fewer.jsonl"}}
"""
    (tmp_path / "p.yaml").write_text(text)
    res = run_pipeline(load_pipeline(tmp_path / "p.yaml", (), env={"T": str(tmp_path)}), RunOptions())
    assert res.exit_code == 0, res.error
    streams = res.metrics["streams"]
    sinks = {name: _records(tmp_path / f"{name}.jsonl") for name in ("all", "fewer")}
    decoded = {"dog": range(_frames(dog)), "street": range(0, _frames(street_720p), 3)}  # PyAV's frames
    for sid, indices in decoded.items():
        mine = {name: [r for r in recs if r["stream"] == sid] for name, recs in sinks.items()}
        assert streams[sid]["frames"] == len(indices) == len(mine["all"])  # what the source gave
        # the fewest at a sink: `fewer` lacks the frames whose index is a multiple of 4
        assert streams[sid]["sink_frames"] == len(mine["fewer"]) == len([i for i in indices if i % 4])
        assert streams[sid]["state"] == "ended" and streams[sid]["dropped"] == 0
        # fps and ages recomputed from the sinks' own records (wall time = capture time + age there)
        walls = {name: sorted(r["time"] + r["age"] for r in recs) for name, recs in mine.items()}
        fps = min((len(w) - 1) / (w[-1] - w[0]) for w in walls.values())
        assert abs(streams[sid]["fps"] - fps) <= 0.1 * fps, (sid, streams[sid]["fps"], fps)
        ages = np.array([r["age"] for recs in mine.values() for r in recs])
        for q in (50, 99):
            want = float(np.percentile(ages, q))
            assert abs(streams[sid]["age_s"][f"p{q}"] - want) <= 0.02 + 0.2 * want, (sid, q)


class _Run:
    """`streamyolox run --http 0` in a subprocess; its stderr collected by a thread."""

    def __init__(self, tmp_path: Path, text: str) -> None:
        f = tmp_path / "p.yaml"
        f.write_text(text)
        env = {**os.environ, "PYTHONPATH": f"{HERE}{os.pathsep}{REPO}", "T": str(tmp_path)}
        self.proc = subprocess.Popen([sys.executable, "-m", "streamyolox.cli.run", "run", str(f), "--http", "0",
                                      "--no-dashboard"], env=env, cwd=REPO, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self.reader = threading.Thread(target=lambda: self.lines.extend(iter(self.proc.stderr.readline, "")),
                                       daemon=True)
        self.reader.start()

    def url(self, timeout: float = 60) -> str:
        end = time.monotonic() + timeout
        while time.monotonic() < end and self.proc.poll() is None:
            for line in list(self.lines):
                m = re.search(r"metrics on http://([\d.]+):(\d+)/metrics", line)
                if m:
                    return f"http://127.0.0.1:{m.group(2)}"
            time.sleep(0.05)
        raise AssertionError("no 'metrics on' line:\n" + "".join(self.lines))

    def finish(self, timeout: float = 60) -> int:
        code = self.proc.wait(timeout)
        self.reader.join(5)
        return code


def _get(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.read().decode()
    except urllib.error.HTTPError as exc:  # 503 still carries the document
        return exc.read().decode()


def _scrape(base: str) -> dict[str, dict[tuple, float]]:
    """name -> {labels (sorted items, without pipeline/source): value} of the stream series."""
    out: dict[str, dict[tuple, float]] = {}
    for fam in text_string_to_metric_families(_get(f"{base}/metrics")):
        for s in fam.samples:
            if s.name.startswith("streamyolox_stream_"):
                key = tuple(sorted((k, v) for k, v in s.labels.items() if k not in ("pipeline", "source")))
                out.setdefault(s.name, {})[key] = s.value
    return out


def _count(path: Path, stream: str) -> int:
    return sum(1 for r in _records(path) if r["stream"] == stream) if path.exists() else 0


def test_prometheus_stream_series_and_health_while_running(tmp_path: Path, street_720p: Path) -> None:
    """`short` (30 frames, as fast as it decodes) ends while `live` (the dog clip played in real time, in a
    loop) runs: scraped then, `short` is ended with exactly its frames, `live` up and counting; then SIGINT."""
    dog = street_720p.parent / "dog_pan_480p.mp4"
    text = f"""
metrics: {{interval_s: 0.2}}
stages:
  src: {{kind: decode, streams: {{short: {{url: "{street_720p}", stride: 10}},
                                 live: {{url: "{dog}", realtime: true, loop: true}}}}}}
  out: {{kind: "fake_stages:Collect", inputs: [src], path: "${{T}}/out.jsonl"}}
"""
    run = _Run(tmp_path, text)
    try:
        base = run.url()
        end = time.monotonic() + 60  # a loaded 2-core machine starts slowly
        health: dict = {}
        while time.monotonic() < end:
            health = json.loads(_get(f"{base}/health"))
            if health.get("streams") == {"short": "ended", "live": "up"}:
                break
            time.sleep(0.1)
        assert health.get("streams") == {"short": "ended", "live": "up"}, health
        out = tmp_path / "out.jsonl"
        short = len(range(0, _frames(street_720p), 10))
        while time.monotonic() < end:  # the sink's next report brings the last frames of `short`
            before = _count(out, "live")
            series = _scrape(base)
            after = _count(out, "live")
            if series["streamyolox_stream_frames_total"].get((("stream", "short"),)) == short:
                break
            time.sleep(0.1)
        assert _count(out, "short") == short
        frames = series["streamyolox_stream_frames_total"]
        assert frames[(("stream", "short"),)] == short
        # the board lags the sink by its reports (0.2 s, 30 frames/s): a few frames behind the file at most
        assert before - 20 <= frames[(("stream", "live"),)] <= after
        assert series["streamyolox_stream_up"] == {(("stream", "live"),): 1.0, (("stream", "short"),): 0.0}
        state = series["streamyolox_stream_state"]
        assert state[(("stream", "short"), ("streamyolox_stream_state", "ended"))] == 1.0
        assert state[(("stream", "live"), ("streamyolox_stream_state", "up"))] == 1.0
        assert state[(("stream", "live"), ("streamyolox_stream_state", "ended"))] == 0.0
        assert 5 < series["streamyolox_stream_fps"][(("stream", "live"),)] < 60  # played at 30 fps (or less)
        age = series["streamyolox_stream_frame_age_seconds"]
        live_q = [age[(("quantile", q), ("stream", "live"))] for q in ("0.5", "0.95", "0.99")]
        assert 0 <= live_q[0] <= live_q[1] <= live_q[2] < 5
        assert series["streamyolox_stream_dropped_frames_total"][(("stream", "live"),)] == 0
        assert series["streamyolox_stream_reconnects_total"][(("stream", "live"),)] == 0
    finally:
        run.proc.send_signal(signal.SIGINT)
        code = run.finish(60)
    assert code == 130, "".join(run.lines[-20:])
