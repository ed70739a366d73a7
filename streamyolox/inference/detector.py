"""`Detector`: image in, `Detections` out (letterbox -> backend -> postprocess), for scripts and `detect`."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from streamyolox.detections import Detections
from streamyolox.inference.backends import Backend, make_backend
from streamyolox.model.spec import ModelSpec


class Detector:
    """Runs one model on single images with the official pre- and post-processing.

    Example:
        >>> det = Detector(ModelSpec(name="yolox-nano", weights="yolox_nano.pth"))
        >>> dets = det(cv2.imread("dog.jpg"))  # Detections in image pixels
    """

    def __init__(self, spec: ModelSpec, score_threshold: float = 0.25, iou_threshold: float = 0.45,
                 class_agnostic: bool = False, threads: int | None = None) -> None:
        self.backend: Backend = make_backend(spec, threads=threads)
        self.spec = spec
        self.score_threshold = score_threshold
        self.iou_threshold = iou_threshold
        self.class_agnostic = class_agnostic

    @property
    def class_names(self) -> Sequence[str]:
        return self.backend.class_names

    def __call__(self, image: np.ndarray) -> Detections:
        """image (ndarray[H, W, 3] uint8, BGR) -> Detections (xyxy in image pixels)."""
        from streamyolox.ops import letterbox, postprocess

        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected an HxWx3 uint8 BGR image, got shape {image.shape} {image.dtype}")
        tensor, ratio = letterbox(image, self.backend.input_size)
        pred = self.backend(tensor[None])[0]
        return postprocess(pred, ratio, score_threshold=self.score_threshold, iou_threshold=self.iou_threshold,
                           class_agnostic=self.class_agnostic, class_names=self.class_names)
