"""`streamyolox bench capacity`: the verdict rules on given numbers, and two real runs on a small clip
through a model-free pipeline (short windows): the JSON's structure and that its numbers agree with each
other (every step judged by its own fps and ages, the answer = the steps that held before the first
miss); a target no stream can reach stops at the first step with 0 sustained. Not timing-asserted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from streamyolox.bench.capacity import CapacityConfig, Step, judge, sustained_streams

REPO = Path(__file__).resolve().parents[2]
CLIP = REPO / "examples" / "media" / "demo.mp4"  # 640x360, 30 fps, 120 frames (looped)
PIPELINE = """
name: capfake
stages:
  source: {kind: decode, url: "%s"}
  json: {kind: json, inputs: [source], path: out/all.jsonl}
"""


def _cfg(**kw: object) -> CapacityConfig:
    return CapacityConfig(Path("p.yaml"), CLIP, **kw)  # type: ignore[arg-type]


def test_judge_holds_only_at_the_rate_and_within_the_budget() -> None:
    cfg = _cfg(target_fps=15, max_age_ms=500, fps_tolerance=0.05)
    ok = judge(cfg, 2, 10.0, {"cap0": 15.0, "cap1": 14.3}, {"cap0": 120.0, "cap1": 499.0}, 300.0)
    assert ok.sustained and ok.reason is None and ok.min_fps == 14.3 and ok.max_age_p99_ms == 499.0
    slow = judge(cfg, 2, 10.0, {"cap0": 15.0, "cap1": 14.2}, {"cap0": 1.0, "cap1": 1.0}, 300.0)
    assert not slow.sustained and slow.reason == "cap1 at 14.2 fps < 15"
    old = judge(cfg, 2, 10.0, {"cap0": 30.0, "cap1": 30.0}, {"cap0": 501.0, "cap1": 900.0}, 300.0)
    assert not old.sustained and old.reason == "cap1 frame age p99 900 ms > 500"
    blind = judge(cfg, 1, 10.0, {"cap0": 30.0}, {"cap0": None}, 300.0)
    assert not blind.sustained and "no frame age" in str(blind.reason)


def test_the_answer_counts_the_steps_before_the_first_miss() -> None:
    def step(k: int, held: bool) -> Step:
        return Step(k, 1.0, {"cap0": 1.0}, {"cap0": 1.0}, 1.0, held, None if held else "x")

    assert sustained_streams([step(1, True), step(2, True), step(3, False)]) == 2
    assert sustained_streams([step(1, False)]) == 0
    assert sustained_streams([]) == 0


@pytest.mark.parametrize(("options", "message"), [
    ({"target_fps": 0}, "--target-fps: expected a number > 0"), ({"max_streams": 0}, "--max-streams"),
    ({"window_s": -1}, "--window-s"), ({"fps_tolerance": 1.5}, "fps tolerance"),
])
def test_bad_settings_are_one_line_errors(options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _cfg(**options)


def _bench(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], dict]:
    (tmp_path / "p.yaml").write_text(PIPELINE % CLIP)
    out = tmp_path / "results" / "cap.json"
    cmd = [sys.executable, "-m", "streamyolox", "bench", "capacity", str(tmp_path / "p.yaml"), "--clip", str(CLIP),
           "--warmup", "1", "--window", "2", "--json", str(out), *args]
    result = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=240,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stderr[-3000:]
    assert not (tmp_path / "out").exists()  # the pipeline's own output path is left alone
    png = out.with_suffix(".png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return result, json.loads(out.read_text())


def _consistent(doc: dict) -> None:
    cfg = _cfg(target_fps=doc["target_fps"], max_age_ms=doc["max_age_ms"], fps_tolerance=doc["fps_tolerance"])
    for k, step in enumerate(doc["steps"], start=1):
        assert step["streams"] == k and sorted(step["fps"]) == sorted(step["age_p99_ms"]) == [f"cap{i}" for i in range(k)]
        assert step["window_s"] >= 2.0 and step["rss_mb"] > 0
        again = judge(cfg, k, step["window_s"], step["fps"], step["age_p99_ms"], step["rss_mb"])
        assert (again.sustained, again.reason) == (step["sustained"], step["reason"])
        assert step["min_fps"] == min(step["fps"].values())
        # a clip played in real time at 30 fps cannot reach the sinks faster (bar the window's edges)
        assert all(0 <= f <= 30 * 1.2 for f in step["fps"].values())
    held = [s["sustained"] for s in doc["steps"]]
    assert all(held[:-1])  # the search stops at the first miss
    assert doc["max_streams_sustained"] == (len(held) if held[-1] else len(held) - 1)
    assert doc["machine"]["cores_usable"] >= 1


@pytest.mark.timeout(300)
def test_capacity_run_json_structure_and_consistency(tmp_path: Path) -> None:
    result, doc = _bench(tmp_path, "--target-fps", "15", "--max-age-ms", "500", "--max-streams", "2")
    assert {"pipeline", "clip", "target_fps", "max_age_ms", "steps", "max_streams_sustained", "stopped",
            "machine"} <= set(doc)
    assert 1 <= len(doc["steps"]) <= 2
    _consistent(doc)
    if doc["steps"][-1]["sustained"]:
        assert len(doc["steps"]) == 2 and doc["stopped"] == "max_streams reached"
    print(result.stderr.strip().splitlines()[-2:], result.stdout.strip())
    assert f"{doc['max_streams_sustained']} stream(s) sustained" in result.stdout


@pytest.mark.timeout(300)
def test_an_unreachable_target_stops_at_the_first_step(tmp_path: Path) -> None:
    _, doc = _bench(tmp_path, "--target-fps", "1000", "--max-streams", "3")
    assert len(doc["steps"]) == 1 and doc["max_streams_sustained"] == 0
    assert doc["stopped"].startswith("at 1 stream(s): cap0 at ") and "< 1000" in doc["stopped"]
    _consistent(doc)


def test_window_rate_is_over_the_frames_own_times_not_the_readings() -> None:
    from streamyolox.bench.capacity import window_fps

    # a 30 fps stream, counts reported once a second: read at wall 0.0 and 2.05 the counts moved by three
    # reports (90 frames); between the last frames counted at each reading 3.0 s passed
    first, last = {"frames": 30, "last_frame_t": 100.0}, {"frames": 120, "last_frame_t": 103.0}
    assert window_fps(first, last, 2.05) == pytest.approx(30.0)
    assert window_fps({"frames": 0, "last_frame_t": None}, {"frames": 40, "last_frame_t": 5.0}, 2.0) == 20.0
    assert window_fps({"frames": 5, "last_frame_t": 5.0}, {"frames": 5, "last_frame_t": 5.0}, 2.0) == 0.0
