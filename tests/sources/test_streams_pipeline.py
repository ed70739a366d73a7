"""Multi-stream sources through the runtime (`streamyolox run`): the shipped demo with two streams from
`--set`, `processes: 2` with a source process killed and resumed per stream, and a source mixing a live
camera and a file behind a slow stage (the file loses nothing, the camera stays fresh)."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest

from streamyolox.inference.detector import Detector
from streamyolox.model.spec import ModelSpec
from tests.graph.killing import kill_stage, wait_lines
from tests.sources.test_live_pipeline import REPO, lines, stage_metrics, start_run, write

DEMO = REPO / "examples" / "media" / "demo.mp4"  # 120 frames


def frames_by_stream(path: Path) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for r in lines(path):
        out.setdefault(r["stream"], []).append(r["frame"])
    return out


@pytest.mark.timeout(400)
def test_shipped_demo_with_two_streams_writes_every_frame_of_both(tmp_path: Path, nano_pth: Path) -> None:
    from tests.conftest import detect_from_planes, shared_file

    clips = {"a": shared_file("media", "dog_pan_480p.mp4"), "b": DEMO}
    out = tmp_path / "out.jsonl"
    proc = start_run(REPO / "pipelines" / "demo.yaml", tmp_path, "stages.source.url=null",
                     *[f"stages.source.streams.{k}={v}" for k, v in clips.items()],
                     f"model.weights={nano_pth}", f"stages.json.path={out}")
    _, err = proc.communicate(timeout=380)
    assert proc.returncode == 0, err[-3000:]
    records = lines(out)
    assert frames_by_stream(out) == {"a": list(range(150)), "b": list(range(120))}
    detector = Detector(ModelSpec(name="yolox-nano", weights=str(nano_pth)))
    for sid, clip in clips.items():
        mine = [r for r in records if r["stream"] == sid]
        with av.open(str(clip)) as container:
            for record, frame in zip(mine[::5], list(container.decode(video=0))[::5]):
                want = detect_from_planes(detector, frame)  # the default placement letterboxes the planes
                got = record["detections"]
                assert [d["class_id"] for d in got] == [d["class_id"] for d in want], (sid, record["frame"])
                for g, w in zip(got, want):
                    np.testing.assert_allclose(g["bbox"], w["bbox"], atol=0.02)
                    assert abs(g["score"] - w["score"]) < 1e-3
    assert sum(len(r["detections"]) for r in records) > 100


@pytest.mark.timeout(200)
def test_processes_split_streams_and_a_killed_source_resumes_per_stream(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    pipeline = write(tmp_path, f"""
name: ms
stages:
  source: {{kind: decode, processes: 2, restart: on-failure, threads: 1,
            streams: {{a: "{DEMO}", b: "{DEMO}", c: {{url: "{DEMO}", stride: 2}}}}}}
  slow: {{kind: "live_stages:Sleep", inputs: [source], sleep_ms: 12}}
  json: {{kind: json, inputs: [slow], path: "{out}"}}
""")
    proc = start_run(pipeline, tmp_path)
    try:
        wait_lines(out, 60)
        kill_stage(proc.pid, "streamyolox[ms] source#0")  # holds a and c
    finally:
        _, err = proc.communicate(timeout=150)
    assert proc.returncode == 0, err[-3000:]
    assert "restarting (1/3)" in err
    # Nothing lost, nothing twice, in order: the restarted source skipped what the consumer already had.
    assert frames_by_stream(out) == {"a": list(range(120)), "b": list(range(120)), "c": list(range(0, 120, 2))}
    summary = json.loads((tmp_path / "m.json").read_text())
    assert {s: summary["streams"][s]["dropped"] for s in "abc"} == {"a": 0, "b": 0, "c": 0}
    assert {r["stage"] for r in summary["stages"]} >= {"source", "slow", "json"}


@pytest.mark.rtsp
@pytest.mark.timeout(200)
def test_mixed_live_and_file_source_behind_a_slow_stage(rtsp_server, tmp_path: Path) -> None:
    from tests.conftest import shared_file

    dog = shared_file("media", "dog_pan_480p.mp4")
    ages = tmp_path / "ages.jsonl"
    pipeline = write(tmp_path, f"""
stages:
  source: {{kind: decode, streams: {{cam: {{url: "{rtsp_server.url}", reconnect: false}}, file: "{dog}"}}}}
  slow: {{kind: "live_stages:Sleep", inputs: [source], sleep_ms: 50, queue: 2, policy: drop_oldest}}
  sink: {{kind: "live_stages:AgeSink", inputs: [slow], path: "{ages}", policy: drop_oldest}}
""")
    proc = start_run(pipeline, tmp_path)
    _, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err[-3000:]
    assert "mix of files and live streams: drop_oldest edges block" in err
    got = frames_by_stream(ages)
    assert got["file"] == list(range(150)), "the edges block: no file frame lost"
    cam = got["cam"]
    assert cam == sorted(set(cam)) and cam[-1] >= 290  # in order, the newest frames win
    m = stage_metrics(tmp_path)
    dropped = m["source"]["counters"]["source_dropped"]
    assert m["slow"]["dropped"] == m["sink"]["dropped"] == 0
    assert len(cam) + dropped == 300, (len(cam), dropped)  # every camera frame delivered or counted
    cam_ages = sorted(r["age"] for r in lines(ages) if r["stream"] == "cam")
    assert cam_ages[int(0.95 * len(cam_ages))] < 1.0, cam_ages[-10:]  # blocking would make it ~10 s


@pytest.mark.rtsp
@pytest.mark.timeout(200)
def test_mixed_source_killed_resumes_its_file_and_reconnects_its_camera(rtsp_server, tmp_path: Path) -> None:
    ages = tmp_path / "ages.jsonl"
    pipeline = write(tmp_path, f"""
name: mx
stages:
  source: {{kind: decode, restart: on-failure,
            streams: {{cam: {{url: "{rtsp_server.url}", reconnect: false}}, file: "{DEMO}"}}}}
  slow: {{kind: "live_stages:Sleep", inputs: [source], sleep_ms: 40}}
  sink: {{kind: "live_stages:AgeSink", inputs: [slow], path: "{ages}"}}
""")
    proc = start_run(pipeline, tmp_path)
    try:
        wait_lines(ages, 40)
        kill_stage(proc.pid, "streamyolox[mx] source")
    finally:
        _, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err[-3000:]
    assert "restarting (1/3)" in err
    got = frames_by_stream(ages)
    assert got["file"] == list(range(120)), "the file resumed after what was delivered: none lost or twice"
    cam = got["cam"]
    restart = next(i for i in range(1, len(cam)) if cam[i] < cam[i - 1])  # the new connection: from 0 again
    first, second = cam[:restart], cam[restart:]
    assert first == sorted(set(first)) and second == sorted(set(second))
    assert second[0] < 30 and second[-1] >= 290, "after the restart the camera's frames were not skipped"
