"""Decoupled YOLOX head and the pure functions that turn its outputs into boxes.

Output layout (per anchor, N anchors ordered stride 8, 16, 32, each level row-major):
    raw        [reg_x, reg_y, reg_w, reg_h, obj_logit, cls_logit_0 .. cls_logit_{C-1}]
    undecoded  [reg_x, reg_y, reg_w, reg_h, sigmoid(obj), sigmoid(cls)...]   (official ONNX export form)
    decoded    [cx, cy, w, h (input pixels), sigmoid(obj), sigmoid(cls)...]   (official eval form)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from streamyolox.model.blocks import BaseConv, conv_class


def make_grids(
    hw: Sequence[tuple[int, int]], strides: Sequence[int], dtype: torch.dtype, device: torch.device | str
) -> tuple[Tensor, Tensor]:
    """Anchor-point grids for feature maps of sizes `hw` with the given strides.

    Returns:
        grids [1, N, 2] holding (x, y) cell indices, and strides [1, N, 1]; N = sum(h * w), row-major per level.
    """
    grids, stride_list = [], []
    for (h, w), stride in zip(hw, strides):
        yv, xv = torch.meshgrid(torch.arange(h, device=device), torch.arange(w, device=device), indexing="ij")
        grid = torch.stack((xv, yv), 2).reshape(1, -1, 2)
        grids.append(grid)
        stride_list.append(torch.full((1, grid.shape[1], 1), stride, device=device))
    return torch.cat(grids, 1).to(dtype), torch.cat(stride_list, 1).to(dtype)


def decode_outputs(outputs: Tensor, hw: Sequence[tuple[int, int]], strides: Sequence[int]) -> Tensor:
    """Official YOLOX decode: undecoded [B, N, 5+C] -> decoded [B, N, 5+C].

    xy = (reg_xy + grid) * stride, wh = exp(reg_wh) * stride, scores passed through. `hw` are the (H_i, W_i) of
    the feature maps the N anchors come from, in the same order as `strides`.
    """
    grids, stride_t = make_grids(hw, strides, outputs.dtype, outputs.device)
    return torch.cat(
        [
            (outputs[..., 0:2] + grids) * stride_t,
            torch.exp(outputs[..., 2:4]) * stride_t,
            outputs[..., 4:],
        ],
        dim=-1,
    )


def flatten_levels(raw_levels: Sequence[Tensor]) -> Tensor:
    """Per-level raw maps [B, 5+C, H_i, W_i] -> undecoded [B, N, 5+C] (sigmoid applied to obj and cls)."""
    levels = [torch.cat([r[:, :4], r[:, 4:].sigmoid()], 1).flatten(start_dim=2) for r in raw_levels]
    return torch.cat(levels, dim=2).permute(0, 2, 1)


class YOLOXHead(nn.Module):
    """Decoupled head: per level a 1x1 stem, then two 3x3 convs for classification and two for regression.

    Holds no state; `forward(features)` returns per level the raw map [B, 4 + 1 + C, H_i, W_i].
    """

    def __init__(
        self,
        num_classes: int,
        width: float = 1.0,
        strides: Sequence[int] = (8, 16, 32),
        in_channels: Sequence[int] = (256, 512, 1024),
        act: str = "silu",
        depthwise: bool = False,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.strides = tuple(strides)
        conv = conv_class(depthwise)
        hidden = int(256 * width)
        # Registration order matters: it is the official state_dict order.
        self.cls_convs = nn.ModuleList()
        self.reg_convs = nn.ModuleList()
        self.cls_preds = nn.ModuleList()
        self.reg_preds = nn.ModuleList()
        self.obj_preds = nn.ModuleList()
        self.stems = nn.ModuleList()
        for ch in in_channels:
            self.stems.append(BaseConv(int(ch * width), hidden, 1, 1, act=act))
            self.cls_convs.append(
                nn.Sequential(conv(hidden, hidden, 3, 1, act=act), conv(hidden, hidden, 3, 1, act=act))
            )
            self.reg_convs.append(
                nn.Sequential(conv(hidden, hidden, 3, 1, act=act), conv(hidden, hidden, 3, 1, act=act))
            )
            self.cls_preds.append(nn.Conv2d(hidden, num_classes, 1))
            self.reg_preds.append(nn.Conv2d(hidden, 4, 1))
            self.obj_preds.append(nn.Conv2d(hidden, 1, 1))

    def initialize_biases(self, prior_prob: float = 1e-2) -> None:
        """Start obj/cls predictions at `prior_prob` (focal-loss style prior), as official training does."""
        bias = -math.log((1 - prior_prob) / prior_prob)
        for conv in [*self.cls_preds, *self.obj_preds]:
            nn.init.constant_(conv.bias, bias)

    def forward(self, features: Sequence[Tensor]) -> list[Tensor]:
        outputs = []
        for k, x in enumerate(features):
            x = self.stems[k](x)
            cls_out = self.cls_preds[k](self.cls_convs[k](x))
            reg_feat = self.reg_convs[k](x)
            outputs.append(torch.cat([self.reg_preds[k](reg_feat), self.obj_preds[k](reg_feat), cls_out], 1))
        return outputs
