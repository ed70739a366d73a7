"""`letterbox` stage: resize keeping aspect ratio, image top-left, pad 114 (the official YOLOX contract)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from streamyolox.config_fields import OptionError, ranged
from streamyolox.model.spec import ModelSpec
from streamyolox.stages.base import Stage, StageConfig
from streamyolox.stages.packet import Packet


@dataclass
class LetterboxConfig(StageConfig):
    """size: square model input side, which must be the model's (default: the model block's input_size);
    device: auto follows the model's device (CuPy kernel on CUDA, cv2 on CPU), else cpu, cuda or cuda:N."""

    size: int | None = ranged(None, ge=1)
    device: str = "auto"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", self.device):
            raise OptionError("device", f"expected auto, cpu, cuda or cuda:N, got {self.device!r}")


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
        if device.startswith("cuda"):
            from streamyolox.ops import letterbox_gpu

            self._fn = letterbox_gpu
        else:
            from streamyolox.ops import letterbox

            self._fn = letterbox

    def process(self, packet: Packet) -> list[Packet]:
        if packet.frame is None:
            raise ValueError(f"letterbox: packet of frame {packet.meta.frame} carries no frame")
        packet.image, packet.ratio = self._fn(packet.frame, self.size)
        return [packet]
