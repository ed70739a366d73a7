"""Shared fixtures: the `../shared` folder (weights, media, references) beside the checkout."""

from __future__ import annotations

import os
import random
import socket
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("STREAMYOLOX_SHARED", REPO.parent / "shared"))


def shared_file(*parts: str) -> Path:
    """Path inside ../shared, or skip the test with the reason when it is absent (a user's fresh clone)."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} not found: the shared weights/media folder is not beside this checkout")
    return path


def detect_from_planes(detector: Any, frame: Any) -> list[dict[str, Any]]:
    """What a pipeline on the default placement reports for one PyAV frame: the model on `letterbox_yuv420`
    of the decoder's planes (`pixel_format: auto` -> yuv420p), as JSON detections."""
    from streamyolox.ops import letterbox_yuv420, postprocess
    from streamyolox.sources.av_reader import yuv420_planes

    planes = yuv420_planes(frame)
    assert planes is not None, frame.format.name
    image, ratio = letterbox_yuv420(planes, detector.backend.input_size)
    pred = detector.backend(image[None])[0]
    return postprocess(pred, ratio, class_names=detector.class_names).to_json()  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def nano_pth() -> Path:
    return shared_file("weights", "yolox_nano.pth")


@pytest.fixture(scope="session")
def nano_onnx() -> Path:
    return shared_file("weights", "yolox_nano.onnx")


@pytest.fixture(scope="session")
def dog_jpg() -> Path:
    return shared_file("media", "dog.jpg")


@pytest.fixture(scope="session")
def street_720p() -> Path:
    return shared_file("media", "street_pan_720p.mp4")


@pytest.fixture(scope="session")
def official_state_dicts() -> Path:
    return shared_file("reference", "official_state_dicts.json")


@pytest.fixture(scope="session")
def dog_input_416(dog_jpg: Path):
    """dog.jpg letterboxed the official way for a 416x416 model: [1, 3, 416, 416] float32 BGR 0-255 (numpy)."""
    import cv2
    import numpy as np

    img = cv2.imread(str(dog_jpg))
    r = min(416 / img.shape[0], 416 / img.shape[1])
    size = (int(img.shape[1] * r), int(img.shape[0] * r))
    resized = cv2.resize(img, size, interpolation=cv2.INTER_LINEAR)
    padded = np.full((416, 416, 3), 114, dtype=np.uint8)
    padded[: resized.shape[0], : resized.shape[1]] = resized
    return np.ascontiguousarray(padded.transpose(2, 0, 1)[None], dtype=np.float32)


def free_endpoint() -> str:
    """A free loopback port below the ephemeral range: a subscriber that connects before the publisher
    binds can otherwise connect to itself (same source and destination port) and hold the port."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for port in random.sample(range(low // 2, low), 200):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return f"tcp://127.0.0.1:{port}"
    raise RuntimeError("no free port")
