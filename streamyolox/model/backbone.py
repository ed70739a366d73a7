"""YOLOX backbones: CSPDarknet (YOLOX-Nano ... X) and Darknet53 (YOLOX-Darknet53, the YOLOv3 backbone)."""

from __future__ import annotations

from typing import ClassVar

from torch import Tensor, nn

from streamyolox.model.blocks import BaseConv, CSPLayer, Focus, ResLayer, SPPBottleneck, conv_class

FEATURES = ("dark3", "dark4", "dark5")


class CSPDarknet(nn.Module):
    """CSPDarknet scaled by `dep_mul` (bottleneck counts) and `wid_mul` (channels).

    `forward(x)` with x [B, 3, H, W] returns {"dark3": [B, 256w, H/8, W/8], "dark4": [B, 512w, H/16, W/16],
    "dark5": [B, 1024w, H/32, W/32]} (w = `wid_mul`); H and W must be multiples of 32.
    """

    def __init__(
        self,
        dep_mul: float,
        wid_mul: float,
        out_features: tuple[str, ...] = FEATURES,
        depthwise: bool = False,
        act: str = "silu",
    ) -> None:
        super().__init__()
        self.out_features = out_features
        conv = conv_class(depthwise)
        base = int(wid_mul * 64)
        depth = max(round(dep_mul * 3), 1)
        self.stem = Focus(3, base, ksize=3, act=act)
        self.dark2 = nn.Sequential(
            conv(base, base * 2, 3, 2, act=act),
            CSPLayer(base * 2, base * 2, n=depth, depthwise=depthwise, act=act),
        )
        self.dark3 = nn.Sequential(
            conv(base * 2, base * 4, 3, 2, act=act),
            CSPLayer(base * 4, base * 4, n=depth * 3, depthwise=depthwise, act=act),
        )
        self.dark4 = nn.Sequential(
            conv(base * 4, base * 8, 3, 2, act=act),
            CSPLayer(base * 8, base * 8, n=depth * 3, depthwise=depthwise, act=act),
        )
        self.dark5 = nn.Sequential(
            conv(base * 8, base * 16, 3, 2, act=act),
            SPPBottleneck(base * 16, base * 16, activation=act),
            CSPLayer(base * 16, base * 16, n=depth, shortcut=False, depthwise=depthwise, act=act),
        )

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        outputs: dict[str, Tensor] = {}
        for name in ("stem", "dark2", "dark3", "dark4", "dark5"):
            x = getattr(self, name)(x)
            outputs[name] = x
        return {k: v for k, v in outputs.items() if k in self.out_features}


class Darknet(nn.Module):
    """Darknet21/53 with the SPP block on dark5; every activation is LeakyReLU(0.1).

    `forward(x)` returns {"dark3": [B, 256, H/8, W/8], "dark4": [B, 512, H/16, W/16], "dark5": [B, 512, H/32, W/32]}.
    """

    depth2blocks: ClassVar[dict[int, tuple[int, ...]]] = {21: (1, 2, 2, 1), 53: (2, 8, 8, 4)}

    def __init__(
        self,
        depth: int = 53,
        in_channels: int = 3,
        stem_out_channels: int = 32,
        out_features: tuple[str, ...] = FEATURES,
    ) -> None:
        super().__init__()
        self.out_features = out_features
        self.stem = nn.Sequential(
            BaseConv(in_channels, stem_out_channels, 3, 1, act="lrelu"),
            *self._group(stem_out_channels, num_blocks=1, stride=2),
        )
        ch = stem_out_channels * 2
        blocks = self.depth2blocks[depth]
        self.dark2 = nn.Sequential(*self._group(ch, blocks[0], stride=2))
        self.dark3 = nn.Sequential(*self._group(ch * 2, blocks[1], stride=2))
        self.dark4 = nn.Sequential(*self._group(ch * 4, blocks[2], stride=2))
        ch *= 8
        self.dark5 = nn.Sequential(*self._group(ch, blocks[3], stride=2), *self._spp_block(ch, ch * 2))

    @staticmethod
    def _group(in_channels: int, num_blocks: int, stride: int) -> list[nn.Module]:
        return [
            BaseConv(in_channels, in_channels * 2, 3, stride, act="lrelu"),
            *[ResLayer(in_channels * 2) for _ in range(num_blocks)],
        ]

    @staticmethod
    def _spp_block(out_channels: int, in_channels: int) -> list[nn.Module]:
        return [
            BaseConv(in_channels, out_channels, 1, 1, act="lrelu"),
            BaseConv(out_channels, in_channels, 3, 1, act="lrelu"),
            SPPBottleneck(in_channels, out_channels, activation="lrelu"),
            BaseConv(out_channels, in_channels, 3, 1, act="lrelu"),
            BaseConv(in_channels, out_channels, 1, 1, act="lrelu"),
        ]

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        outputs: dict[str, Tensor] = {}
        for name in ("stem", "dark2", "dark3", "dark4", "dark5"):
            x = getattr(self, name)(x)
            outputs[name] = x
        return {k: v for k, v in outputs.items() if k in self.out_features}
