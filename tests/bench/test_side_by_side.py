"""Side-by-side bench pieces on real files: the remuxed clip, the bare runtime process, the README table."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from streamyolox.bench.harness import Result
from streamyolox.bench.side_by_side import (
    CEILING,
    SideBySideConfig,
    before_sets,
    ceiling_case,
    markdown_table,
    remux_copies,
    run_side_by_side,
)

REPO = Path(__file__).resolve().parents[2]
MACHINE = {"date": "d", "commit": "abc", "cpu_model": "AMD EPYC", "cores_usable": 2, "memory_gb": 24,
           "versions": {"onnxruntime": "1"}, "load_avg": [1, 1, 1]}


def test_remux_copies_repeats_the_frames(tmp_path: Path, street_720p: Path) -> None:
    out = remux_copies(street_720p, tmp_path / "x2.mp4", 2)
    with av.open(str(street_720p)) as a:
        first = [f.to_ndarray(format="gray") for f in a.decode(video=0)]
    with av.open(str(out)) as b:
        frames = [f for f in b.decode(video=0)]
        pts = [float(f.time) for f in frames]
    assert len(frames) == 2 * len(first)
    assert pts == sorted(pts) and len(set(pts)) == len(pts)  # the second copy continues the timeline
    np.testing.assert_array_equal(frames[len(first) + 7].to_ndarray(format="gray"), first[7])


def test_bare_runtime_process_reports(nano_onnx: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "streamyolox.bench.bare", "onnxruntime", str(nano_onnx),
                           "--frames", "3", "--threads", "1"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-1000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["frames"] == 3 and out["steady_fps"] > 0 and out["startup_s"] > 0
    assert out["p99_ms"] >= out["p50_ms"] > 0


def test_before_sets_give_each_stage_its_own_process() -> None:
    sets = before_sets(REPO / "pipelines" / "demo.yaml", [f"stages.source.url={REPO / 'examples/media/demo.mp4'}"])
    # detect has replicas (no worker allowed): the rest each get a worker of their own name
    assert sets == [f"stages.{s}.worker={s}" for s in ("source", "pre", "post", "json")]


def test_markdown_table_rows() -> None:
    base = Result("side-by-side", "ort-bare b1", fps=80.0, extra={"fps_with_startup": 75.0})
    pipe = Result("side-by-side", "demo", fps=64.0, ratio=0.8, ref="ort-bare b1", peak_rss_mb=700.0,
                  extra={"fps_with_startup": 60.0, "ratio_with_startup": 0.75, "first_output_s": 1.2,
                         "first_output_cpu_s": 2.5, "exit_after_output_s": 0.2, "peak_pss_mb": 400.0, "stage_ms": {"detect": 20.0}})
    text = markdown_table({"machine": MACHINE, "results": [base.to_json(), pipe.to_json()]})
    assert "| demo | 64.0 | 0.80x | 60.0 | 0.75x | 1.20 | 2.50 | 0.20 | 700 | 400 |" in text
    assert "| ort-bare b1 | 80.0 | - | 75.0 | - |" in text and "detect 20.00" in text and "AMD EPYC" in text


def test_each_round_is_paired_with_the_same_rounds_yardstick(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # the bare runtime swings (100, 200, 100) while the pipeline holds (80, 90, 85): the median ratio is
    # 0.85 and the per-round ones 0.45-0.85, in the JSON and in the README table
    from streamyolox.bench import side_by_side as sbs

    bare = iter([100.0, 200.0, 100.0])
    pipe = iter([80.0, 90.0, 85.0])
    monkeypatch.setattr(sbs, "bare_case", lambda *a: Result("side-by-side", "ort-bare b1", fps=(f := next(bare)),
                                                             extra={"fps_with_startup": f}))
    monkeypatch.setattr(sbs, "pipeline_case", lambda *a, **k: Result(
        "side-by-side", "demo", fps=(f := next(pipe)), extra={"fps_with_startup": f - 10}))
    cfg = SideBySideConfig(clip=tmp_path / "v.mp4", weights=tmp_path / "w.pth", onnx=tmp_path / "m.onnx",
                           pipelines=[Path("demo.yaml")],
                           runtimes=("onnxruntime",), rounds=3, before=False, warmup=False)
    ceiling = iter([150.0, 160.0, 155.0])
    monkeypatch.setattr(sbs, "ceiling_case", lambda *a: Result("side-by-side", CEILING, fps=next(ceiling)))
    rows = run_side_by_side(cfg)
    top = next(r for r in rows if r.name == CEILING)  # steady only: no start-up ratio, not a 0.00x
    assert top.extra["ratio_rounds"] == pytest.approx([1.5, 0.8, 1.55]) and "ratio_with_startup" not in top.extra
    assert "ratio_with_startup_rounds" not in top.extra and "fps_with_startup_rounds" not in top.extra
    demo = next(r for r in rows if r.name == "demo")
    assert demo.fps == 85.0 and demo.ratio == pytest.approx(0.85)
    assert demo.extra["ratio_rounds"] == pytest.approx([0.8, 0.45, 0.85])
    assert demo.extra["ratio_with_startup_rounds"] == pytest.approx([0.7, 0.4, 0.75])
    text = markdown_table({"machine": MACHINE, "results": [r.to_json() for r in rows]})
    assert "| demo | 85.0 | 0.85x (0.45-0.85) | 75.0 | 0.75x (0.40-0.75) |" in text


def test_rounds_start_cached_after_a_cold_run_on_an_empty_cache(monkeypatch: pytest.MonkeyPatch,
                                                                 tmp_path: Path) -> None:
    from streamyolox.bench import side_by_side as sbs

    monkeypatch.setenv("STREAMYOLOX_CACHE", str(tmp_path / "mine"))
    calls: list[tuple[str, str]] = []

    def pipeline(file: Path, cfg: SideBySideConfig, before: bool = False) -> Result:
        cache = os.environ["STREAMYOLOX_CACHE"]
        calls.append((file.stem, cache))
        cold = cache != str(tmp_path / "mine")
        if cold:  # what an empty cache means: nothing in it yet
            assert Path(cache).is_dir() and not any(Path(cache).iterdir())
        return Result("side-by-side", file.stem, fps=80.0, extra={
            "fps_with_startup": 70.0, "first_output_s": 7.5 if cold else 0.8,
            "first_output_cpu_s": 11.0 if cold else 1.2})

    monkeypatch.setattr(sbs, "pipeline_case", pipeline)
    monkeypatch.setattr(sbs, "bare_case", lambda *a: Result("side-by-side", "ort-bare b1", fps=100.0,
                                                             extra={"fps_with_startup": 95.0}))
    cfg = SideBySideConfig(clip=tmp_path / "v.mp4", weights=tmp_path / "w.pth", onnx=tmp_path / "m.onnx",
                           pipelines=[Path("demo.yaml"), Path("rtsp.yaml")], runtimes=("onnxruntime",),
                           rounds=2, before=False, ceiling=False)
    rows = run_side_by_side(cfg)
    mine = str(tmp_path / "mine")
    assert calls[0][0] == "demo" and calls[0][1] != mine and not Path(calls[0][1]).exists()  # removed after
    assert calls[1:] == [("demo", mine), ("rtsp", mine)] * 3  # warm-up, then 2 rounds
    assert os.environ["STREAMYOLOX_CACHE"] == mine
    demo = next(r for r in rows if r.name == "demo")
    assert demo.extra["first_output_s"] == 0.8 and demo.extra["cold_first_output_s"] == 7.5
    assert "cold_first_output_s" not in next(r for r in rows if r.name == "rtsp").extra
    text = markdown_table({"machine": MACHINE, "results": [r.to_json() for r in rows]})
    assert "demo on an empty cache (ONNX export and `auto`'s backend measurement), wrote its first JSON line " \
           "after 7.50 s (11.00 CPU s)" in text


def test_ceiling_process_sums_the_work_no_pipeline_skips(tmp_path: Path, street_720p: Path, nano_onnx: Path) -> None:
    cfg = SideBySideConfig(clip=street_720p, weights=tmp_path / "unused.pth", onnx=nano_onnx, pipelines=[])
    row = ceiling_case(cfg)
    assert row.skipped is None and row.name == CEILING
    parts = row.extra["parts_ms"]
    assert all(parts[k] > 0 for k in ("decode_ms", "yuv_letterbox_ms", "bgr_ms", "letterbox_ms", "infer_ms"))
    total = parts["decode_ms"] + parts["yuv_letterbox_ms"] + parts["infer_ms"]
    assert parts["core_ms_per_frame"] == pytest.approx(total)
    assert row.fps == pytest.approx(row.params["cores"] * 1e3 / total)
    bgr = parts["decode_ms"] + parts["bgr_ms"] + parts["letterbox_ms"] + parts["infer_ms"]
    assert row.extra["ceiling_bgr_fps"] == pytest.approx(row.params["cores"] * 1e3 / bgr)
    text = markdown_table({"machine": MACHINE, "results": [row.to_json()]})
    assert f"| {CEILING} | {row.fps:,.1f} |" in text and f"1-thread inference {parts['infer_ms']:.2f}" in text
    assert f"it is {row.extra['ceiling_bgr_fps']:.1f} frames/s" in text


def test_ceiling_names_a_missing_input(tmp_path: Path, nano_onnx: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "streamyolox.bench.ceiling", str(tmp_path / "none.mp4"),
                           str(nano_onnx)], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and done.stderr.strip().splitlines() == [f"ceiling: {tmp_path / 'none.mp4'} not found"]
