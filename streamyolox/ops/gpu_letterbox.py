"""Letterbox on the GPU (CuPy): the official YOLOX ``preproc`` producing a CHW float32 canvas in device memory.

The CUDA source (`kernels/letterbox.cu`) emulates cv2's fixed-point INTER_LINEAR, so the output equals
`letterbox_ref` exactly for downscales (video frames into the network) and within one grey level for
upscales. Importing this module imports CuPy: load it lazily (see `streamyolox.ops`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from streamyolox.ops.letterbox import letterbox_geometry

KERNELS = Path(__file__).with_name("kernels")
NVRTC_OPTIONS = ("--fmad=false",)  # the source coordinate must round as cv2's double arithmetic does
BLOCK = (32, 8, 1)


def kernel_source(name: str) -> str:
    """Text of ``kernels/<name>.cu`` (package data)."""
    return (KERNELS / f"{name}.cu").read_text()


@dataclass(frozen=True)
class LetterboxLaunch:
    """Scalar arguments of ``letterbox_u8_chw_f32`` for an ``src_h x src_w`` image into ``size (h, w)``."""

    ratio: float
    rh: int
    rw: int
    scale_x: float
    scale_y: float

    @classmethod
    def plan(cls, src_h: int, src_w: int, size: tuple[int, int]) -> LetterboxLaunch:
        r, rh, rw = letterbox_geometry(src_h, src_w, size)
        if rh < 1 or rw < 1:
            raise ValueError(f"letterbox_gpu: image {src_h}x{src_w} shrinks to nothing in {tuple(size)}")
        # cv2: inv_scale = dst / src, scale = 1 / inv_scale, both double.
        return cls(r, rh, rw, 1.0 / (rw / src_w), 1.0 / (rh / src_h))


@cache
def _kernel(device_id: int) -> Any:
    import cupy as cp

    with cp.cuda.Device(device_id):
        module = cp.RawModule(code=kernel_source("letterbox"), options=NVRTC_OPTIONS)
        return module.get_function("letterbox_u8_chw_f32")


def _device_image(img: Any) -> Any:
    import cupy as cp

    arr = cp.asarray(img)  # host arrays are uploaded; CUDA arrays (torch, CuPy) are used in place
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8 or 0 in arr.shape:
        raise ValueError(f"letterbox_gpu: expected an HxWx3 uint8 BGR image, got shape {arr.shape} dtype {arr.dtype}")
    if arr.strides[1:] != (3, 1) or arr.strides[0] < 3 * arr.shape[1]:
        arr = cp.ascontiguousarray(arr)
    return arr


def letterbox_gpu(img: Any, size: tuple[int, int], out: Any = None) -> tuple[Any, float]:
    """GPU letterbox, equal to `letterbox_ref` (see the module doc for the tolerance).

    Args:
        img ([H, W, 3] uint8 BGR): host numpy array (uploaded) or a CUDA array (CuPy, torch) used in place;
            rows may be padded (pitched) but pixels must be packed.
        size: network input ``(h, w)``.
        out ([3, h, w] float32 CUDA array | None): written in place, e.g. one slot of a torch batch tensor.

    Returns:
        (CuPy ndarray[3, h, w] float32 on the current device, ratio r). Runs on CuPy's current stream.
    """
    import cupy as cp

    src = _device_image(img)
    plan = LetterboxLaunch.plan(src.shape[0], src.shape[1], size)
    shape = (3, int(size[0]), int(size[1]))
    dst = cp.empty(shape, cp.float32) if out is None else cp.asarray(out)
    if dst.shape != shape or dst.dtype != cp.float32 or not dst.flags.c_contiguous:
        raise ValueError(f"letterbox_gpu: out must be a contiguous {shape} float32 array, got {dst.shape} {dst.dtype}")
    grid = ((shape[2] + BLOCK[0] - 1) // BLOCK[0], (shape[1] + BLOCK[1] - 1) // BLOCK[1], 1)
    args = (src, np.int32(src.shape[0]), np.int32(src.shape[1]), np.int64(src.strides[0]), dst,
            np.int32(shape[1]), np.int32(shape[2]), np.int32(plan.rh), np.int32(plan.rw),
            np.float64(plan.scale_x), np.float64(plan.scale_y))
    _kernel(src.device.id)(grid, BLOCK, args)
    return dst, plan.ratio
