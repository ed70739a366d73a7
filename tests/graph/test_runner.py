"""The runner end to end with test stages: EOS, fan-out/fan-in, workers, batching, failures, kill -9,
restart, SIGINT, drop_oldest, tcp edges. Every case: the right exit, no orphan processes, no /dev/shm left."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from streamyolox.graph import shm
from streamyolox.graph.runner import RunOptions, run_pipeline
from streamyolox.graph.validate import load_pipeline

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
pytestmark = pytest.mark.timeout(120)


def _load(tmp_path: Path, text: str, sets: tuple[str, ...] = ()):
    f = tmp_path / "p.yaml"
    f.write_text(text)
    return load_pipeline(f, sets, env={"T": str(tmp_path)})


def _records(path: Path) -> tuple[list[dict], bool]:
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    closed = bool(lines) and lines[-1] == {"closed": True}
    return [r for r in lines if "frame" in r], closed


def _alive(procs: list[psutil.Process]) -> list[int]:
    """Pids still running, except multiprocessing's resource tracker (one per interpreter, not a stage)."""
    out = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE and \
                    "resource_tracker" not in " ".join(p.cmdline()):
                out.append(p.pid)
        except psutil.NoSuchProcess:
            pass
    return out


def _run_here(tmp_path: Path, text: str, **kw):
    """run_pipeline in this process; checks no child survives and no segment is left."""
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    result = run_pipeline(_load(tmp_path, text), RunOptions(**kw))
    time.sleep(0.1)
    assert _alive([p for p in psutil.Process().children(recursive=True) if p.pid not in before]) == []
    assert shm.leftovers(f"syx-{os.getpid()}-") == []
    return result


FAN = """
name: fan
stages:
  src: {kind: "fake_stages:Synthetic", frames: 40, size: 720p, with_raw: true}
  a: {kind: "fake_stages:Passthrough", inputs: [src], queue: 2}
  b: {kind: "fake_stages:Passthrough", inputs: [src], worker: w, threads: 1}
  c: {kind: "fake_stages:Passthrough", inputs: [b], worker: w, batch: 4, wait_ms: 50}
  det: {kind: "fake_stages:Detect", inputs: [c]}
  sink: {kind: "fake_stages:Collect", inputs: [a, det], path: "${T}/out.jsonl"}
"""


def test_fan_out_fan_in_eos(tmp_path: Path) -> None:
    res = _run_here(tmp_path, FAN, metrics_json=str(tmp_path / "m.json"))
    assert res.exit_code == 0 and res.error is None
    recs, closed = _records(tmp_path / "out.jsonl")
    assert closed  # the sink closed after EOS from both of its inputs
    by_path: dict[str, list[int]] = {}
    for r in recs:
        by_path.setdefault("/".join(r["extra"]["path"]), []).append(r["frame"])
        assert r["has_frame"] and r["raw_sum"] == 24.0 * r["frame"]
    assert sorted(by_path["a"]) == list(range(40)) and sorted(by_path["b/c"]) == list(range(40))
    dets = [r["detections"] for r in recs if r["extra"]["path"] == ["b", "c"]]
    assert all(d[0]["class_name"] == "dog" for d in dets)
    assert max(r["extra"].get("batch", 1) for r in recs) > 1  # c batched
    assert {r["extra"]["threads"] for r in recs if r["extra"]["path"] == ["b", "c"]} == {"1"}
    summary = json.loads((tmp_path / "m.json").read_text())
    rows = {r["stage"]: r for r in summary["stages"]}
    assert rows["sink"]["frames_in"] == 80 and rows["a"]["counters"]["seen"] == 40
    assert rows["sink"]["age_s"]["p50"] is not None and summary["exit_code"] == 0


def test_stage_raising_on_frame_n(tmp_path: Path) -> None:
    text = FAN.replace('inputs: [src], queue: 2}', 'inputs: [src], queue: 2, fail_on: 17}')
    res = _run_here(tmp_path, text)
    assert res.exit_code == 1
    assert res.error == "stage 'a' failed on frame 17: ValueError: boom at 17"
    recs, closed = _records(tmp_path / "out.jsonl")
    assert closed  # the sink still flushed and closed
    assert 17 not in [r["frame"] for r in recs if r["extra"]["path"] == ["a"]]


def test_tcp_edge(tmp_path: Path) -> None:
    port = _free_port()
    text = f"""
stages:
  src: {{kind: "fake_stages:Synthetic", frames: 30, size: 720p, with_raw: true}}
  a: {{kind: "fake_stages:Passthrough", inputs: [src], listen: "tcp://127.0.0.1:{port}"}}
  sink: {{kind: "fake_stages:Collect", inputs: [a], path: "${{T}}/out.jsonl"}}
"""
    assert _run_here(tmp_path, text).exit_code == 0
    recs, closed = _records(tmp_path / "out.jsonl")
    assert closed and [r["frame"] for r in recs] == list(range(30))
    assert all(r["raw_sum"] == 24.0 * r["frame"] for r in recs)


def test_drop_oldest_bounds_frame_age(tmp_path: Path) -> None:
    text = """
stages:
  src: {kind: "fake_stages:Synthetic", frames: 120, size: 720p, fps: 100}
  slow: {kind: "fake_stages:Passthrough", inputs: [src], sleep_ms: 40, queue: 2, policy: drop_oldest}
  sink: {kind: "fake_stages:Collect", inputs: [slow], path: "${T}/out.jsonl"}
"""
    res = _run_here(tmp_path, text)
    assert res.exit_code == 0
    recs, closed = _records(tmp_path / "out.jsonl")
    rows = {r["stage"]: r for r in res.metrics["stages"]}
    assert closed and rows["slow"]["dropped"] > 30
    assert len(recs) + rows["slow"]["dropped"] == 120  # every frame is either delivered or counted
    # without dropping, the last frame would be ~120 * 40 ms - 1.2 s = 3.6 s old; bounded by queue * 40 ms
    assert max(r["age"] for r in recs[5:]) < 0.6


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


SLOW = """
stages:
  src: {kind: "fake_stages:Synthetic", frames: 100000, size: 720p, fps: 50}
  a: {kind: "fake_stages:Passthrough", inputs: [src], pid_file: "${T}/a.pid", restart: RESTART}
  sink: {kind: "fake_stages:Collect", inputs: [a], path: "${T}/out.jsonl"}
"""


def _start_cli(tmp_path: Path, text: str, *extra: str) -> subprocess.Popen:
    f = tmp_path / "p.yaml"
    f.write_text(text)
    env = {**os.environ, "PYTHONPATH": f"{HERE}{os.pathsep}{REPO}", "T": str(tmp_path)}
    return subprocess.Popen([sys.executable, "-m", "streamyolox.cli.run", "run", str(f), "--no-dashboard",
                             "--metrics-json", str(tmp_path / "m.json"), *extra],
                            env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_lines(path: Path, n: int, timeout: float = 60) -> None:
    t = time.monotonic() + timeout
    while time.monotonic() < t:
        if path.exists() and len(path.read_text().splitlines()) >= n:
            return
        time.sleep(0.05)
    raise AssertionError(f"{path} never reached {n} lines")


def _finish(proc: subprocess.Popen, timeout: float) -> tuple[int, str, float]:
    """(exit code, stderr, seconds it took); then no descendant may survive nor any segment remain."""
    family = psutil.Process(proc.pid).children(recursive=True)
    t = time.monotonic()
    _, err = proc.communicate(timeout=timeout)
    took = time.monotonic() - t
    time.sleep(0.2)
    assert _alive(family) == []
    assert shm.leftovers(f"syx-{proc.pid}-") == []
    return proc.returncode, err, took


@pytest.mark.parametrize("sig", [signal.SIGINT])  # SIGTERM takes the same handler
def test_signal_mid_run_stops_within_2s(tmp_path: Path, sig: signal.Signals) -> None:
    proc = _start_cli(tmp_path, SLOW.replace("RESTART", "never"))
    _wait_lines(tmp_path / "out.jsonl", 10)
    proc.send_signal(sig)
    code, err, took = _finish(proc, 10)
    assert code == 128 + sig, err
    stopped = [line for line in err.splitlines() if "all stages stopped" in line]
    assert stopped and float(stopped[0].split("stopped ")[1].split(" s")[0]) < 2.0, err
    assert took < 4.0, took  # plus the summary and the interpreter's exit on a loaded machine
    recs, closed = _records(tmp_path / "out.jsonl")
    assert closed and len(recs) >= 10


def test_kill9_stage_fails_pipeline(tmp_path: Path) -> None:
    proc = _start_cli(tmp_path, SLOW.replace("RESTART", "never"))
    _wait_lines(tmp_path / "out.jsonl", 10)
    os.kill(int((tmp_path / "a.pid").read_text().split()[0]), signal.SIGKILL)
    code, err, _ = _finish(proc, 15)
    assert code == 1
    assert err.strip().splitlines()[-1] == "streamyolox: error: stage 'a' died (killed by SIGKILL)"
    assert _records(tmp_path / "out.jsonl")[1]  # the sink closed


def test_kill9_stage_restarts_on_failure(tmp_path: Path) -> None:
    proc = _start_cli(tmp_path, SLOW.replace("RESTART", "on-failure").replace("100000", "400"))
    _wait_lines(tmp_path / "out.jsonl", 10)
    os.kill(int((tmp_path / "a.pid").read_text().split()[0]), signal.SIGKILL)
    code, err, _ = _finish(proc, 60)
    assert code == 0, err
    assert len((tmp_path / "a.pid").read_text().split()) == 2  # opened twice
    recs, closed = _records(tmp_path / "out.jsonl")
    assert closed and recs[-1]["frame"] == 399  # frames after the restart arrive
    rows = {r["stage"]: r for r in json.loads((tmp_path / "m.json").read_text())["stages"]}
    assert rows["a"]["restarts"] == 1


def test_runner_killed_leaves_no_processes_nor_segments(tmp_path: Path) -> None:
    """kill -9 of `streamyolox run` itself: its stage processes die with it and unlink their segments."""
    proc = _start_cli(tmp_path, SLOW.replace("RESTART", "never"))
    _wait_lines(tmp_path / "out.jsonl", 10)
    family = psutil.Process(proc.pid).children(recursive=True)
    assert shm.leftovers(f"syx-{proc.pid}-") != []  # the run is using shared memory
    proc.kill()
    proc.wait(timeout=10)  # not communicate(): the stage processes hold the pipes until they are gone
    t0 = time.monotonic()
    while time.monotonic() < t0 + 30 and (_alive(family) or shm.leftovers(f"syx-{proc.pid}-")):
        time.sleep(0.1)
    proc.stdout.close()  # type: ignore[union-attr]
    proc.stderr.close()  # type: ignore[union-attr]
    assert _alive(family) == [], f"stage processes still alive {time.monotonic() - t0:.1f} s after the runner died"
    assert shm.leftovers(f"syx-{proc.pid}-") == []
