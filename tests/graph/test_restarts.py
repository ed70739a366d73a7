"""`restart: on-failure` at every position: kill -9 of each process of a pipeline with a file source, a
fan-out, replicas and a worker, found by its title in `ps`. The run must finish (exit 0), every frame must
be in each output or counted as dropped on the way to it, none twice, in order; a file source resumes
after the frames its consumers have."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from killing import dropped_before, frames_of, kill_stage, stage_process, wait_lines
from test_runner import _finish, _start_cli

REPO = Path(__file__).resolve().parents[2]
VIDEO = REPO / "examples" / "media" / "demo.mp4"  # 120 frames
FRAMES = 120
pytestmark = pytest.mark.timeout(180)

PIPE = f"""
name: rs
stages:
  source: {{kind: decode, url: "{VIDEO}", restart: on-failure}}
  a: {{kind: "fake_stages:Passthrough", inputs: [source], sleep_ms: 15, check_pixels: false, restart: on-failure}}
  b: {{kind: "fake_stages:Passthrough", inputs: [a], replicas: 2, jitter_ms: 20, check_pixels: false,
      restart: on-failure}}
  c: {{kind: "fake_stages:Passthrough", inputs: [b], worker: w, check_pixels: false, restart: on-failure}}
  sink: {{kind: "fake_stages:Collect", inputs: [c], worker: w, path: "${{T}}/sink.jsonl", restart: on-failure}}
  side: {{kind: "fake_stages:Collect", inputs: [a], path: "${{T}}/side.jsonl", restart: on-failure}}
"""
PATHS = {"sink": ["source", "a", "b", "c", "sink"], "side": ["source", "a", "side"]}


def _run_and_kill(tmp_path: Path, text: str, victim: str | None) -> tuple[dict, str]:
    proc = _start_cli(tmp_path, text)
    wait_lines(tmp_path / "sink.jsonl", 30)
    if victim is not None:
        kill_stage(proc.pid, f"streamyolox[rs] {victim}")
    code, err, _ = _finish(proc, 120)
    assert code == 0, err[-3000:]
    return json.loads((tmp_path / "m.json").read_text()), err


def _check_outputs(tmp_path: Path, summary: dict, killed_writer: str | None = None) -> dict[str, int]:
    """Each output: in order, no frame twice, and with the frames dropped on its way it makes all 120.
    `killed_writer`: the output whose own process was killed. A frame it wrote just before the kill, whose
    slot release had not yet reached its producer, is counted as lost though it is in the file: nothing
    outside the process saw it arrive (seen once in a clean-clone CI run: 13 missing, 14 counted). There the
    count is an upper bound, by at most the releases in flight (2 allowed; 1 seen)."""
    streams = summary["streams"]
    assert streams["source"]["frames"] == FRAMES
    missing = {}
    for sink, path in PATHS.items():
        frames = frames_of(tmp_path / f"{sink}.jsonl")
        assert frames == sorted(set(frames)), f"{sink}: out of order or twice"
        missing[sink] = FRAMES - len(frames)
        counted = dropped_before(streams, "source", path)
        if sink == killed_writer:
            assert counted - 2 <= missing[sink] <= counted, (sink, streams)
        else:
            assert missing[sink] == counted, (sink, streams)
    return missing


@pytest.mark.parametrize("victim", ["a", "b#0", "b#1", "w", "side"])
def test_kill9_each_process_restarts_and_counts_its_losses(tmp_path: Path, victim: str) -> None:
    summary, err = _run_and_kill(tmp_path, PIPE, victim)
    assert "restarting (1/3)" in err
    rows = {r["stage"]: r for r in summary["stages"]}
    stage = {"w": "c", "b#0": "b", "b#1": "b"}.get(victim, victim)
    assert rows[stage]["restarts"] == 1 and rows[stage]["state"] == "done"
    missing = _check_outputs(tmp_path, summary, killed_writer={"w": "sink", "side": "side"}.get(victim))
    lost = sum(d["frames"] for d in summary["streams"]["source"]["drops"])
    assert 0 < lost <= 2 * 10  # at most the credits of its input edges (two for w, fed by both replicas)
    assert {d["reason"] for d in summary["streams"]["source"]["drops"]} == {"restart"}
    assert rows[stage]["lost"] == lost and rows[stage]["dropped"] == lost
    if victim == "side":
        assert missing["sink"] == 0  # the other branch lost nothing
    line = [x for x in err.splitlines() if "stream 'source': dropped" in x]
    assert line and f"dropped {lost} of {FRAMES} frames (lost in the restart of '{stage}')" in line[0], err[-2000:]


def test_kill9_file_source_resumes_after_what_was_delivered(tmp_path: Path) -> None:
    summary, err = _run_and_kill(tmp_path, PIPE, "source")
    assert "restarting (1/3)" in err
    for sink in PATHS:
        assert frames_of(tmp_path / f"{sink}.jsonl") == list(range(FRAMES)), sink  # nothing lost, nothing twice
    stream = summary["streams"]["source"]
    assert {k: stream[k] for k in ("frames", "dropped", "drops")} == {"frames": FRAMES, "dropped": 0, "drops": []}
    assert stream["sink_frames"] == FRAMES  # every sink got each frame once
    assert "stream 'source': 120 frames, none dropped" in err


def test_stage_raising_is_restarted_and_its_frame_counted(tmp_path: Path) -> None:
    text = PIPE.replace("sleep_ms: 15,", "sleep_ms: 15, fail_on: 40,")
    proc = _start_cli(tmp_path, text)
    code, err, _ = _finish(proc, 120)
    assert code == 0, err[-3000:]
    assert "stage 'a' failed on frame 40: ValueError: boom at 40: restarting (1/3)" in err
    summary = json.loads((tmp_path / "m.json").read_text())
    _check_outputs(tmp_path, summary)
    assert 40 not in frames_of(tmp_path / "side.jsonl")


def test_dead_stage_without_restart_fails_naming_it(tmp_path: Path) -> None:
    proc = _start_cli(tmp_path, PIPE.replace("worker: w, check_pixels: false, restart: on-failure",
                                             "worker: w, check_pixels: false"))
    wait_lines(tmp_path / "sink.jsonl", 30)
    kill_stage(proc.pid, "streamyolox[rs] w")
    code, err, _ = _finish(proc, 60)
    assert code == 1
    assert err.strip().splitlines()[-1] == "streamyolox: error: stage 'c' died (killed by SIGKILL)"


def test_titles_in_ps(tmp_path: Path) -> None:
    proc = _start_cli(tmp_path, PIPE)
    try:
        wait_lines(tmp_path / "sink.jsonl", 5)
        for name in ("source", "a", "b#0", "b#1", "w", "side"):
            pid = stage_process(proc.pid, f"streamyolox[rs] {name}").pid
            args = subprocess.run(["ps", "-o", "args=", "-p", str(pid)], capture_output=True, text=True).stdout
            comm = subprocess.run(["ps", "-o", "comm=", "-p", str(pid)], capture_output=True, text=True).stdout
            assert args.strip() == f"streamyolox[rs] {name}" and comm.strip() == name
    finally:
        proc.send_signal(2)
        _finish(proc, 30)
