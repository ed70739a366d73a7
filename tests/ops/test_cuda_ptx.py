"""The numba.cuda kernels type-check and compile to sm_90 PTX with the real (non-simulated) compiler — the
simulator never types them. Runs wherever NVVM is installed (no GPU needed); skips elsewhere."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import sys, types
from numba import types as T
import numba.cuda.dispatcher as dispatcher
from numba.cuda import compile_ptx
# Device helpers ask the current device for its compute capability: answer sm_90 without a driver.
dispatcher.get_current_device = lambda: types.SimpleNamespace(compute_capability=(9, 0))
try:
    from numba.cuda.cudadrv.nvvm import NVVM
    NVVM()
except Exception as exc:
    print(f"NVVM unavailable: {exc}".splitlines()[0]); sys.exit(77)
import streamyolox.ops.cuda_kernels as K
f2, f1, i1, i64 = T.Array(T.float32, 2, "C"), T.float32[::1], T.int32[::1], T.int64[::1]
m2 = T.Array(T.uint64, 2, "C")
sigs = {
    "init_kernel": (i1, f1),
    "select_kernel": (T.float32[:, :], T.float32, f2, f1, T.boolean, f2, f1, i64, i1, i1, f1),
    "rank_kernel": (T.int64, f1, i1, f2, i64, f1, T.boolean, i1, f2),
    "iou_mask_kernel": (T.int64, f2, T.float64, m2),
    "reduce_kernel": (T.int64, T.int64, m2, i1, i1),
    "gather_kernel": (i1, i1, i1, f2, f1, i64, T.float32, f2, f1, i64),
}
for name, sig in sigs.items():
    ptx, _ = compile_ptx(getattr(K, name).py_func, sig, cc=(9, 0))
    # Products feeding additions must be non-contractible mul.rn (bit parity with numpy).
    if name in ("rank_kernel", "iou_mask_kernel"):
        assert "mul.rn.f32" in ptx, name
    print(name, "ok")
"""


def test_kernels_compile_to_ptx() -> None:
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    env["PYTHONPATH"] = str(REPO)
    proc = subprocess.run([sys.executable, "-c", SCRIPT], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)
    if proc.returncode == 77:
        pytest.skip(proc.stdout.strip())
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert proc.stdout.count(" ok") == 6
