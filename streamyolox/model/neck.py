"""YOLOX necks: YOLOPAFPN (PAN over CSPDarknet) and YOLOFPN (YOLOv3 FPN over Darknet53).

Both own their backbone as `self.backbone` (official key prefix `backbone.backbone.`) and return the three
feature maps for strides 8, 16, 32.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from streamyolox.model.backbone import FEATURES, CSPDarknet, Darknet
from streamyolox.model.blocks import BaseConv, CSPLayer, conv_class


class YOLOPAFPN(nn.Module):
    """CSPDarknet + top-down FPN + bottom-up PAN.

    `forward(x)` returns ([B, 256w, H/8, W/8], [B, 512w, H/16, W/16], [B, 1024w, H/32, W/32]), w = `width`.
    """

    def __init__(
        self,
        depth: float = 1.0,
        width: float = 1.0,
        in_features: tuple[str, ...] = FEATURES,
        in_channels: tuple[int, int, int] = (256, 512, 1024),
        depthwise: bool = False,
        act: str = "silu",
    ) -> None:
        super().__init__()
        self.backbone = CSPDarknet(depth, width, depthwise=depthwise, act=act)
        self.in_features = in_features
        conv = conv_class(depthwise)
        c0, c1, c2 = (int(c * width) for c in in_channels)
        n = round(3 * depth)
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")
        self.lateral_conv0 = BaseConv(c2, c1, 1, 1, act=act)
        self.C3_p4 = CSPLayer(2 * c1, c1, n, False, depthwise=depthwise, act=act)
        self.reduce_conv1 = BaseConv(c1, c0, 1, 1, act=act)
        self.C3_p3 = CSPLayer(2 * c0, c0, n, False, depthwise=depthwise, act=act)
        self.bu_conv2 = conv(c0, c0, 3, 2, act=act)
        self.C3_n3 = CSPLayer(2 * c0, c1, n, False, depthwise=depthwise, act=act)
        self.bu_conv1 = conv(c1, c1, 3, 2, act=act)
        self.C3_n4 = CSPLayer(2 * c1, c2, n, False, depthwise=depthwise, act=act)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        features = self.backbone(x)
        x2, x1, x0 = (features[f] for f in self.in_features)
        fpn_out0 = self.lateral_conv0(x0)
        f_out0 = self.C3_p4(torch.cat([self.upsample(fpn_out0), x1], 1))
        fpn_out1 = self.reduce_conv1(f_out0)
        pan_out2 = self.C3_p3(torch.cat([self.upsample(fpn_out1), x2], 1))
        pan_out1 = self.C3_n3(torch.cat([self.bu_conv2(pan_out2), fpn_out1], 1))
        pan_out0 = self.C3_n4(torch.cat([self.bu_conv1(pan_out1), fpn_out0], 1))
        return pan_out2, pan_out1, pan_out0


class YOLOFPN(nn.Module):
    """Darknet53 + the YOLOv3 FPN.

    `forward(x)` returns ([B, 128, H/8, W/8], [B, 256, H/16, W/16], [B, 512, H/32, W/32]).
    """

    def __init__(self, depth: int = 53, in_features: tuple[str, ...] = FEATURES) -> None:
        super().__init__()
        self.backbone = Darknet(depth)
        self.in_features = in_features
        self.out1_cbl = BaseConv(512, 256, 1, 1, act="lrelu")
        self.out1 = self._embedding(256, 512, 512 + 256)
        self.out2_cbl = BaseConv(256, 128, 1, 1, act="lrelu")
        self.out2 = self._embedding(128, 256, 256 + 128)
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")

    @staticmethod
    def _embedding(narrow: int, wide: int, in_channels: int) -> nn.Sequential:
        return nn.Sequential(
            BaseConv(in_channels, narrow, 1, 1, act="lrelu"),
            BaseConv(narrow, wide, 3, 1, act="lrelu"),
            BaseConv(wide, narrow, 1, 1, act="lrelu"),
            BaseConv(narrow, wide, 3, 1, act="lrelu"),
            BaseConv(wide, narrow, 1, 1, act="lrelu"),
        )

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        features = self.backbone(x)
        x2, x1, x0 = (features[f] for f in self.in_features)
        out_dark4 = self.out1(torch.cat([self.upsample(self.out1_cbl(x0)), x1], 1))
        out_dark3 = self.out2(torch.cat([self.upsample(self.out2_cbl(out_dark4)), x2], 1))
        return out_dark3, out_dark4, x0
