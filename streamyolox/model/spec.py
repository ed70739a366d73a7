"""`ModelSpec`: which YOLOX to run and how; shared by `detect`, the pipeline's `model:` block and the trainer."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from typing import Literal

from streamyolox.config_fields import RESOLVED_KEY, OptionError

_DEVICE = re.compile(r"cpu|cuda(:\d+)?")
STRIDE = 32  # the coarsest YOLOX feature map: an input side must divide by it (the decode grids assume so)


@dataclass
class ModelSpec:
    """The `model:` block of a pipeline.

    Attributes:
        name: a zoo name (`yolox-nano` ... `yolox-x`, `yolox-darknet53`); a project checkpoint may override it.
        weights: a path (.pth official or project checkpoint, .onnx) or a zoo name resolved through
            `STREAMYOLOX_WEIGHTS_DIR`, the cache, or a download.
        device: `cpu`, `cuda` or `cuda:N`.
        input_size: model input (height, width), each a multiple of 32; the letterbox target (None: the
            checkpoint's or zoo default; a checked pipeline has it filled in).
        precision: `fp32`, `tf32` (CUDA: TensorFloat-32 convolutions) or `fp16` (CUDA only).
        backend: `auto`, `torch`, `onnxruntime` or `openvino` (`auto`: torch on CUDA; on the CPU the faster of
            onnxruntime and OpenVINO, measured once on this machine).
        class_names: not a YAML option: the label table, filled in once when a pipeline is checked
            (`streamyolox.graph.preflight`) so that no stage re-reads the weights for it.
    """

    name: str = "yolox-nano"
    weights: str | None = None
    device: str = "cpu"
    input_size: tuple[int, int] | None = None
    precision: Literal["fp32", "tf32", "fp16"] = "fp32"
    backend: Literal["auto", "torch", "onnxruntime", "openvino"] = "auto"
    class_names: tuple[str, ...] | None = field(default=None, metadata={RESOLVED_KEY: True})

    def __post_init__(self) -> None:
        check_model_name(self.name)
        if not isinstance(self.device, str) or not _DEVICE.fullmatch(self.device):
            raise OptionError("device", f"expected cpu, cuda or cuda:N, got {self.device!r}")
        for i, side in enumerate(self.input_size or ()):
            if not isinstance(side, int) or isinstance(side, bool) or side <= 0 or side % STRIDE:
                raise OptionError(f"input_size[{i}]", f"expected a positive multiple of {STRIDE}, got {side!r}")
        if self.precision != "fp32" and self.device == "cpu":
            raise OptionError("precision", f"{self.precision} needs a CUDA device (model.device is cpu)")


def check_model_name(name: str) -> None:
    """Raise `OptionError` for a name that is neither a zoo model nor `custom`, suggesting the close one."""
    from streamyolox.model.zoo import ZOO, canonical_name

    try:
        canonical_name(name)
    except (ValueError, AttributeError):
        key = str(name).strip().lower().replace("_", "-")
        close = difflib.get_close_matches(key if key.startswith("yolox-") else f"yolox-{key}", list(ZOO), n=1,
                                          cutoff=0.8)  # the shared "yolox-" makes any name look close
        hint = f"did you mean {close[0]!r}?" if close else f"expected one of {', '.join(ZOO)} or custom"
        raise OptionError("name", f"unknown model {name!r} ({hint})") from None
