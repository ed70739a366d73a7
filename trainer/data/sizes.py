"""Image size from the file header (no full decode) and image reading with a clear error."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def image_size(path: Path) -> tuple[int, int]:
    """``(width, height)`` of an image file, read from its header.

    Raises:
        ValueError: the file is not a readable image.
    """
    from PIL import Image  # header-only size reads; imported here so training needs no Pillow

    try:
        with Image.open(path) as im:
            return int(im.width), int(im.height)
    except OSError as exc:
        raise ValueError(f"{path}: not a readable image ({exc})") from None


def read_image(path: Path) -> np.ndarray:
    """Decode an image as BGR uint8 [H, W, 3].

    Raises:
        ValueError: the file is missing or not decodable.
    """
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f"{path}: cannot read image")
    return img
