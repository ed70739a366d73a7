"""Fixtures of the inference tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="package")
def images(dog_jpg: Path, street_720p: Path) -> list[np.ndarray]:
    """dog.jpg and four frames across the 720p street pan (start, thirds, last), BGR."""
    import av
    import cv2

    frames = [cv2.imread(str(dog_jpg))]
    with av.open(str(street_720p)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i in (0, 100, 200, 299):
                frames.append(frame.to_ndarray(format="bgr24"))
    assert len(frames) == 5
    return frames
