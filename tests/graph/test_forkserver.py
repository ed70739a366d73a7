"""Stage processes forked from the run's forkserver: who their parent is, what they have loaded, and that
nothing of it outlives the run (the kill -9 and signal cases are in test_runner.py and test_leftovers.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from killing import stage_process, wait_lines

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
PIPE = """
name: fs
stages:
  src: {kind: "fake_stages:Synthetic", frames: 100000, size: 720p, fps: 50}
  a: {kind: "fake_stages:Passthrough", inputs: [src]}
  sink: {kind: "fake_stages:Collect", inputs: [a], path: "${T}/out.jsonl"}
"""


def _start(tmp_path: Path, **env: str) -> subprocess.Popen:
    f = tmp_path / "p.yaml"
    f.write_text(PIPE)
    full = {**os.environ, "PYTHONPATH": f"{HERE}{os.pathsep}{REPO}", "T": str(tmp_path), **env}
    return subprocess.Popen([sys.executable, "-m", "streamyolox", "run", str(f), "--no-dashboard"], env=full,
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _maps(pid: int) -> str:
    return Path(f"/proc/{pid}/maps").read_text()


@pytest.mark.parametrize("method", ["forkserver", "spawn"])
def test_stages_forked_with_the_preload_and_nothing_left(tmp_path: Path, method: str) -> None:
    proc = _start(tmp_path, STREAMYOLOX_START_METHOD=method)
    try:
        wait_lines(tmp_path / "out.jsonl", 5)
        stage = stage_process(proc.pid, "streamyolox[fs] a")
        parent = stage.parent()
        assert parent is not None
        family = psutil.Process(proc.pid).children(recursive=True)
        if method == "forkserver":
            # forked by a server that the runner started, which had onnxruntime imported: a passthrough
            # stage that never imports it has its library mapped all the same
            assert parent.pid != proc.pid and parent.ppid() == proc.pid
            assert "multiprocessing.forkserver" in " ".join(parent.cmdline())
            assert "onnxruntime" in _maps(stage.pid)
            # numba is imported by the first numba call (streamyolox/ops/lazy_jit.py), not by the preload:
            # its ~80 MB would otherwise sit in every forked stage
            assert "llvmlite" not in _maps(stage.pid) and "llvmlite" not in _maps(parent.pid)
            # the runner validates the pipeline without loading cv2 (~37 MB it never uses)
            assert "cv2" not in _maps(proc.pid)
        else:
            assert parent.pid == proc.pid and "onnxruntime" not in _maps(stage.pid)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 128 + signal.SIGINT, err[-2000:]
    time.sleep(0.2)
    alive = [p.pid for p in family if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert alive == []  # the stages and the forkserver are gone with the run


def _marked(mark: str) -> list[int]:
    """Live processes whose environment carries `mark` (what a run started inherits it)."""
    found = []
    for p in psutil.process_iter():
        try:
            if p.environ().get("SYX_TEST_MARK") == mark and p.status() != psutil.STATUS_ZOMBIE:
                found.append(p.pid)
        except (psutil.Error, OSError):
            continue
    return found


def test_a_spec_error_leaves_no_forkserver(tmp_path: Path) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(PIPE.replace("inputs: [src]}", "inputs: [src], no_such_option: 1}"))
    mark = f"{os.getpid()}-{time.monotonic_ns()}"
    done = subprocess.run([sys.executable, "-m", "streamyolox", "run", str(f)], capture_output=True, text=True,
                          cwd=REPO, env={**os.environ, "PYTHONPATH": f"{HERE}{os.pathsep}{REPO}",
                                         "T": str(tmp_path), "SYX_TEST_MARK": mark}, timeout=60)
    assert done.returncode == 2 and "no_such_option" in done.stderr, done.stderr[-1000:]
    time.sleep(0.2)
    assert _marked(mark) == []  # the server started before validation is stopped, not orphaned
