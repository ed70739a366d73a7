"""Files lose nothing unless asked: the live pipelines (`drop_oldest` edges) read a file with back-pressure
and write all of its frames; with `realtime: true` the file plays like a camera, and every frame is either
in the output or counted as dropped (per stream, named in the last lines and in --metrics-json)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import zmq

from streamyolox.graph.liveness import edge_policies
from streamyolox.graph.validate import load_pipeline
from tests.conftest import free_endpoint

REPO = Path(__file__).resolve().parents[2]
FRAMES = 300  # street_pan_720p.mp4
pytestmark = pytest.mark.timeout(300)


def _policies(name: str, *sets: str) -> dict[tuple[str, str], str]:
    return edge_policies(load_pipeline(REPO / "pipelines" / name, sets), announce=False)


def test_drop_oldest_applies_only_behind_live_sources(street_720p: Path, tmp_path: Path) -> None:
    live = _policies("rtsp_to_json.yaml")  # rtsp://
    assert set(live.values()) == {"drop_oldest"}
    assert set(_policies("rtsp_to_json.yaml", f"stages.source.url={street_720p}").values()) == {"block"}
    realtime = _policies("publish_zmq.yaml", f"stages.source.url={street_720p}", "stages.source.realtime=true")
    assert len(realtime) == 4 and set(realtime.values()) == {"drop_oldest"}
    mixed = tmp_path / "mixed.yaml"  # a camera and a file into one stage: only the camera's edges drop
    mixed.write_text(f"""
stages:
  cam: {{kind: decode, url: "rtsp://127.0.0.1:1/x"}}
  clip: {{kind: decode, url: "{street_720p}"}}
  pre: {{kind: letterbox, inputs: [cam, clip], policy: drop_oldest}}
  out: {{kind: json, inputs: [pre], path: "-", policy: drop_oldest}}
""")
    got = edge_policies(load_pipeline(mixed), announce=False)
    assert got == {("cam", "pre"): "drop_oldest", ("clip", "pre"): "block", ("pre", "out"): "drop_oldest"}


def _run(pipeline: str, tmp_path: Path, *sets: str) -> tuple[subprocess.CompletedProcess, dict]:
    cmd = [sys.executable, "-m", "streamyolox", "run", str(REPO / "pipelines" / pipeline), "--no-dashboard",
           "--metrics-json", str(tmp_path / "m.json")]
    for item in sets:
        cmd += ["--set", item]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=280, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    return result, json.loads((tmp_path / "m.json").read_text())["streams"]["source"]


def _last_line_agrees(stderr: str, stream: dict) -> None:
    last = stderr.strip().splitlines()[-1]
    if stream["dropped"]:
        assert f"stream 'source': dropped {stream['dropped']} of {FRAMES} frames (policy drop_oldest on" in last
    else:
        assert last.endswith(f"stream 'source': {FRAMES} frames, none dropped")


@pytest.mark.parametrize("realtime", [False, True])
def test_rtsp_to_json_on_a_file(tmp_path: Path, street_720p: Path, nano_pth: Path, realtime: bool) -> None:
    out = tmp_path / "out.jsonl"
    result, stream = _run("rtsp_to_json.yaml", tmp_path, f"stages.source.url={street_720p}",
                          f"model.weights={nano_pth}", f"stages.json.path={out}",
                          f"stages.source.realtime={str(realtime).lower()}")
    frames = [json.loads(x)["frame"] for x in out.read_text().splitlines()]
    assert frames == sorted(set(frames)) and stream["frames"] == FRAMES
    assert len(frames) + stream["dropped"] == FRAMES
    assert all(d["reason"] == "drop_oldest" for d in stream["drops"])
    notice = "source 'source' is a file: drop_oldest edges block (set realtime: true to play it live)"
    assert result.stderr.count(notice) == (0 if realtime else 1)
    if not realtime:
        assert frames == list(range(FRAMES))
    _last_line_agrees(result.stderr, stream)


def _subscribe(endpoint: str, got: list[bytes], stop: threading.Event) -> None:
    ctx = zmq.Context.instance()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.setsockopt(zmq.RCVHWM, 0)
    sub.connect(endpoint)
    while not stop.is_set():
        if sub.poll(50):
            got.append(sub.recv_multipart()[1])
    sub.close(linger=0)


@pytest.mark.parametrize("realtime", [False, True])
def test_publish_zmq_on_a_file(tmp_path: Path, street_720p: Path, nano_pth: Path, realtime: bool) -> None:
    endpoint = free_endpoint()
    got: list[bytes] = []
    stop = threading.Event()
    listener = threading.Thread(target=_subscribe, args=(endpoint, got, stop), daemon=True)
    listener.start()
    try:
        result, stream = _run("publish_zmq.yaml", tmp_path, f"stages.source.url={street_720p}",
                              f"model.weights={nano_pth}", f"stages.zmq.endpoint={endpoint}",
                              "stages.zmq.wait_subscribers=1", f"stages.source.realtime={str(realtime).lower()}")
    finally:
        stop.set()
        listener.join(5)
    frames = [json.loads(m)["frame"] for m in got]
    assert frames == sorted(set(frames)) and stream["frames"] == FRAMES
    assert len(frames) + stream["dropped"] == FRAMES
    if not realtime:
        assert frames == list(range(FRAMES))
    _last_line_agrees(result.stderr, stream)
    assert os.path.exists(tmp_path / "m.json")
