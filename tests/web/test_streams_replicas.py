"""Streams API with `processes: 2`: a stream is added to the replica holding the fewest, removed from the
one holding it, and added again when that replica is killed and restarts. Which replica reads which stream
is seen from outside: each stream is its own copy of the clip, and the replica's process has it open."""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import psutil
import pytest

from tests.conftest import shared_file
from tests.web.conftest import Live, start_live, wait_for

pytestmark = pytest.mark.timeout(300)


def _replicas(live: Live) -> dict[str, psutil.Process]:
    """cams#0 / cams#1 -> its process (named `streamyolox[rep] cams#k`)."""
    out = {}
    for p in psutil.Process(live.proc.pid).children(recursive=True):
        try:
            title = " ".join(p.cmdline())
        except psutil.NoSuchProcess:
            continue
        if title.startswith("streamyolox[rep] cams#"):
            out[title.split()[-1]] = p
    return out


def _reading(live: Live, clips: Path) -> dict[str, set[str]]:
    """Replica -> the streams whose clip copy its process has open."""
    out: dict[str, set[str]] = {}
    for name, p in _replicas(live).items():
        try:
            files = {Path(f.path) for f in p.open_files()}
        except psutil.NoSuchProcess:
            files = set()
        out[name] = {f.stem for f in files if f.parent == clips}
    return out


def test_streams_go_to_the_least_loaded_replica_and_survive_its_restart(tmp_path: Path, nano_pth: Path) -> None:
    clips = tmp_path / "clips"
    clips.mkdir()
    dog = shared_file("media", "dog_pan_480p.mp4")
    for name in ("a", "b", "c", "n1", "n2"):
        shutil.copy(dog, clips / f"{name}.mp4")
    streams = {name: clips / f"{name}.mp4" for name in ("a", "b", "c")}
    with start_live(tmp_path, nano_pth, streams, extra="    processes: 2\n    restart: on-failure",
                    name="rep") as live:
        before = wait_for("both replicas reading", lambda: (r := _reading(live, clips)) and
                          sum(map(len, r.values())) == 3 and r, 30)
        fewest = min(before, key=lambda k: (len(before[k]), k))
        status, row = live.call("POST", "/streams", {"id": "n1", "url": str(clips / "n1.mp4"), "loop": True,
                                                     "realtime": True})
        assert status == 201, row
        wait_for("n1 read by the replica that had fewest", lambda: "n1" in _reading(live, clips)[fewest], 30)
        assert all("n1" not in v for k, v in _reading(live, clips).items() if k != fewest)

        wait_for("frames of n1", lambda: len(live.records("n1")) >= 3, 60)
        old = _replicas(live)[fewest]
        os.kill(old.pid, signal.SIGKILL)
        wait_for("the replica back, reading n1 again", lambda: (p := _replicas(live).get(fewest)) is not None
                 and p.pid != old.pid and "n1" in _reading(live, clips)[fewest], 60)
        seen = len(live.records("n1"))
        wait_for("new frames of n1 after the restart", lambda: len(live.records("n1")) > seen + 2, 60)
        assert live.rows()["n1"]["state"] == "up"

        # n2 goes to whichever has fewest now; n1 is removed from the replica that holds it
        assert live.call("POST", "/streams", {"id": "n2", "url": str(clips / "n2.mp4"), "loop": True})[0] == 201
        assert live.call("DELETE", "/streams/n1")[0] == 204
        wait_for("n1 closed", lambda: all("n1" not in v for v in _reading(live, clips).values()), 30)
        reading = _reading(live, clips)
        assert sorted(s for v in reading.values() for s in v) == ["a", "b", "c", "n2"]
