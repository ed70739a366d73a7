"""Image folders and globs: one frame per image, in sorted path order."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import numpy as np

from streamyolox.sources.av_reader import CorruptInput


def read_images(paths: tuple[str, ...], on_corrupt: str, log: logging.Logger,
                on_bad: Callable[[int, str], None] | None = None) -> Iterator[tuple[int, str, np.ndarray]]:
    """Yield ``(index in paths, path, image)`` per readable image; image is ndarray[H, W, 3] uint8 BGR.

    An unreadable image is logged and skipped (``on_corrupt="skip"``, `on_bad(index, path)` is called) or
    raises `CorruptInput` (``"stop"``). Grayscale and alpha images are converted to 3-channel BGR.
    """
    # cv2 imported here, not at the top: the runner imports this module (through the decode stage's config)
    # and cv2 is ~37 MB of its RSS (AMD EPYC, opencv 5.1) that it never uses
    import cv2

    for index, path in enumerate(paths):
        image = cv2.imread(path, cv2.IMREAD_COLOR)
        if image is None:
            message = f"{path}: unreadable image (frame {index})"
            if on_corrupt == "stop":
                raise CorruptInput(message, index)
            log.warning("%s, skipped (on_corrupt=skip)", message)
            if on_bad is not None:
                on_bad(index, path)
            continue
        yield index, path, image
