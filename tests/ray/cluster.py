"""A real Ray cluster of 2 nodes on this machine (`ray start --head` + `ray start --address`), for the
tests inside the network namespace; everything it started is found by its temp dir and killed after."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

RAY = str(Path(sys.executable).with_name("ray"))
# Node death is noticed after health checks fail: 1 s x 5 here instead of 3 s x 5 (a lost node
# mid-run is one of the tests).
FAST_HEALTH = {"RAY_health_check_period_ms": "1000", "RAY_health_check_timeout_ms": "5000",
               "RAY_health_check_failure_threshold": "5"}


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalCluster:
    """Head + one worker node, 1 CPU each, their own temp dir (sockets there: keep the path short)."""

    def __init__(self) -> None:
        self.temp = tempfile.mkdtemp(prefix="syxray", dir="/tmp")
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.seen: dict[int, psutil.Process] = {}
        self.env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", **FAST_HEALTH}
        self.head_raylets = self._start("--head", f"--port={self.port}", "--include-dashboard=false",
                                        "--disable-usage-stats")
        self.worker_raylets = self._start(f"--address={self.address}") - self.head_raylets

    def _start(self, *args: str) -> set[int]:
        done = subprocess.run([RAY, "start", *args, "--num-cpus=1", f"--temp-dir={self.temp}"], env=self.env,
                              capture_output=True, text=True, timeout=180)
        if done.returncode != 0:
            self.stop()
            raise RuntimeError(f"ray start {' '.join(args)} failed: {done.stderr[-2000:]}")
        return {p.pid for p in self.processes() if "raylet" in p.name()}

    def processes(self) -> list[psutil.Process]:
        """This cluster's live processes: those whose command line names its temp dir or its port (Ray's
        daemons, the client server) and their descendants (workers and agents, titled `ray::...`). Not
        `ray stop`: it kills every Ray process of the machine, a user's own cluster included."""
        found: dict[int, psutil.Process] = {}
        for p in psutil.process_iter(["cmdline"]):
            try:
                line = " ".join(p.info["cmdline"] or ())
                if self.temp in line or self.address in line:
                    for q in [p, *p.children(recursive=True)]:
                        found[q.pid] = q
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        self.seen.update(found)  # a worker whose raylet was killed is an orphan later: still ours
        return [p for p in found.values() if _alive(p)]

    def stop(self) -> list[psutil.Process]:
        """Kill everything it started; returns what was still alive 10 s later (must be nothing)."""
        self.processes()
        procs = [p for p in self.seen.values() if _alive(p)]
        for p in procs:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.kill()
        _, alive = psutil.wait_procs(procs, timeout=10)
        deadline = time.monotonic() + 5
        while self.processes() and time.monotonic() < deadline:
            time.sleep(0.2)
        shutil.rmtree(self.temp, ignore_errors=True)
        return [*alive, *self.processes()]


def _alive(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
