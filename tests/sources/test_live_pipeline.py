"""Live sources through the runtime (`streamyolox run`): bounded frame age under a slow stage with
`drop_oldest`, a reconnect visible in the metrics JSON, and the shipped `rtsp_to_json.yaml`."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

SOURCES_DIR = Path(__file__).resolve().parent  # live_stages.py: the test stages, by import path
REPO = SOURCES_DIR.parents[1]

pytestmark = [pytest.mark.rtsp, pytest.mark.timeout(180)]


def start_run(pipeline: Path, tmp_path: Path, *sets: str) -> subprocess.Popen[str]:
    """`streamyolox run` in a subprocess, with the test stages importable and metrics to m.json."""
    env = {**os.environ, "PYTHONPATH": f"{SOURCES_DIR}{os.pathsep}{REPO}"}
    args = [sys.executable, "-m", "streamyolox", "run", str(pipeline), "--no-dashboard",
            "--metrics-json", str(tmp_path / "m.json"), *[a for s in sets for a in ("--set", s)]]
    return subprocess.Popen(args, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def lines(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def stage_metrics(tmp_path: Path) -> dict[str, dict]:
    return {row["stage"]: row for row in json.loads((tmp_path / "m.json").read_text())["stages"]}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    return path


def test_slow_stage_keeps_frame_age_bounded(rtsp_server, tmp_path: Path) -> None:
    pipeline = write(tmp_path, f"""
stages:
  source: {{kind: decode, url: "{rtsp_server.url}", reconnect: false}}
  slow: {{kind: "live_stages:Sleep", inputs: [source], sleep_ms: 100, queue: 2, policy: drop_oldest}}
  sink: {{kind: "live_stages:AgeSink", inputs: [slow], path: "{tmp_path / 'ages.jsonl'}", policy: drop_oldest}}
""")
    proc = start_run(pipeline, tmp_path)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    ages = lines(tmp_path / "ages.jsonl")
    m = stage_metrics(tmp_path)
    # A 30 fps camera into a 10 fps stage: 2 of 3 frames must go, and are counted, never queued up.
    assert m["source"]["frames_out"] == 300
    assert m["slow"]["dropped"] + m["sink"]["dropped"] + len(ages) == 300
    assert 60 <= len(ages) <= 120
    # Blocking would make the last frame ~20 s old; drop_oldest keeps it to a few stage periods.
    assert max(a["age"] for a in ages[3:]) < 0.6, [round(a["age"], 2) for a in ages]
    frames = [a["frame"] for a in ages]
    assert frames == sorted(frames) and frames[-1] >= 290  # the newest frames win


def test_reconnect_through_the_runtime(rtsp_server, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    pipeline = write(tmp_path, f"""
stages:
  source: {{kind: decode, url: "{rtsp_server.url}", stall_timeout_s: 2, read_timeout_s: 2,
            backoff_initial_s: 0.2, backoff_max_s: 1, max_retries: 20}}
  json: {{kind: json, inputs: [source], path: "{out}"}}
""")
    proc = start_run(pipeline, tmp_path)
    try:
        wait_for(lambda: len(lines(out)) >= 60, 60, "60 frames before the outage")
        rtsp_server.kill()
        outage = 3.0
        threading.Timer(outage, rtsp_server.start).start()
        killed_at = len(lines(out))
        wait_for(lambda: len(lines(out)) >= killed_at + 60, 60, "60 frames after the restart")
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGINT, err
    counters = stage_metrics(tmp_path)["source"]["counters"]
    assert counters["reconnects"] == 1, counters
    assert counters["reconnect_attempts"] >= 1
    assert counters["last_reconnect_gap_s"] >= outage - 0.5
    assert "reconnected after" in err
    records = lines(out)
    assert [r["frame"] for r in records] == list(range(len(records))), "no frame lost between stages"
    times = [r["time"] for r in records]
    gap = max(b - a for a, b in itertools.pairwise(times))
    assert gap == pytest.approx(counters["last_reconnect_gap_s"], abs=0.5)


def test_shipped_rtsp_to_json(rtsp_server, tmp_path: Path, nano_pth: Path) -> None:
    out = tmp_path / "dets.jsonl"
    proc = start_run(REPO / "pipelines" / "rtsp_to_json.yaml", tmp_path,
                     f"stages.source.url={rtsp_server.url}", "stages.source.reconnect=false",
                     f"model.weights={nano_pth}", f"stages.json.path={out}")
    _, err = proc.communicate(timeout=150)
    assert proc.returncode == 0, err
    records = lines(out)
    m = stage_metrics(tmp_path)
    assert m["source"]["frames_out"] == 300
    dropped = sum(row["dropped"] for row in m.values())
    assert len(records) + dropped == 300 and len(records) >= 30
    assert {r["stream"] for r in records} == {"source"}
    assert all((r["width"], r["height"]) == (1280, 720) for r in records)
    people = [d for r in records for d in r["detections"] if d["class_name"] == "person"]
    assert len(people) >= len(records), "a busy street: at least a person per frame on average"


def test_shipped_rtsp_to_json_survives_a_frozen_camera(rtsp_server, tmp_path: Path, nano_pth: Path) -> None:
    """The shipped settings (stall_timeout_s 5, retry forever) against a server frozen (SIGSTOP) for 10 s:
    one stall warning, one reconnect, detections again after the thaw."""
    out = tmp_path / "dets.jsonl"
    proc = start_run(REPO / "pipelines" / "rtsp_to_json.yaml", tmp_path, f"stages.source.url={rtsp_server.url}",
                     f"model.weights={nano_pth}", f"stages.json.path={out}")
    try:
        wait_for(lambda: len(lines(out)) >= 10, 90, "10 frames before the freeze")
        rtsp_server.pause(True)
        time.sleep(10)
        rtsp_server.pause(False)
        thawed = time.time()
        wait_for(lambda: any(r["time"] > thawed for r in lines(out)), 60, "a frame from after the thaw")
    finally:
        rtsp_server.pause(False)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGINT, err
    counters = stage_metrics(tmp_path)["source"]["counters"]
    assert counters["stalls"] == 1 and counters["reconnects"] == 1, counters
    warnings = [x for x in err.splitlines() if "WARNING" in x and "no frame for stall_timeout_s=5" in x]
    assert len(warnings) == 1, err
