"""`streamyolox weights list|download|export` end to end through the CLI entry point."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from streamyolox.cli import main


@pytest.fixture(autouse=True)
def offline_env(tmp_path, monkeypatch):
    monkeypatch.setenv("STREAMYOLOX_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("STREAMYOLOX_WEIGHTS_DIR", raising=False)
    monkeypatch.setenv("STREAMYOLOX_WEIGHTS_URL", "http://127.0.0.1:9/release")


def test_list_shows_local_weights(nano_pth, monkeypatch, capsys):
    monkeypatch.setenv("STREAMYOLOX_WEIGHTS_DIR", str(nano_pth.parent))
    monkeypatch.setenv("COLUMNS", "250")
    assert main(["weights", "list"]) == 0
    out = capsys.readouterr().out
    assert "yolox-darknet53" in out and str(nano_pth) in out


def test_download_offline_fails_with_one_line(tmp_path, capsys):
    assert main(["weights", "download", "yolox-m", "--dir", str(tmp_path / "w")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "put yolox_m.pth in $STREAMYOLOX_WEIGHTS_DIR" in err


def test_export_runs_under_onnxruntime(nano_pth, tmp_path, capsys):
    out = tmp_path / "nano.onnx"
    args = ["weights", "export", "--weights", str(nano_pth), "--output", str(out), "--size", "320", "256"]
    assert main([*args, "--static-batch"]) == 0
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape == [1, 3, 320, 256]
    result = session.run(None, {"images": np.zeros((1, 3, 320, 256), np.float32)})[0]
    assert result.shape == (1, 40 * 32 + 20 * 16 + 10 * 8, 85)
    assert "nano.onnx: yolox-nano, input images [1, 3, 320, 256]" in capsys.readouterr().out


def test_export_missing_weights(tmp_path, capsys):
    args = [
        "weights",
        "export",
        "--weights",
        str(tmp_path / "none.pth"),
        "--output",
        str(tmp_path / "x.onnx"),
    ]
    assert main(args) == 1
    assert "weights file not found" in capsys.readouterr().err
    assert not (tmp_path / "x.onnx").exists()
