"""`POST /streams` on a sharded pipeline (run inside a loopback-only network namespace by test_netns.py): a
stream added without naming a shard goes to the shard with the fewest live streams (ties: the lowest
index), its frames reach its sink on that shard's node, `/streams` shows each stream's shard and node, and
DELETE finds the shard that holds the stream."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import psutil
import pytest
from cluster import LocalCluster, free_port
from netns_cluster import HERE, _frames, _no_stage_left

pytestmark = pytest.mark.timeout(300)
LOOPING = ("a", "b", "c", "e")  # dealt round robin: shard 0 gets a, c, e; shard 1 gets b and d
PIPE = """
name: shard
stages:
  source: {{kind: decode, streams: {streams}}}
  work: {{kind: "fake_stages:Passthrough", inputs: [source], sleep_ms: 0, check_pixels: false}}
  sink: {{kind: "ray_stages:StreamLines", inputs: [work], path: "{out}/{{stream}}.jsonl"}}
"""


def _looping(clip: Path) -> dict[str, Any]:
    return {"url": str(clip), "loop": True, "realtime": True, "max_fps": 5}


def _call(port: int, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            raw = r.read()
            return r.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def _rows(port: int) -> dict[str, dict[str, Any]]:
    code, rows = _call(port, "GET", "/streams")
    assert code == 200, rows
    return {r["id"]: r for r in rows}


def _all_at_sinks(rows: dict[str, dict[str, Any]], streams: str) -> dict[str, dict[str, Any]] | None:
    return rows if all(rows.get(s, {}).get("frames") for s in streams) else None


def _sink_pids() -> dict[int, int]:
    """Shard -> the pid of its sink's process (titled `streamyolox[shard] sink@K`)."""
    out = {}
    for p in psutil.process_iter(["cmdline"]):
        title = (p.info["cmdline"] or [""])[0]
        if title.startswith("streamyolox[shard] sink@"):
            out[int(title.rpartition("@")[2])] = p.pid
    return out


def _lines(tmp_path: Path, stream: str) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (tmp_path / "out" / f"{stream}.jsonl").read_text().splitlines() if x.strip()]


def _wait(what: str, cond: Any, proc: subprocess.Popen, log: Path, timeout: float = 120) -> Any:
    deadline, value = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the run ended while waiting for {what}: {log.read_text()[-3000:]}"
        value = cond()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}; last: {value}")


def _add(port: int, stream: str, clip: Path) -> dict[str, Any]:
    code, row = _call(port, "POST", "/streams", {"id": stream, **_looping(clip)})
    assert code == 201, row
    return row  # type: ignore[no-any-return]


def test_post_goes_to_the_least_loaded_shard_and_delete_finds_it(tmp_path: Path, cluster: LocalCluster,
                                                                 clip: tuple[Path, int]) -> None:
    out = tmp_path / "out"
    out.mkdir()
    streams = {s: _looping(clip[0]) for s in LOOPING} | {"d": str(clip[0])}  # d: a file that ends
    ordered = {k: streams[k] for k in ("a", "b", "c", "d", "e")}
    (tmp_path / "p.yaml").write_text(PIPE.format(streams=json.dumps(ordered), out=out))
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), str(HERE.parent / "graph")]),
           "RAY_USAGE_STATS_ENABLED": "0"}
    log = tmp_path / "run.log"  # a file, not a pipe: nobody reads a pipe while the test polls
    with open(log, "w", encoding="utf-8") as f:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamyolox", "run", str(tmp_path / "p.yaml"), "--executor", "ray",
             "--ray-address", cluster.address, "--shards", "2", "--no-dashboard", "--http", str(port)],
            env=env, stdout=subprocess.DEVNULL, stderr=f, text=True)
    try:
        _check_placement(port, proc, log, tmp_path, clip)
    finally:
        if proc.poll() is None:  # also when an assertion failed: the run ends before the cluster goes
            proc.send_signal(signal.SIGINT)
        try:
            proc.wait(90)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == 128 + signal.SIGINT, log.read_text()[-4000:]
    cluster.processes()
    _no_stage_left()


def _check_placement(port: int, proc: subprocess.Popen, log: Path, tmp_path: Path, clip: tuple[Path, int]) -> None:
    # d has ended (all its frames written): shard 1 holds one live stream (b), shard 0 three
    _wait("d to end", lambda: len(_frames(tmp_path, "d")) == clip[1] and _rows(port).get("d", {}).get("state")
          == "ended", proc, log)
    rows = _rows(port)
    assert {s: rows[s]["shard"] for s in "abcde"} == {"a": 0, "b": 1, "c": 0, "d": 1, "e": 0}, rows
    node_of = {rows[s]["shard"]: rows[s]["node_id"] for s in "ab"}
    assert node_of[0] != node_of[1], rows  # the two shards on the two nodes
    # the ended d does not count: x and y both go to shard 1 (1 and 2 live streams < 3)
    placed = {s: _add(port, s, clip[0]) for s in ("x", "y")}
    assert {s: (r["source"], r["shard"], r["node_id"]) for s, r in placed.items()} == \
        dict.fromkeys(("x", "y"), ("source@1", 1, node_of[1])), placed
    assert _add(port, "z", clip[0])["shard"] == 0  # 3 and 3: the lowest shard index
    for s in ("x", "y", "z"):  # their frames reach their sinks
        _wait(f"frames of {s}", lambda s=s: len(_frames(tmp_path, s)) >= 3, proc, log)
    sinks = _sink_pids()  # written by the sink process of the shard they were placed on
    assert {s: {r["pid"] for r in _lines(tmp_path, s)} for s in "xyz"} == \
        {"x": {sinks[1]}, "y": {sinks[1]}, "z": {sinks[0]}}, sinks
    rows = _wait("x, y, z at the sinks in /streams (reports come each interval)",
                 lambda: _all_at_sinks(_rows(port), "xyz"), proc, log)
    assert {s: (rows[s]["shard"], rows[s]["node_id"]) for s in "xyz"} == \
        {"x": (1, node_of[1]), "y": (1, node_of[1]), "z": (0, node_of[0])}, rows
    # DELETE finds the shard: x on shard 1, z on shard 0; then shard 1 is the least loaded again
    assert _call(port, "DELETE", "/streams/x")[0] == 204
    assert _call(port, "DELETE", "/streams/z")[0] == 204
    _wait("x and z listed as removed (the sources report each interval)",
          lambda: all(_rows(port)[s]["state"] == "removed" for s in "xz"), proc, log)
    assert _call(port, "DELETE", "/streams/x")[0] == 404
    assert _add(port, "w", clip[0])["shard"] == 1  # shard 1: b, y (2) < shard 0: a, c, e (3)
    code, doc = _call(port, "POST", "/streams", {"id": "y", **_looping(clip[0])})
    assert code == 409 and "exists" in doc["error"], doc  # an id held by another shard is taken
