"""The shipped pipelines with `restart: on-failure`, each stage killed with -9 in turn mid-run (found by its
title in `ps`): the run finishes with exit 0, and each output (JSON lines, the MP4's frames decoded by PyAV)
plus the frames reported dropped on the way to it make the clip's frame count."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import av
import pytest

from tests.graph.killing import dropped_before, frames_of, kill_stage, wait_lines

REPO = Path(__file__).resolve().parents[2]
VIDEO = REPO / "examples" / "media" / "demo.mp4"
FRAMES = 120
pytestmark = pytest.mark.timeout(240)
UP_TO = ["source", "pre", "detect", "post"]
CASES = [("demo", s) for s in ("source", "pre", "detect#0", "detect#1", "post", "json")] + \
        [("file_to_mp4", s) for s in ("source", "pre", "detect", "post", "mp4", "json")]


def _mp4_frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


@pytest.mark.parametrize(("pipeline", "victim"), CASES, ids=[f"{p}-{s}" for p, s in CASES])
def test_kill9_of_each_stage_with_restart(tmp_path: Path, nano_pth: Path, pipeline: str, victim: str) -> None:
    out = tmp_path / "out.jsonl"
    sets = [f"stages.{victim.partition('#')[0]}.restart=on-failure", f"stages.source.url={VIDEO}",
            f"model.weights={nano_pth}", f"stages.json.path={out}", f"stages.mp4.path={tmp_path / 'out.mp4'}"]
    cmd = [sys.executable, "-m", "streamyolox", "run", str(REPO / "pipelines" / f"{pipeline}.yaml"),
           "--no-dashboard", "--metrics-json", str(tmp_path / "m.json")]
    for item in sets if pipeline == "file_to_mp4" else sets[:-1]:
        cmd += ["--set", item]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "STREAMYOLOX_DETECT_REPLICAS": "2"})
    try:
        wait_lines(out, 30)
        kill_stage(proc.pid, f"streamyolox[{pipeline}] {victim}")
        killed = time.monotonic()
        _, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err[-3000:]
    assert "restarting (1/3)" in err and time.monotonic() - killed < 120
    streams = json.loads((tmp_path / "m.json").read_text())["streams"]
    assert streams["source"]["frames"] == FRAMES
    frames = frames_of(out)
    assert frames == sorted(set(frames))  # in order, none twice
    lost = dropped_before(streams, "source", [*UP_TO, "json"])
    if victim == "json":
        # A killed sink may have written a frame whose slot it had not yet released, so that frame is both
        # in the file and counted lost (seen once in CI-like runs: 111 + 10 = 121). No frame may go missing
        # uncounted, and at most the sink's in-flight frames may be counted twice.
        assert FRAMES <= len(frames) + lost <= FRAMES + 2, streams
    else:
        assert len(frames) + lost == FRAMES, streams
    if victim == "source":
        assert frames == list(range(FRAMES))  # a file source resumes after what was delivered
    if pipeline == "file_to_mp4" and victim != "mp4":
        assert _mp4_frames(tmp_path / "out.mp4") + dropped_before(streams, "source", [*UP_TO, "mp4"]) == FRAMES
    elif pipeline == "file_to_mp4":
        # The runtime counts what the dead sink held; what it had written is the sink's own: its restart
        # leaves out.mp4 as it was (without an index: the shipped pipeline is not fragmented) and writes
        # the frames after the restart to out.part1.mp4 (tests/stages/test_mp4_sink_restart.py checks both).
        assert (tmp_path / "out.mp4").stat().st_size > 0
        after = _mp4_frames(tmp_path / "out.part1.mp4")
        assert 0 < after < FRAMES - dropped_before(streams, "source", [*UP_TO, "mp4"])
