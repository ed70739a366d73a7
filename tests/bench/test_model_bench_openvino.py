"""`bench model` times OpenVINO on the same export and computation as onnxruntime, or says why it did not."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from streamyolox.bench.model_bench import BackendFactory, ModelBenchConfig, make_input, run_model_bench


def test_openvino_computes_what_onnxruntime_computes(nano_pth: Path, tmp_path: Path) -> None:
    pytest.importorskip("openvino")
    backends = BackendFactory(ModelBenchConfig(weights=str(nano_pth), threads=1), tmp_path)
    x = make_input(2, 320)
    ov, ort = backends.forward("openvino", 320)(x), backends.forward("onnxruntime", 320)(x)
    assert ov.shape == ort.shape == (2, 2100, 85)
    assert len(list(tmp_path.glob("*.onnx"))) == 1  # one export timed by both
    np.testing.assert_allclose(ov, ort, rtol=1e-3, atol=1e-4)


def test_openvino_rows_or_the_reason(nano_pth: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = ModelBenchConfig(weights=str(nano_pth), batches=(1,), sizes=(320,), backends=("openvino",), threads=1,
                           repeats=1, warmup=0, onnx_dir=tmp_path)
    if importlib.util.find_spec("openvino") is not None:
        (row,) = run_model_bench(cfg)
        assert row.name == "openvino b1 320" and row.fps and row.fps > 0 and row.skipped is None
    monkeypatch.setitem(sys.modules, "openvino", None)
    (row,) = run_model_bench(cfg)
    assert row.fps is None and row.skipped and "pip install" in row.skipped
