"""Test helpers: find a stage process by its title and check where every frame went (restart tests)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import psutil


def stage_process(runner_pid: int, title: str, timeout: float = 60) -> psutil.Process:
    """The runner's child titled `title` (`streamyolox[demo] detect`), waiting for it to be started."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for child in psutil.Process(runner_pid).children(recursive=True):  # forked by the forkserver
            try:
                if child.cmdline()[:1] == [title]:
                    return child
            except (psutil.NoSuchProcess, psutil.ZombieProcess):
                continue
        time.sleep(0.05)
    raise AssertionError(f"no process titled {title!r} under pid {runner_pid}")


def kill_stage(runner_pid: int, title: str) -> int:
    """kill -9 the stage process titled `title`; returns its pid."""
    proc = stage_process(runner_pid, title)
    proc.kill()
    return proc.pid


def lines_of(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def wait_lines(path: Path, n: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while lines_of(path) < n:
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} never reached {n} lines")
        time.sleep(0.02)


def frames_of(path: Path) -> list[int]:
    """Frame numbers of the JSON lines a sink wrote (json or fake_stages:Collect), in file order."""
    return [r["frame"] for r in map(json.loads, path.read_text().splitlines()) if "frame" in r]


def dropped_before(streams: dict[str, Any], stream: str, path: list[str]) -> int:
    """Frames of `stream` dropped on the way to the last stage of `path` (stage ids, source first): at a
    stage of the path, and not only on the way to a stage off it."""
    return sum(d["frames"] for d in streams[stream]["drops"]
               if d["stage"] in path and (d["into"] is None or d["into"] in path))
