"""Nothing left behind: what a runner killed with -9 leaves (segments, run folder) is removed by the next
run, never what a live runner owns (pid reuse included); SIGHUP stops a run cleanly with its summary."""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import psutil
import pytest
from killing import wait_lines
from test_runner import SLOW, _finish, _run_here, _start_cli

from streamyolox.graph import shm
from streamyolox.graph.stale import sweep_dead_runners

pytestmark = pytest.mark.timeout(120)
SHORT = """
stages:
  src: {kind: "fake_stages:Synthetic", frames: 5}
  sink: {kind: "fake_stages:Collect", inputs: [src], path: "${T}/short.jsonl"}
"""


def _leftovers_of(pid: int) -> tuple[list[str], list[Path]]:
    return shm.leftovers(f"syx-{pid}-"), sorted(Path(tempfile.gettempdir()).glob(f"syx-{pid}-*"))


def _semaphores() -> set[str]:
    """multiprocessing's named semaphores (`sem.mp-*`): nothing of a run's may outlive its processes."""
    return {p.name for p in shm.SHM_DIR.glob("sem.*")}


def test_next_run_sweeps_what_a_killed_runner_left(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    semaphores = _semaphores()
    proc = _start_cli(tmp_path, SLOW.replace("RESTART", "never"))
    wait_lines(tmp_path / "out.jsonl", 10)
    stages = psutil.Process(proc.pid).children(recursive=True)  # and the forkserver they were forked from
    for p in stages:  # frozen, they cannot clean up after the runner: the worst case, every time
        p.suspend()
    proc.kill()
    proc.wait(10)
    for p in stages:
        p.kill()
    psutil.wait_procs(stages, timeout=10)
    proc.stdout.close()  # type: ignore[union-attr]
    proc.stderr.close()  # type: ignore[union-attr]
    segments, folders = _leftovers_of(proc.pid)
    assert _semaphores() - semaphores == set()  # none named at all: no later run could tell whose they were
    # the leak the next run must clean: the run folder and multiprocessing's (the forkserver's socket)
    assert segments and len(folders) == 2, folders
    size = sum((shm.SHM_DIR / s).stat().st_size for s in segments)
    caplog.set_level("WARNING", logger="streamyolox.run")
    assert _run_here(tmp_path, SHORT).exit_code == 0
    assert _leftovers_of(proc.pid) == ([], [])
    assert f"removed {len(segments)} shared-memory segments ({size / 1e6:.1f} MB) and {len(folders)} run folders left " \
           f"by runner(s) that died (pid {proc.pid})" in caplog.text


def test_sweep_keeps_live_owners_and_sees_reused_pids(tmp_path: Path) -> None:
    shm_dir, tmp_dir = tmp_path / "shm", tmp_path / "tmp"
    shm_dir.mkdir()
    tmp_dir.mkdir()
    dead = subprocess.Popen(["true"])
    dead.wait()
    live = subprocess.Popen(["sleep", "60"])
    try:
        time.sleep(0.1)
        names = {
            f"syx-{dead.pid}-a-e0": False,  # owner gone: swept
            f"syx-{live.pid}-b-e0": True,  # owner alive and older than the segment: kept
            f"syx-{live.pid}-c-e0": False,  # made an hour before the live process started: a reused pid
            f"syx-{os.getpid()}-d-e0": True,  # ours
            "syx-test-1-e0": True,  # not a runner's name
        }
        for name in names:
            (shm_dir / name).write_bytes(b"x" * 100)
        hour_ago = time.time() - 3600
        os.utime(shm_dir / f"syx-{live.pid}-c-e0", (hour_ago, hour_ago))
        (tmp_dir / f"syx-{dead.pid}-abc").mkdir()
        (tmp_dir / f"syx-{dead.pid}-abc" / "control").write_text("")
        (tmp_dir / f"syx-{live.pid}-def").mkdir()
        swept = sweep_dead_runners(shm_dir, tmp_dir)
        assert sorted(p.name for p in shm_dir.iterdir()) == sorted(n for n, keep in names.items() if keep)
        assert [p.name for p in tmp_dir.iterdir()] == [f"syx-{live.pid}-def"]
        assert (swept.segments, swept.bytes, swept.folders) == (2, 200, 1)
        assert swept.owners == tuple(sorted({dead.pid, live.pid}))
    finally:
        live.kill()
        live.wait()


def test_sighup_stops_cleanly_with_the_summary(tmp_path: Path) -> None:
    proc = _start_cli(tmp_path, SLOW.replace("RESTART", "never"))
    wait_lines(tmp_path / "out.jsonl", 10)
    proc.send_signal(signal.SIGHUP)
    code, err, took = _finish(proc, 10)
    assert took < 4.0  # the summary and the interpreter's exit included, on a loaded machine
    assert code == 128 + signal.SIGHUP, err[-2000:]
    assert "SIGHUP: stopping (sources stop, sinks flush)" in err
    stopped = [line for line in err.splitlines() if "all stages stopped" in line]
    assert stopped and float(stopped[0].split("stopped ")[1].split(" s")[0]) < 2.0, err
    assert f"exit {128 + signal.SIGHUP}" in err  # the summary table's title
    assert "stream 'syn':" in err.strip().splitlines()[-1]  # the last line: where the frames went
    lines = (tmp_path / "out.jsonl").read_text().splitlines()
    assert lines[-1] == '{"closed": true}'  # the sink flushed and closed
