"""Pipeline bench: a real `streamyolox run` end to end (small), and the summary arithmetic."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from streamyolox.bench.pipeline_bench import (
    PipelineBenchConfig,
    RunSample,
    run_pipeline_bench,
    steady_fps,
    summarize,
)

REPO = Path(__file__).resolve().parents[2]


def test_steady_fps_skips_the_fill() -> None:
    # 10 frames decoded in a burst while the pipeline fills, then one every 0.1 s
    times = [0.001 * i for i in range(10)] + [1.0 + 0.1 * i for i in range(30)]
    assert steady_fps(times) == pytest.approx(10.0)
    assert steady_fps([1.0]) is None and steady_fps([2.0, 2.0, 2.0, 2.0]) is None


def _stage(sid: str, kind: str, n: int, busy: float, age: float | None = None) -> dict:
    ages = {"p50": age, "p95": age, "p99": age}
    return {"stage": sid, "kind": kind, "state": "done", "frames_in": n, "frames_out": n, "fps": 1.0,
            "busy_s": busy, "busy_pct": 10.0, "age_s": ages, "queue": {}, "dropped": 0}


def test_summarize_rows() -> None:
    metrics = {"elapsed_s": 10.0, "stages": [_stage("src", "decode", 100, 1.0), _stage("det", "yolox", 100, 5.0),
                                             _stage("out", "json", 100, 0.1, age=0.05)]}
    metrics["stages"][1]["pid"] = 42
    sample = RunSample(12.0, 900.0, 600.0, {"python[1]": 500.0, "python[42]": 300.0}, metrics,
                       [0.1 * i for i in range(100)])
    rows = summarize(sample, "demo")
    top = rows[0]
    assert top.name == "demo" and top.params["sink"] == "out"
    assert top.fps == pytest.approx(10.0) and top.p50_ms == pytest.approx(50.0)
    assert top.peak_rss_mb == 900.0 and top.extra["peak_pss_mb"] == 600.0
    assert top.extra["fps_with_startup"] == pytest.approx(10.0) and top.extra["busy_s"]["det"] == 5.0
    assert top.extra["rss_by_process_mb"] == {"python[1]": 500.0, "det[42]": 300.0}
    det = next(r for r in rows if r.name == "demo stage det")
    assert det.fps == pytest.approx(20.0) and det.p50_ms == pytest.approx(50.0)


def test_demo_pipeline_end_to_end(nano_pth: Path) -> None:
    # The shipped demo clip, every 10th frame: a real multi-process run, metrics, RSS of the tree.
    clip = REPO / "examples" / "media" / "demo.mp4"
    if not clip.exists():
        pytest.skip(f"{clip} not in this checkout")
    cfg = PipelineBenchConfig(file=REPO / "pipelines" / "demo.yaml", timeout_s=180,
                              overrides=[f"stages.source.url={clip}", "stages.source.stride=10",
                                         f"model.weights={nano_pth}"])
    rows = run_pipeline_bench(cfg)
    top = rows[0]
    assert top.name == "demo" and top.extra["frames"] > 2 and top.fps > 0
    assert top.p50_ms > 0 and top.p99_ms >= top.p50_ms
    assert top.peak_rss_mb > top.extra["peak_pss_mb"] > 0  # shared pages count once per process in RSS
    assert len(top.extra["rss_by_process_mb"]) >= 5  # the runner and one process per stage
    stages = {r.params.get("stage") for r in rows[1:]}
    assert {"pre", "detect", "post"} <= stages
    json.dumps([r.to_json() for r in rows])  # JSON-ready


def test_invalid_override_fails_before_running(nano_pth: Path) -> None:
    cfg = PipelineBenchConfig(file=REPO / "pipelines" / "demo.yaml",
                              overrides=["stages.source.stride=abc", f"model.weights={nano_pth}"])
    with pytest.raises(ValueError, match=r"demo\.yaml: stages\.source\.stride"):
        run_pipeline_bench(cfg)
