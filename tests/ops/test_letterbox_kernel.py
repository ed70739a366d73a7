"""kernels/letterbox.cu: compiled for sm_90 with nvcc, and run on the CPU through a host C++ harness
(the same source, one call per CUDA thread) against letterbox_ref."""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from streamyolox.ops import letterbox_ref
from streamyolox.ops.gpu_letterbox import BLOCK, KERNELS, LetterboxLaunch

NVCC = shutil.which("nvcc") or ("/usr/local/bin/nvcc" if Path("/usr/local/bin/nvcc").exists() else None)
CXX = shutil.which("g++") or shutil.which("clang++")

HARNESS = r"""
#include <math.h>
#define __global__
#define __device__
#define __forceinline__ inline
#define __restrict__
struct lb_dim3 { unsigned x, y, z; };
static lb_dim3 threadIdx, blockIdx, blockDim;
#include "%(cu)s"
extern "C" void run(const unsigned char* src, int sh, int sw, long long row, float* dst, int dh, int dw,
                    int rh, int rw, double sx, double sy) {
    blockDim = {%(bx)d, %(by)d, 1};
    for (unsigned by = 0; by < (dh + blockDim.y - 1) / blockDim.y; ++by)
        for (unsigned bx = 0; bx < (dw + blockDim.x - 1) / blockDim.x; ++bx)
            for (unsigned ty = 0; ty < blockDim.y; ++ty)
                for (unsigned tx = 0; tx < blockDim.x; ++tx) {
                    blockIdx = {bx, by, 0};
                    threadIdx = {tx, ty, 0};
                    letterbox_u8_chw_f32(src, sh, sw, row, dst, dh, dw, rh, rw, sx, sy);
                }
}
"""


@pytest.mark.skipif(NVCC is None, reason="nvcc not found (CUDA toolkit absent)")
@pytest.mark.parametrize("source", sorted(KERNELS.glob("*.cu")), ids=lambda p: p.name)
def test_nvcc_compiles_sm90(source: Path, tmp_path: Path) -> None:
    ptx = tmp_path / "k.ptx"
    proc = subprocess.run([NVCC, "-arch=sm_90", "--ptx", "--fmad=false", "-o", str(ptx), str(source)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    text = ptx.read_text()
    assert ".entry letterbox_u8_chw_f32" in text
    assert "fma.rn.f64" not in text  # the source coordinate rounds as cv2's (d + 0.5) * scale - 0.5


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> ctypes.CDLL:
    if CXX is None:
        pytest.skip("no host C++ compiler (g++/clang++) to run the kernel source on the CPU")
    tmp = tmp_path_factory.mktemp("lbk")
    cpp = tmp / "harness.cpp"
    cpp.write_text(HARNESS % {"cu": KERNELS / "letterbox.cu", "bx": BLOCK[0], "by": BLOCK[1]})
    lib = tmp / "harness.so"
    proc = subprocess.run([CXX, "-O2", "-ffp-contract=off", "-shared", "-fPIC", "-o", str(lib), str(cpp)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return ctypes.CDLL(str(lib))


def run_kernel(lib: ctypes.CDLL, img: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, float]:
    plan = LetterboxLaunch.plan(img.shape[0], img.shape[1], size)
    out = np.full((3, *size), np.nan, np.float32)
    c = ctypes
    lib.run.argtypes = [c.c_void_p, c.c_int, c.c_int, c.c_longlong, c.c_void_p, c.c_int, c.c_int, c.c_int,
                        c.c_int, c.c_double, c.c_double]
    lib.run(img.ctypes.data, img.shape[0], img.shape[1], img.strides[0], out.ctypes.data, size[0], size[1],
            plan.rh, plan.rw, plan.scale_x, plan.scale_y)
    return out, plan.ratio


@pytest.mark.parametrize("shape", [(1080, 1920), (720, 1280), (576, 768), (480, 640), (1330, 1330), (333, 517)])
@pytest.mark.parametrize("size", [(416, 416), (640, 640), (384, 640)])
def test_kernel_source_equals_reference(harness: ctypes.CDLL, shape: tuple[int, int], size: tuple[int, int]) -> None:
    img = np.random.default_rng(shape[0]).integers(0, 256, (*shape, 3), dtype=np.uint8)
    got, r = run_kernel(harness, img, size)
    ref, r_ref = letterbox_ref(img, size)
    assert r == r_ref
    diff = np.abs(got - ref)
    if min(size[0] / shape[0], size[1] / shape[1]) <= 1:  # downscale: cv2's arithmetic exactly
        np.testing.assert_array_equal(got, ref)
    else:
        assert diff.max() <= 1 and diff.mean() < 0.05


@pytest.mark.parametrize("shape", [(100, 37), (37, 100), (7, 5)])
def test_kernel_source_upscale_within_one_level(harness: ctypes.CDLL, shape: tuple[int, int]) -> None:
    img = np.random.default_rng(1).integers(0, 256, (*shape, 3), dtype=np.uint8)
    got, _ = run_kernel(harness, img, (416, 416))
    diff = np.abs(got - letterbox_ref(img, (416, 416))[0])
    assert diff.max() <= 1 and diff.mean() < 0.05


def test_pitched_rows_and_real_image(harness: ctypes.CDLL, dog_image: np.ndarray) -> None:
    pitched = np.zeros((576, 800, 3), np.uint8)[:, :768]  # rows 2400 bytes apart, 2304 used
    pitched[:] = dog_image
    got, _ = run_kernel(harness, pitched, (416, 416))
    np.testing.assert_array_equal(got, letterbox_ref(dog_image, (416, 416))[0])
