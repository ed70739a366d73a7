"""benchmarks/gpu_bench.py and scripts/device_check.sh stay runnable: syntax, helpers, the no-GPU exit."""

from __future__ import annotations

import importlib.util
import subprocess
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gpu_bench", REPO / "benchmarks" / "gpu_bench.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def test_helpers(bench: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    calls = []
    ms = bench.median_ms(lambda: calls.append(1), lambda: None, warmup=2, iters=3, repeats=4)
    assert len(calls) == 2 + 3 * 4 and ms >= 0
    img = bench.frame(72, 128)
    assert img.shape == (72, 128, 3) and img.dtype.name == "uint8"
    bench.print_table([{"section": "s", "name": "n", "path": "p", "ms": 1.5, "fps": 666.7},
                       {"section": "s", "name": "n", "path": "q", "error": "boom"}])
    out = capsys.readouterr().out
    assert "1.500" in out and "667" in out and "boom" in out


def test_no_cuda_exit(bench: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: device_check.sh runs the real benchmark")
    assert bench.main([]) == 2
    assert "no CUDA device" in capsys.readouterr().err


def test_device_check_script_parses() -> None:
    proc = subprocess.run(["bash", "-n", str(REPO / "scripts" / "device_check.sh")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
