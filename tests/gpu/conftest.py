"""GPU test helpers: skip reasons for each CUDA stack, the yolox-nano weights wherever they are.

These tests run on a lent GPU machine through scripts/device_check.sh (``pytest -m gpu``); everywhere else
they skip with the reason. They must not import av, pyzmq or pycocotools (absent on that machine).
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import SHARED


def _cupy_reason() -> str | None:
    try:
        import cupy as cp

        return None if cp.cuda.runtime.getDeviceCount() > 0 else "CuPy sees no CUDA device"
    except Exception as exc:  # ImportError, or a CUDA driver/runtime error
        return f"CuPy unavailable: {type(exc).__name__}: {exc}".splitlines()[0]


def _numba_reason() -> str | None:
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        return "NUMBA_ENABLE_CUDASIM=1: the real-GPU tests need the driver"
    try:
        from numba import cuda

        return None if cuda.is_available() else "numba.cuda sees no CUDA device"
    except Exception as exc:
        return f"numba.cuda unavailable: {type(exc).__name__}: {exc}".splitlines()[0]


def _torch_reason() -> str | None:
    try:
        import torch

        return None if torch.cuda.is_available() else "torch sees no CUDA device"
    except Exception as exc:
        return f"torch unavailable: {exc}".splitlines()[0]


def need(stack: str) -> None:
    """Skip the calling test unless ``stack`` ("cupy", "numba", "torch") has a CUDA device."""
    reason = {"cupy": _cupy_reason, "numba": _numba_reason, "torch": _torch_reason}[stack]()
    if reason:
        pytest.skip(reason)


def nano_weights() -> Path | None:
    """yolox_nano.pth from $STREAMYOLOX_WEIGHTS_DIR, then ../shared/weights; None when neither has it."""
    for folder in (os.environ.get("STREAMYOLOX_WEIGHTS_DIR"), SHARED / "weights"):
        if folder and (Path(folder) / "yolox_nano.pth").is_file():
            return Path(folder) / "yolox_nano.pth"
    return None


def test_image() -> np.ndarray:
    """dog.jpg when ../shared (or $STREAMYOLOX_SHARED) has it, else a smooth synthetic 576x768 scene."""
    path = SHARED / "media" / "dog.jpg"
    img = cv2.imread(str(path)) if path.is_file() else None
    if img is not None:
        return img
    yy, xx = np.mgrid[0:576, 0:768]
    img = np.stack([(xx * 255 / 767), (yy * 255 / 575), ((xx + yy) % 256)], -1).astype(np.uint8)
    cv2.rectangle(img, (150, 200), (330, 540), (40, 90, 160), -1)
    cv2.circle(img, (560, 120), 60, (200, 200, 30), -1)
    return img


test_image.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test
