"""An mp4 sink killed with -9 and restarted (`restart: on-failure`) keeps what it wrote and continues in
`name.part1.mp4`: both files decode (PyAV) to consecutive frames of the source, the continuation starts
after the frames of the first file, runs to the clip's end, and the log and metrics name it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest

from streamyolox.stages.mp4_sink import continuation, stale_parts
from tests.graph.killing import dropped_before, kill_stage, wait_lines

REPO = Path(__file__).resolve().parents[2]
VIDEO = REPO / "examples" / "media" / "demo.mp4"
FRAMES = 120
pytestmark = pytest.mark.timeout(240)

PIPELINE = """
name: mp4restart
stages:
  source: {{kind: decode, url: "{video}", realtime: true}}
  mp4: {{kind: mp4, inputs: [source], path: "{out}/clip.mp4", restart: on-failure, fragmented: true,
         keyframe_interval_s: 0.5, crf: 12}}
  json: {{kind: json, inputs: [source], path: "{out}/clip.jsonl"}}
"""


def test_continuation_names() -> None:
    assert continuation(Path("out/cam.mp4"), 0) == Path("out/cam.mp4")
    assert continuation(Path("out/cam.mp4"), 2) == Path("out/cam.part2.mp4")


def test_a_fresh_run_removes_the_parts_an_earlier_run_left(tmp_path: Path) -> None:
    for name in ("cam.mp4", "cam.part1.mp4", "cam.part12.mp4", "cam.partx.mp4", "camera.part1.mp4"):
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in stale_parts(tmp_path / "cam.mp4")] == ["cam.part1.mp4", "cam.part12.mp4"]


def _decode(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="bgr24").astype(np.int16) for f in container.decode(video=0)]


def _source_index(frame: np.ndarray, source: list[np.ndarray]) -> int:
    """The source frame `frame` is (the clip pans, so each frame is unlike its neighbours)."""
    diffs = [float(np.abs(frame - s).mean()) for s in source]
    best = int(np.argmin(diffs))
    assert diffs[best] < 3.0, diffs[best]
    return best


def test_kill9_of_a_restarting_mp4_sink_continues_in_a_part_file(tmp_path: Path) -> None:
    out = tmp_path / "out"
    (tmp_path / "p.yaml").write_text(PIPELINE.format(video=VIDEO, out=out))
    cmd = [sys.executable, "-m", "streamyolox", "run", str(tmp_path / "p.yaml"), "--no-dashboard",
           "--metrics-json", str(tmp_path / "m.json")]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        wait_lines(out / "clip.jsonl", 50)  # 1.7 s of the clip in real time: three fragments written
        kill_stage(proc.pid, "streamyolox[mp4restart] mp4")
        killed = time.monotonic()
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err[-3000:]
    assert "restarting (1/3)" in err and time.monotonic() - killed < 60
    assert f"continuing in {out / 'clip.part1.mp4'}" in err
    source = _decode(VIDEO)
    first, second = _decode(out / "clip.mp4"), _decode(out / "clip.part1.mp4")
    # the first incarnation's file is kept (not rewritten): the clip's first frames, up to its last fragment
    assert len(first) >= 15
    assert [_source_index(f, source) for f in first[::5]] == list(range(0, len(first), 5))
    # the continuation: consecutive frames from after the first file's to the clip's end
    start = _source_index(second[0], source)
    assert start >= len(first)
    assert [_source_index(f, source) for f in second[::5]] == list(range(start, start + len(second), 5))
    assert start + len(second) == FRAMES
    metrics = json.loads((tmp_path / "m.json").read_text())
    lost = dropped_before(metrics["streams"], "source", ["source", "mp4"])
    # frames the killed process had encoded but not yet closed into a fragment are gone with it (at most
    # one fragment, 0.5 s = 15 frames, plus the encoder's look-ahead); the rest are in a file or counted
    missing = FRAMES - len(first) - len(second) - lost
    print(f"kill -9 of the mp4 sink: {len(first)} frames kept in clip.mp4, {len(second)} in clip.part1.mp4 "
          f"from frame {start}, {lost} counted lost, {missing} in the unfinished fragment")
    assert 0 <= missing <= 15 + 40
    row = next(r for r in metrics["stages"] if r["stage"] == "mp4")
    assert row["counters"].get("part") == 1, row
