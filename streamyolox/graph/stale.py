"""What runners that died (kill -9, the OOM killer) left behind, removed by the next run.

A runner unlinks its shared-memory segments and its run folder in every exit path it lives through; a
killed one cannot. Its names carry its pid (segments `/dev/shm/syx-{pid}-...`, run folders
`$TMPDIR/syx-{pid}-...`), so at start each run removes those whose owner is gone. Pids are reused, so a
live process with that pid owns the leftovers only if it started before they were made (`psutil`'s
process start time against the file's times): a newer process with a reused pid is not their owner.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import psutil

from streamyolox.graph import shm

OWNED = re.compile(r"^syx-(\d+)-")
# psutil's start time is rebuilt from the boot time (whole seconds) plus clock ticks: allow for that, so a
# live runner is never taken for a newer process (a reused pid within this slack is swept by a later run)
CLOCK_SLACK_S = 2.0


@dataclass
class Swept:
    segments: int = 0
    bytes: int = 0
    folders: int = 0
    owners: tuple[int, ...] = ()


def owner_alive(pid: int, made: float) -> bool:
    """Whether process `pid` exists and is older than a file made at `made` (epoch seconds)."""
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return proc.create_time() <= made + CLOCK_SLACK_S
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:  # someone else's process: leave its files alone
        return True


def _stale(path: Path, alive: dict[tuple[int, float], bool]) -> tuple[int, os.stat_result] | None:
    """(owner pid, stat) when `path` is a leftover of a runner that is gone; None otherwise."""
    match = OWNED.match(path.name)
    if match is None or int(match.group(1)) == os.getpid():
        return None
    try:
        st = path.lstat()
    except FileNotFoundError:
        return None
    pid = int(match.group(1))
    made = min(st.st_mtime, st.st_ctime)  # both only move later after creation: the safe direction
    key = (pid, round(made))
    if key not in alive:
        alive[key] = owner_alive(pid, made)
    return None if alive[key] else (pid, st)


def sweep_dead_runners(shm_dir: Path = shm.SHM_DIR, tmp_dir: Path | None = None) -> Swept:
    """Remove the segments and run folders of runners that are gone; returns what was removed."""
    tmp_dir = Path(tmp_dir or tempfile.gettempdir())
    alive: dict[tuple[int, float], bool] = {}
    out, owners = Swept(), set()
    for path in sorted(shm_dir.glob("syx-*")):
        found = _stale(path, alive)
        if found is not None and path.is_file():
            path.unlink(missing_ok=True)
            out.segments += 1
            out.bytes += found[1].st_size
            owners.add(found[0])
    for path in sorted(tmp_dir.glob("syx-*")):
        found = _stale(path, alive)
        if found is not None and path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
            out.folders += 1
            owners.add(found[0])
    out.owners = tuple(sorted(owners))
    return out
