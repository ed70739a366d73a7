"""Default placement on the shipped pipelines and on edge cases: who shares a process, threads, frames.

The end-to-end consequences (detections equal to `Detector`, restarts, replicas) are checked by the
pipeline tests that run these files (tests/pipelines/test_demo_pipeline.py, test_restart_shipped.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamyolox.graph.placement import groups, needs_frame, place
from streamyolox.graph.runner import plan_edges, plan_processes
from streamyolox.graph.spec import PipelineSpec
from streamyolox.graph.validate import load_pipeline

REPO = Path(__file__).resolve().parents[2]
PIPELINES = REPO / "pipelines"
CLIP = REPO / "examples" / "media" / "demo.mp4"


def _load(name: str, *sets: str) -> PipelineSpec:
    return load_pipeline(PIPELINES / f"{name}.yaml", [f"stages.source.url={CLIP}", *sets],
                         env={"STREAMYOLOX_DETECT_REPLICAS": "2"})


def _processes(spec: PipelineSpec) -> list[list[str]]:
    placed = place(spec, cores=2)
    by: dict[str, list[str]] = {}
    for sid, s in placed.stages.items():
        by.setdefault(s.worker or sid, []).append(sid)
    return list(by.values())


def test_demo_three_processes_kinds() -> None:
    spec = _load("rtsp_to_json")
    assert _processes(spec) == [["source", "pre"], ["detect"], ["post", "json"]]
    placed = place(spec, cores=2)
    assert placed.stages["pre"].worker == "source+pre" and placed.stages["detect"].worker is None
    assert spec.stages["pre"].worker is None  # the input spec is left alone


def test_processes_of_every_shipped_cpu_pipeline() -> None:
    assert _processes(_load("demo")) == [["source", "pre"], ["detect"], ["post", "json"]]
    assert _processes(_load("file_to_mp4", "stages.mp4.path=/tmp/x.mp4")) == \
        [["source", "pre"], ["detect"], ["post", "json"], ["mp4"]]
    count = _load("count_people")
    assert ["post", "track", "count", "json", "mqtt"] in _processes(count)
    assert ["mp4"] in _processes(count)


def test_explicit_worker_wins() -> None:
    spec = _load("rtsp_to_json", "stages.pre.worker=pre", "stages.json.worker=out")
    assert _processes(spec) == [["source"], ["pre"], ["detect"], ["post"], ["json"]]
    gpu = load_pipeline(PIPELINES / "gpu_to_json.yaml", [f"stages.source.url={CLIP}"])
    assert _processes(gpu) == [["source"], ["pre", "detect", "post"], ["json"]]  # as written


def test_restart_on_failure_keeps_its_own_process() -> None:
    # a restart loses only the frames of the stage that asked for it, and a file source resumes as before
    for victim in ("source", "pre", "post", "json"):
        spec = _load("rtsp_to_json", f"stages.{victim}.restart=on-failure")
        assert [victim] in _processes(spec), victim
    both = _load("rtsp_to_json", "stages.post.restart=on-failure", "stages.json.restart=on-failure")
    assert ["post", "json"] not in _processes(both)


def test_replicas_threads_listen_and_only_are_not_grouped() -> None:
    demo = _load("demo")  # detect x2
    assert ["detect"] in _processes(demo) and demo.stages["detect"].replicas == 2
    assert ["post"] in _processes(_load("rtsp_to_json", "stages.post.threads=2"))
    assert ["json"] in _processes(_load("rtsp_to_json", "stages.json.listen=tcp://127.0.0.1:7000"))
    spec = _load("rtsp_to_json")
    assert groups(spec, local={"source", "pre", "detect", "post"}) == [["source", "pre"]]


def test_only_split_still_needs_listen() -> None:
    # json on another host without a listen address: still refused, placement does not hide it
    spec = place(_load("rtsp_to_json"), {"source", "pre", "detect", "post"}, cores=2)
    with pytest.raises(Exception, match=r"stages\.json\.listen: required"):
        plan_edges(spec, "/tmp", "syx-test-", {"source", "pre", "detect", "post"})


def test_frames_and_dtype() -> None:
    json_only = place(_load("rtsp_to_json"), cores=2)
    pre = json_only.stages["pre"].options
    assert pre.keep_frame is False and pre.dtype == "uint8"  # type: ignore[attr-defined]
    mp4 = place(_load("file_to_mp4", "stages.mp4.path=/tmp/x.mp4"), cores=2)
    assert mp4.stages["pre"].options.keep_frame is True  # type: ignore[attr-defined]  # the mp4 sink draws on it
    assert needs_frame(_load("publish_zmq"), "pre") is False
    assert needs_frame(_load("publish_zmq", "stages.zmq.thumbnail=true"), "pre") is True
    user = load_pipeline(PIPELINES / "rtsp_to_json.yaml", [f"stages.source.url={CLIP}",
                                                           "stages.json.kind=fake_stages:Collect"])
    assert needs_frame(user, "pre") is True  # a user stage may read the frame
    wall = place(_load("rtsp_to_json"), cores=2, keep_frames=True)  # --http: the camera wall shows frames
    assert wall.stages["pre"].options.keep_frame is True  # type: ignore[attr-defined]
    kept = place(_load("rtsp_to_json", "stages.pre.keep_frame=true", "stages.pre.dtype=float32"), cores=2)
    assert kept.stages["pre"].options.keep_frame is True  # type: ignore[attr-defined]
    assert kept.stages["pre"].options.dtype == "float32"  # type: ignore[attr-defined]


def test_threads_per_process() -> None:
    placed = place(_load("rtsp_to_json"), cores=2)
    plans = {p.name: p for p in plan_processes(placed, plan_edges(placed, "/tmp", "syx-test-", set(placed.stages)),
                                               set(placed.stages), "ipc:///tmp/c", 1.0)}
    assert set(plans) == {"source+pre", "detect", "post+json"}
    assert plans["source+pre"].threads == 1 and plans["post+json"].threads == 1
    assert plans["detect"].threads is None  # the yolox stage's own rule (all cores but one)
    assert placed.stages["source"].options.threads == 1  # type: ignore[attr-defined]  # FFmpeg: 1 thread on 2 cores
    big = place(_load("rtsp_to_json"), cores=32)
    assert big.stages["source"].options.threads == 0  # type: ignore[attr-defined]  # FFmpeg's own choice
    gpu = place(load_pipeline(PIPELINES / "gpu_to_json.yaml", [f"stages.source.url={CLIP}"]), cores=2)
    assert gpu.stages["pre"].threads is None  # shares the model's process: the model's rule


def _pixels(spec: PipelineSpec, keep_frames: bool = False) -> str:
    return place(spec, cores=2, keep_frames=keep_frames).stages["source"].options.pixel_format  # type: ignore[attr-defined]


def test_pixel_format_auto() -> None:
    """YUV planes only where a CPU letterbox in the decoder's process is the sole reader and drops the frame."""
    assert _pixels(_load("rtsp_to_json")) == _pixels(_load("demo")) == "yuv420p"
    assert _load("demo").stages["source"].options.pixel_format == "auto"  # type: ignore[attr-defined]
    assert _pixels(_load("file_to_mp4", "stages.mp4.path=/tmp/x.mp4")) == "bgr24"  # the mp4 sink draws frames
    assert _pixels(_load("rtsp_to_json"), keep_frames=True) == "bgr24"  # the camera wall shows them
    assert _pixels(_load("rtsp_to_json", "stages.pre.worker=elsewhere")) == "bgr24"  # planes would be pickled
    assert _pixels(_load("rtsp_to_json", "model.device=cuda")) == "bgr24"  # the CuPy letterbox takes BGR
    assert _pixels(_load("rtsp_to_json", "stages.pre.keep_frame=true")) == "bgr24"
    assert _pixels(_load("rtsp_to_json", "stages.source.pixel_format=bgr24")) == "bgr24"  # the user's word
    # explicit planes over a process edge: allowed (they travel pickled), only the runtime avoids it
    assert _pixels(_load("rtsp_to_json", "stages.pre.worker=w", "stages.source.pixel_format=yuv420p")) == "yuv420p"
