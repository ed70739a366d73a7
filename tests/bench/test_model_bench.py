"""Model bench smoke tests: every backend runs, computes the same outputs, and reports positive numbers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from streamyolox.bench.model_bench import (
    BackendFactory,
    ModelBenchConfig,
    bench_ort_bare,
    make_input,
    run_model_bench,
)


def test_ort_bare_baseline_runs_the_official_export(nano_onnx: Path) -> None:
    row = bench_ort_bare(nano_onnx, threads=2, repeats=2, warmup=1)
    assert row.name == "ort-bare b1 416" and row.params["batch"] == 1 and row.params["threads"] == 2
    assert row.fps > 0 and 0 < row.p50_ms <= row.p99_ms and row.peak_rss_mb > 0


@pytest.fixture(scope="module")
def onnx_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("exports")  # one export per size for the whole module (slow step)


def test_backends_compute_the_same_bare_model(nano_pth: Path, nano_onnx: Path, onnx_dir: Path) -> None:
    # What is timed must be the same computation: the official export (reference at 416), our eager model,
    # the fused channels_last model, and our own dynamic-batch export (at 320, against eager) all give the
    # undecoded head output.
    from streamyolox.bench.model_bench import ort_forward, ort_session

    backends = BackendFactory(ModelBenchConfig(weights=str(nano_pth), threads=1), onnx_dir)
    x = make_input(1, 416)
    ref = ort_forward(ort_session(nano_onnx, 1))(x)
    for name in ("torch-fp32", "torch-cl-fused"):
        out = backends.forward(name, 416)(x)
        assert out.shape == ref.shape == (1, 3549, 85), name
        np.testing.assert_allclose(out, ref, rtol=1e-3, atol=2e-3, err_msg=name)
    x = make_input(2, 320)
    np.testing.assert_allclose(backends.forward("onnxruntime", 320)(x), backends.forward("torch-fp32", 320)(x),
                               rtol=1e-3, atol=2e-3)


def test_grid_rows_link_to_the_baseline(nano_pth: Path, nano_onnx: Path, onnx_dir: Path) -> None:
    cfg = ModelBenchConfig(weights=str(nano_pth), bare_onnx=nano_onnx, batches=(1, 2), sizes=(320,),
                           backends=("torch-fp32", "onnxruntime", "torch-cuda-fp16"), threads=1, repeats=1,
                           warmup=0, onnx_dir=onnx_dir)
    rows = run_model_bench(cfg)
    assert [r.name for r in rows] == ["ort-bare b1 416", "torch-fp32 b1 320", "torch-fp32 b2 320",
                                      "onnxruntime b1 320", "onnxruntime b2 320", "torch-cuda-fp16 b1 320",
                                      "torch-cuda-fp16 b2 320"]
    for r in rows[1:5]:
        assert r.ref == "ort-bare b1 416" and r.fps > 0 and r.p99_ms > 0 and r.peak_rss_mb > 0
    assert rows[2].params == {"backend": "torch-fp32", "batch": 2, "input_size": 320, "threads": 1}
    gpu = rows[5:]
    if torch.cuda.is_available():
        assert all(r.fps and r.fps > 0 for r in gpu)
    else:
        assert all(r.skipped == "no CUDA GPU" and r.fps is None for r in gpu)


def test_unknown_backend_is_named(nano_pth: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown backend 'tensorrt'"):
        BackendFactory(ModelBenchConfig(weights=str(nano_pth)), tmp_path).forward("tensorrt", 416)
