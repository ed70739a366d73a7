"""The YOLOX detector: neck (with backbone) + decoupled head, no loss inside (the trainer owns that)."""

from __future__ import annotations

from torch import Tensor, nn

from streamyolox.model.blocks import BaseConv
from streamyolox.model.head import YOLOXHead, decode_outputs, flatten_levels


class YOLOX(nn.Module):
    """YOLOX = `backbone` (a neck owning the backbone, official naming) + `head`.

    Attributes:
        name: zoo name or `custom`; depth, width, depthwise, act: the architecture it was built with.
    """

    def __init__(
        self,
        backbone: nn.Module,
        head: YOLOXHead,
        name: str = "custom",
        depth: float = 1.0,
        width: float = 1.0,
        depthwise: bool = False,
        act: str = "silu",
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.name = name
        self.depth = depth
        self.width = width
        self.depthwise = depthwise
        self.act = act

    @property
    def strides(self) -> tuple[int, ...]:
        return self.head.strides

    @property
    def num_classes(self) -> int:
        return self.head.num_classes

    def forward_raw(self, x: Tensor) -> list[Tensor]:
        """x [B, 3, H, W] (BGR 0-255, H and W multiples of 32) -> per stride level [B, 5+C, H/s, W/s]:
        raw reg (4), objectness logit (1), class logits (C)."""
        if x.dim() != 4 or x.shape[1] != 3 or x.shape[-2] % 32 or x.shape[-1] % 32:
            raise ValueError(
                f"YOLOX input must be [B, 3, H, W] with H, W multiples of 32, got {list(x.shape)}"
            )
        return self.head(self.backbone(x))

    def forward(self, x: Tensor, decode: bool = True) -> Tensor:
        """x [B, 3, H, W] -> [B, N, 5+C].

        decode=True: (cx, cy, w, h) in input pixels, sigmoid obj and cls (official eval output).
        decode=False: raw reg, sigmoid obj and cls (official ONNX export output).
        """
        raw = self.forward_raw(x)
        outputs = flatten_levels(raw)
        if not decode:
            return outputs
        hw = [(int(r.shape[-2]), int(r.shape[-1])) for r in raw]
        return decode_outputs(outputs, hw, self.strides)

    def fuse(self) -> YOLOX:
        """Fold every BatchNorm into its conv, in place (for inference; needs eval-mode statistics)."""
        for module in self.modules():
            if isinstance(module, BaseConv):
                module.fuse()
        return self

    @property
    def is_fused(self) -> bool:
        return not any(isinstance(m, nn.BatchNorm2d) for m in self.modules())
