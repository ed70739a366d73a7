"""Fixtures for the ops tests: yolox_nano's real output on dog.jpg through onnxruntime."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from streamyolox.ops import decode_ref, letterbox_ref


@pytest.fixture(scope="session")
def dog_image(dog_jpg: Path) -> np.ndarray:
    img = cv2.imread(str(dog_jpg))
    assert img is not None
    return img


@pytest.fixture(scope="session")
def dog_raw(nano_onnx: Path, dog_image: np.ndarray) -> tuple[np.ndarray, float]:
    """(undecoded output [1, 3549, 85], ratio) of the official ONNX export on dog.jpg."""
    ort = pytest.importorskip("onnxruntime")
    image, ratio = letterbox_ref(dog_image, (416, 416))
    session = ort.InferenceSession(str(nano_onnx), providers=["CPUExecutionProvider"])
    raw = session.run(None, {"images": image[None]})[0]
    return raw, ratio


@pytest.fixture(scope="session")
def dog_pred(dog_raw: tuple[np.ndarray, float]) -> tuple[np.ndarray, float]:
    """(decoded prediction [3549, 85], ratio) on dog.jpg."""
    raw, ratio = dog_raw
    return decode_ref(raw, (416, 416))[0], ratio
