"""`letterbox` stage: resize keeping aspect ratio, image top-left, pad 114 (the official YOLOX contract)."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from streamyolox.config_fields import OptionError, ranged
from streamyolox.model.spec import ModelSpec
from streamyolox.stages.base import Stage, StageConfig
from streamyolox.stages.packet import Packet


@dataclass
class LetterboxConfig(StageConfig):
    """size: square model input side, which must be the model's (default: the model block's input_size);
    device: auto follows the model's device (CuPy kernel on CUDA, cv2 on CPU), else cpu, cuda or cuda:N;
    keep_frame: pass the full decoded frame on (None: the runtime decides, dropping it when no stage
    downstream reads it, `streamyolox.graph.placement`); dtype: of the model input on the CPU, float32, or
    uint8 (4x fewer bytes to ship; a yolox stage converts it, with the same result), auto: the runtime
    decides (uint8 when only CPU yolox stages consume it)."""

    size: int | None = ranged(None, ge=1)
    device: str = "auto"
    keep_frame: bool | None = None
    dtype: Literal["auto", "float32", "uint8"] = "auto"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", self.device):
            raise OptionError("device", f"expected auto, cpu, cuda or cuda:N, got {self.device!r}")
        if self.dtype not in ("auto", "float32", "uint8"):
            raise OptionError("dtype", f"expected auto, float32 or uint8, got {self.dtype!r}")


def _model_input_size(model: ModelSpec | None) -> tuple[int, int]:
    """The model block's input size, else the size its checkpoint or zoo entry records."""
    if model is not None and model.input_size:
        return (int(model.input_size[0]), int(model.input_size[1]))
    from streamyolox.inference.metadata import default_input_size

    return default_input_size(model.weights if model else None, model.name if model else "yolox-nano")


class LetterboxStage(Stage):
    kind = "letterbox"
    Config = LetterboxConfig
    description = "resize + pad frames to the model input (CPU: cv2, CUDA: CuPy kernel)"

    def open(self) -> None:
        cfg: LetterboxConfig = self.config
        model = self.ctx.model
        if cfg.size is not None:
            self.size = (cfg.size, cfg.size)
        else:
            self.size = _model_input_size(model)
        device = cfg.device if cfg.device != "auto" else (model.device if model is not None else "cpu")
        # run on its own (no runtime to decide): the documented packet, full frame and float32 input
        self._keep_frame = cfg.keep_frame is not False
        # the planes of a decode stage's `pixel_format: yuv420p`; validation lets them reach only a CPU
        # letterbox that drops the frame (no BGR frame is made to keep)
        self._from_yuv: Callable[..., tuple[Any, float]] | None = None
        if device.startswith("cuda"):
            from streamyolox.ops import letterbox_gpu

            self._fn = letterbox_gpu
        else:
            from streamyolox.ops import letterbox, letterbox_yuv420

            dtype = np.uint8 if cfg.dtype == "uint8" else np.float32
            self._fn = functools.partial(letterbox, dtype=dtype)
            if not self._keep_frame:
                self._from_yuv = functools.partial(letterbox_yuv420, dtype=dtype)

    def process(self, packet: Packet) -> list[Packet]:
        if packet.yuv is not None:
            if self._from_yuv is None:
                raise ValueError(f"letterbox: frame {packet.meta.frame} came as YUV planes (decode pixel_format: "
                                 "yuv420p), which only a CPU letterbox with keep_frame: false takes")
            packet.image, packet.ratio = self._from_yuv(packet.yuv, self.size)
            packet.yuv = None
            return [packet]
        if packet.frame is None:
            raise ValueError(f"letterbox: packet of frame {packet.meta.frame} carries no frame")
        packet.image, packet.ratio = self._fn(packet.frame, self.size)
        if not self._keep_frame:
            packet.frame = None  # nothing downstream reads it: do not ship 2.7 MB (720p) per frame
        return [packet]
