"""Runs cudasim_cases.py under numba's CUDA simulator in a subprocess (the env var must be set before
numba is imported, and must not leak into this process)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_postprocess_kernels_on_cuda_simulator() -> None:
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs",
           str(Path(__file__).with_name("cudasim_cases.py"))]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert " passed" in out and "skipped" not in out, out[-2000:]


def test_import_stays_cpu_only() -> None:
    code = ("import sys, streamyolox.ops as ops; from streamyolox.ops import *; "
            "bad = [m for m in ('cupy', 'numba.cuda', 'torch') if m in sys.modules]; "
            "assert not bad, bad; assert callable(ops.postprocess)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
