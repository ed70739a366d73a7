"""A file stream POSTed to a source whose streams are all live (a real RTSP camera): its edges keep their
`drop_oldest` policy (the camera stays fresh), yet no frame of the file is lost: an edge drops only frames
that are not a file's (`extra["live"] = False` marks those, graph/inbox.py)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.sources.test_live_pipeline import REPO, SOURCES_DIR, lines, stage_metrics, wait_for, write
from tests.sources.test_streams_pipeline import frames_by_stream

PORT = re.compile(r"metrics on http://127\.0\.0\.1:(\d+)/metrics")
pytestmark = [pytest.mark.rtsp, pytest.mark.timeout(240)]


def post(base: str, body: dict) -> int:
    req = urllib.request.Request(base + "/streams", data=json.dumps(body).encode(), method="POST")
    with urllib.request.urlopen(req, timeout=30) as res:
        return res.status


def test_a_file_added_to_a_live_source_loses_no_frame_on_drop_oldest_edges(rtsp_server, tmp_path: Path) -> None:
    from tests.conftest import shared_file

    dog = shared_file("media", "dog_pan_480p.mp4")  # 150 frames
    ages, log = tmp_path / "ages.jsonl", tmp_path / "run.log"
    pipeline = write(tmp_path, f"""
stages:
  source: {{kind: decode, streams: {{cam: {{url: "{rtsp_server.url}", reconnect: false}}}}}}
  slow: {{kind: "live_stages:Sleep", inputs: [source], sleep_ms: 40, queue: 2, policy: drop_oldest}}
  sink: {{kind: "live_stages:AgeSink", inputs: [slow], path: "{ages}", queue: 2, policy: drop_oldest}}
""")
    env = {**os.environ, "PYTHONPATH": f"{SOURCES_DIR}{os.pathsep}{REPO}"}
    cmd = [sys.executable, "-m", "streamyolox", "run", str(pipeline), "--no-dashboard", "--http", "0",
           "--metrics-json", str(tmp_path / "m.json")]
    with open(log, "w", encoding="utf-8") as f:
        proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=f, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: PORT.search(log.read_text()), 90, "the HTTP port in the log")
        port = PORT.search(log.read_text()).group(1)  # type: ignore[union-attr]
        wait_for(lambda: len(frames_by_stream(ages).get("cam", [])) >= 10, 90, "camera frames at the sink")
        assert post(f"http://127.0.0.1:{port}", {"id": "file", "url": str(dog)}) == 201
        code = proc.wait(200)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            proc.wait(30)
    text = log.read_text()
    assert code == 0, text[-3000:]
    assert "drop_oldest edges block" not in text  # a source of cameras: the edges drop
    got = frames_by_stream(ages)
    assert got["file"] == list(range(150)), "a frame of the file was dropped by an edge"
    cam = got["cam"]
    assert cam == sorted(set(cam)) and cam[-1] >= 290  # in order, the newest frames win
    m = stage_metrics(tmp_path)
    edge_dropped = m["slow"]["dropped"] + m["sink"]["dropped"]
    assert edge_dropped > 0, "the camera's frames were never dropped on an edge: the policy did not apply"
    summary = json.loads((tmp_path / "m.json").read_text())
    assert summary["streams"]["file"]["dropped"] == 0
    assert len(cam) + edge_dropped + m["source"]["counters"].get("source_dropped", 0) == 300
    # the camera stayed fresh beside the file (measured 0.23 s at most here; blocking would be seconds)
    assert max(r["age"] for r in lines(ages) if r["stream"] == "cam") < 2.0
