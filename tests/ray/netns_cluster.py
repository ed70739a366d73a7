"""The ray executor on a real 2-node cluster (run inside a loopback-only network namespace by
test_netns.py): 4 file streams over 2 shards, a raylet killed mid-run, an unplaceable stage."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest
from cluster import LocalCluster, free_port

HERE = Path(__file__).resolve().parent
STREAMS = ("a", "b", "c", "d")
pytestmark = pytest.mark.timeout(240)

PIPE = """
name: shard
stages:
  source: {{kind: decode, streams: {streams}, restart: on-failure{source_extra}}}
  work: {{kind: "fake_stages:Passthrough", inputs: [source], sleep_ms: {sleep}, check_pixels: false,
         restart: on-failure{extra}}}
  sink: {{kind: "ray_stages:StreamLines", inputs: [work], path: "{out}/{{stream}}.jsonl", restart: on-failure}}
"""


def _start(tmp_path: Path, cluster: LocalCluster, clip: Path, sleep_ms: int, extra: str = "",
           shards: int = 2, source_extra: str = "", http: int | None = None) -> subprocess.Popen:
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    streams = "{" + ", ".join(f"{s}: {clip}" for s in STREAMS) + "}"
    (tmp_path / "p.yaml").write_text(PIPE.format(streams=streams, sleep=sleep_ms, out=out, extra=extra, source_extra=source_extra))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), str(HERE.parent / "graph")]),
           "RAY_USAGE_STATS_ENABLED": "0"}
    return subprocess.Popen(
        [sys.executable, "-m", "streamyolox", "run", str(tmp_path / "p.yaml"), "--executor", "ray",
         "--ray-address", cluster.address, "--shards", str(shards), "--no-dashboard",
         "--metrics-json", str(tmp_path / "m.json"), *(["--http", str(http)] if http else [])],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _frames(tmp_path: Path, stream: str) -> list[int]:
    path = tmp_path / "out" / f"{stream}.jsonl"
    if not path.exists():
        return []
    return [json.loads(x)["frame"] for x in path.read_text().splitlines() if x.strip()]


def _finish(proc: subprocess.Popen, timeout: float) -> tuple[int, str]:
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
        raise AssertionError(f"the run did not end in {timeout} s: {err[-3000:]}") from None
    return proc.returncode, err


def _no_stage_left() -> None:
    titles = [p.info["cmdline"][0] for p in psutil.process_iter(["cmdline"])
              if (p.info["cmdline"] or [""])[0].startswith("streamyolox[shard]")]
    assert titles == [], titles


def test_four_streams_two_shards_every_frame_once_on_both_nodes(tmp_path: Path, cluster: LocalCluster,
                                                                clip: tuple[Path, int]) -> None:
    proc = _start(tmp_path, cluster, clip[0], sleep_ms=2)
    code, err = _finish(proc, 180)
    assert code == 0, err[-4000:]
    for s in STREAMS:
        assert _frames(tmp_path, s) == list(range(clip[1])), s  # every frame, once, in order
    summary = json.loads((tmp_path / "m.json").read_text())
    shards = summary["executor"]["shards"]
    assert [s["shard"] for s in shards] == [0, 1]
    assert all(len(s["node_ids"]) == 1 for s in shards)  # a shard on one node (no stage asked for more)
    assert len({s["node_ids"][0] for s in shards}) == 2, shards  # and the two shards on two nodes
    assert {s: summary["streams"][s]["frames"] for s in STREAMS} == dict.fromkeys(STREAMS, clip[1])
    rows = {r["stage"]: r for r in summary["stages"]}
    assert rows["sink@0"]["frames_in"] == rows["sink@1"]["frames_in"] == 2 * clip[1]  # 2 streams each
    cluster.processes()
    _no_stage_left()


def test_stages_on_two_nodes_talk_over_tcp(tmp_path: Path, cluster: LocalCluster, clip: tuple[Path, int]) -> None:
    # 1 CPU per node: the source takes the first node's, so `work` must go to the other node
    proc = _start(tmp_path, cluster, clip[0], sleep_ms=0, shards=1, source_extra=", resources: {num_cpus: 1}",
                  extra=", resources: {num_cpus: 1}")
    code, err = _finish(proc, 180)
    assert code == 0, err[-4000:]
    for s in STREAMS:
        assert _frames(tmp_path, s) == list(range(clip[1])), s
    ex = json.loads((tmp_path / "m.json").read_text())["executor"]
    nodes = {name: p["node_id"] for name, p in ex["processes"].items()}
    assert nodes["source"] != nodes["work"] and nodes["sink"] == nodes["source"], ex  # the sink asks nothing
    kinds = {(e["src"], e["dst"]): (e["kind"], e["address"].rpartition(":")[0]) for e in ex["edges"]}
    assert kinds == {("source", "work"): ("tcp", "tcp://127.0.0.1"), ("work", "sink"): ("tcp", "tcp://127.0.0.1")}
    _no_stage_left()


def test_raylet_killed_mid_run_every_frame_exactly_once(tmp_path: Path, cluster: LocalCluster,
                                                        clip: tuple[Path, int]) -> None:
    port = free_port()
    proc = _start(tmp_path, cluster, clip[0], sleep_ms=40, http=port)
    deadline = time.monotonic() + 120
    while min(len(_frames(tmp_path, s)) for s in STREAMS) < 8:  # both shards are writing
        assert time.monotonic() < deadline and proc.poll() is None, "the run never got going"
        cluster.processes()
        time.sleep(0.1)
    cluster.processes()  # remember the worker node's processes: orphans once its raylet is gone
    before = {s: len(_frames(tmp_path, s)) for s in STREAMS}
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10) as r:  # the driver's view
        health = json.loads(r.read())
    assert len({s["node_ids"][0] for s in health["executor"]["shards"]}) == 2, health
    assert {"source@0", "sink@1"} <= set(health["stages"])
    for pid in cluster.worker_raylets:
        os.kill(pid, signal.SIGKILL)
    code, err = _finish(proc, 180)
    assert code == 0, err[-4000:]
    assert "its Ray actor died" in err and "restarting" in err, err[-3000:]
    for s in STREAMS:
        assert _frames(tmp_path, s) == list(range(clip[1])), s  # exactly once, in order
    assert any(n < clip[1] for n in before.values()), before  # it was killed mid-run
    summary = json.loads((tmp_path / "m.json").read_text())
    restarts = {r["stage"]: r["restarts"] for r in summary["stages"]}
    lost = [k for k in (0, 1) if all(restarts[f"{s}@{k}"] >= 1 for s in ("source", "work", "sink"))]
    kept = [k for k in (0, 1) if all(restarts[f"{s}@{k}"] == 0 for s in ("source", "work", "sink"))]
    assert len(lost) == len(kept) == 1, restarts  # the shard of the lost node restarted, the other one not
    _no_stage_left()


def test_unplaceable_stage_is_one_line_before_anything_starts(tmp_path: Path, cluster: LocalCluster,
                                                              clip: tuple[Path, int]) -> None:
    proc = _start(tmp_path, cluster, clip[0], sleep_ms=0, extra=", resources: {num_gpus: 1}", shards=1)
    code, err = _finish(proc, 120)
    assert code == 2, err[-3000:]
    last = err.strip().splitlines()[-1]
    assert last.startswith("streamyolox: error: stages.work.resources: no node of the cluster has num_gpus: 1 "
                           "free"), err[-3000:]
    assert not (tmp_path / "out" / "a.jsonl").exists()
    assert [p for p in cluster.processes() if "StageHost" in " ".join(p.cmdline())] == []
