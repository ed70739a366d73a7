"""Live adds and removes survive a restart of the source: a stream removed by DELETE stays removed and one
added by POST is read again when the source process is killed (-9) and restarted (`restart: on-failure`).
Checked from outside: GET /streams, the JSON lines of every stream, and which files the source has open.
Files behind a slow stage: the run lasts long enough, and a restarted file source resumes exactly."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
import pytest

from streamyolox.graph import shm
from tests.web.conftest import REPO, TOKEN, Live, wait_for

pytestmark = pytest.mark.timeout(300)

SOURCES = REPO / "tests" / "sources"  # live_stages.py: a slow stage, by import path
PIPE = """
name: rs
stages:
  cams:
    kind: decode
    restart: on-failure
    threads: 1
    streams: {{a: "{a}", b: "{b}"}}
  slow: {{kind: "live_stages:Sleep", inputs: [cams], sleep_ms: 50}}
  json: {{kind: json, inputs: [slow], path: "{out}"}}
"""


@contextmanager
def running(tmp: Path, clips: dict[str, Path]) -> Iterator[Live]:
    """`streamyolox run` (files -> a slow stage -> json) with `--http 0`; the body waits for its end (a
    SIGINT if it did not); nothing may be left behind."""
    out, log, pipe = tmp / "out.jsonl", tmp / "run.log", tmp / "p.yaml"
    pipe.write_text(PIPE.format(a=clips["a"], b=clips["b"], out=out))
    cmd = [sys.executable, "-m", "streamyolox", "run", str(pipe), "--no-dashboard", "--http", "0",
           "--http-token", TOKEN]
    env = {**os.environ, "PYTHONPATH": f"{SOURCES}{os.pathsep}{REPO}"}
    with open(log, "w", encoding="utf-8") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=REPO, env=env)
    try:
        found = wait_for("the HTTP port in the log", lambda: re.search(
            r"metrics on http://127\.0\.0\.1:(\d+)/metrics", log.read_text()), 90)
        yield Live(f"http://127.0.0.1:{found.group(1)}", proc, out, log, clips["c"], clips["a"])
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        print(log.read_text()[-3000:])
    assert shm.leftovers(f"syx-{proc.pid}-") == []
    assert not any(p.startswith(f"syx-{proc.pid}-") for p in os.listdir("/tmp"))


def source_process(live: Live) -> psutil.Process | None:
    for p in psutil.Process(live.proc.pid).children(recursive=True):
        try:
            if p.cmdline()[:1] == ["streamyolox[rs] cams"]:  # the title, padded with empty arguments
                return p
        except psutil.NoSuchProcess:
            continue
    return None


def reading(live: Live, clips: Path) -> set[str]:
    """The streams whose clip the source process has open (each stream reads its own copy)."""
    p = source_process(live)
    try:
        return {Path(f.path).stem for f in p.open_files() if Path(f.path).parent == clips} if p else set()
    except psutil.NoSuchProcess:
        return set()


def frames(live: Live, stream: str) -> list[int]:
    return [r["frame"] for r in live.records(stream)]


def test_a_removed_stream_stays_removed_and_an_added_one_comes_back_after_a_restart(tmp_path: Path) -> None:
    from tests.conftest import shared_file

    clips = tmp_path / "clips"
    clips.mkdir()
    for name in "abc":  # a copy each: which stream the source reads shows in its open files
        shutil.copy(shared_file("media", "dog_pan_480p.mp4"), clips / f"{name}.mp4")
    with running(tmp_path, {k: clips / f"{k}.mp4" for k in "abc"}) as live:
        wait_for("frames of a and b", lambda: min(len(frames(live, "a")), len(frames(live, "b"))) >= 5, 90)
        status, row = live.call("POST", "/streams", {"id": "c", "url": str(clips / "c.mp4")})
        assert status == 201, row
        assert live.call("DELETE", "/streams/a")[0] == 204
        wait_for("the source reading b and c only", lambda: reading(live, clips) == {"b", "c"}, 30)
        wait_for("frames of c", lambda: len(frames(live, "c")) >= 5, 60)
        a_before = frames(live, "a")

        old = source_process(live)
        assert old is not None
        old.kill()  # kill -9 mid-run
        wait_for("the restarted source reading b and c", lambda: (p := source_process(live)) is not None
                 and p.pid != old.pid and reading(live, clips) == {"b", "c"}, 60)
        seen = {s: len(frames(live, s)) for s in "bc"}
        wait_for("new frames of b and c after the restart",
                 lambda: all(len(frames(live, s)) > seen[s] + 5 for s in "bc"), 60)
        assert "restarting (1/3)" in live.log.read_text()
        assert reading(live, clips) == {"b", "c"}, "the removed stream was opened again"
        assert frames(live, "a") == a_before, "frames of the removed stream after the restart"
        rows = live.rows()
        assert rows["b"]["state"] == rows["c"]["state"] == "up", rows
        assert rows.get("a", {}).get("state") in (None, "removed"), rows["a"]
        assert live.proc.wait(200) == 0, live.log.read_text()[-3000:]
        # b (from the YAML) and c (added live) resumed after what the sink had: every frame once, in order
        assert frames(live, "b") == frames(live, "c") == list(range(150))
        assert frames(live, "a") == a_before == list(range(len(a_before)))
