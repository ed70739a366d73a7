"""YOLOX building blocks, with the official module and parameter names so official checkpoints load strictly."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch.nn.utils.fusion import fuse_conv_bn_eval

# Official YOLOX trains with these BatchNorm settings (`init_yolo`); eps matters when folding BN into convs.
BN_EPS = 1e-3
BN_MOMENTUM = 0.03


def get_activation(name: str) -> nn.Module:
    """`silu`, `relu` or `lrelu` (LeakyReLU 0.1, the Darknet53 activation)."""
    if name == "silu":
        return nn.SiLU(inplace=True)
    if name == "relu":
        return nn.ReLU(inplace=True)
    if name == "lrelu":
        return nn.LeakyReLU(0.1, inplace=True)
    raise ValueError(f"unknown activation {name!r}: expected silu, relu or lrelu")


class FusedConv2d(nn.Conv2d):
    """A BN-folded conv: same parameters (`weight`, `bias`) as nn.Conv2d, bias added after the convolution.

    Why: oneDNN's fused-bias CPU kernels are about twice as noisy in fp32 (YOLOX-Nano on dog.jpg: 1.8e-4 vs
    7.5e-5 max error against float64), and CUDA adds the bias separately anyway. ONNX exports use Conv with bias.
    """

    @classmethod
    def from_conv(cls, conv: nn.Conv2d) -> FusedConv2d:
        padding = conv.padding if isinstance(conv.padding, str) else _pair(conv.padding)
        fused = cls(
            conv.in_channels, conv.out_channels, _pair(conv.kernel_size), _pair(conv.stride), padding,
            _pair(conv.dilation), conv.groups, bias=True, device=conv.weight.device, dtype=conv.weight.dtype,
        )  # fmt: skip
        fused.load_state_dict(conv.state_dict())
        return fused

    def forward(self, x: Tensor) -> Tensor:
        if torch.onnx.is_in_onnx_export():  # exports keep the official Conv-with-bias form
            return super().forward(x)
        y = F.conv2d(x, self.weight, None, self.stride, self.padding, self.dilation, self.groups)
        return y if self.bias is None else y + self.bias.view(1, -1, 1, 1)


def _pair(value: tuple[int, ...]) -> tuple[int, int]:
    """A Conv2d's (h, w) setting: torch types the attributes as tuple[int, ...], its __init__ takes pairs."""
    return (value[0], value[1])


class BaseConv(nn.Module):
    """Conv2d (no bias, 'same' padding) -> BatchNorm2d -> activation. `fuse()` folds the BN into the conv."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        ksize: int,
        stride: int = 1,
        groups: int = 1,
        act: str = "silu",
    ) -> None:
        super().__init__()
        pad = (ksize - 1) // 2
        self.conv = nn.Conv2d(in_channels, out_channels, ksize, stride, pad, groups=groups, bias=False)
        self.bn: nn.Module = nn.BatchNorm2d(out_channels, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.act = get_activation(act)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.bn(self.conv(x)))

    def fuse(self) -> None:
        """Replace conv+BN by one conv with bias (eval statistics); the state_dict becomes `conv.weight/bias`."""
        if isinstance(self.bn, nn.BatchNorm2d):
            self.conv = FusedConv2d.from_conv(fuse_conv_bn_eval(self.conv.eval(), self.bn.eval()))
            self.bn = nn.Identity()


class DWConv(nn.Module):
    """Depthwise 3x3 conv followed by a pointwise 1x1 conv, each a `BaseConv`."""

    def __init__(
        self, in_channels: int, out_channels: int, ksize: int, stride: int = 1, act: str = "silu"
    ) -> None:
        super().__init__()
        self.dconv = BaseConv(in_channels, in_channels, ksize, stride, groups=in_channels, act=act)
        self.pconv = BaseConv(in_channels, out_channels, 1, 1, act=act)

    def forward(self, x: Tensor) -> Tensor:
        return self.pconv(self.dconv(x))


def conv_class(depthwise: bool) -> type[BaseConv] | type[DWConv]:
    return DWConv if depthwise else BaseConv


class Bottleneck(nn.Module):
    """1x1 conv -> 3x3 conv (depthwise if asked), with a residual when shapes allow."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        shortcut: bool = True,
        expansion: float = 0.5,
        depthwise: bool = False,
        act: str = "silu",
    ) -> None:
        super().__init__()
        hidden = int(out_channels * expansion)
        self.conv1 = BaseConv(in_channels, hidden, 1, 1, act=act)
        self.conv2 = conv_class(depthwise)(hidden, out_channels, 3, 1, act=act)
        self.use_add = shortcut and in_channels == out_channels

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv2(self.conv1(x))
        return y + x if self.use_add else y


class ResLayer(nn.Module):
    """Darknet53 residual block: 1x1 halving conv -> 3x3 conv, plus the input."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        mid = in_channels // 2
        self.layer1 = BaseConv(in_channels, mid, 1, 1, act="lrelu")
        self.layer2 = BaseConv(mid, in_channels, 3, 1, act="lrelu")

    def forward(self, x: Tensor) -> Tensor:
        return x + self.layer2(self.layer1(x))


class SPPBottleneck(nn.Module):
    """Spatial pyramid pooling (max-pools 5, 9, 13, stride 1) between two 1x1 convs, as in YOLOv3-SPP."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_sizes: tuple[int, ...] = (5, 9, 13),
        activation: str = "silu",
    ) -> None:
        super().__init__()
        hidden = in_channels // 2
        self.conv1 = BaseConv(in_channels, hidden, 1, 1, act=activation)
        self.m = nn.ModuleList([nn.MaxPool2d(ks, stride=1, padding=ks // 2) for ks in kernel_sizes])
        self.conv2 = BaseConv(hidden * (len(kernel_sizes) + 1), out_channels, 1, 1, act=activation)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv1(x)
        x = torch.cat([x] + [pool(x) for pool in self.m], dim=1)
        return self.conv2(x)


class CSPLayer(nn.Module):
    """CSP bottleneck with 3 convs: two 1x1 branches, `n` bottlenecks on the first, concat, 1x1 fuse."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        n: int = 1,
        shortcut: bool = True,
        expansion: float = 0.5,
        depthwise: bool = False,
        act: str = "silu",
    ) -> None:
        super().__init__()
        hidden = int(out_channels * expansion)
        self.conv1 = BaseConv(in_channels, hidden, 1, 1, act=act)
        self.conv2 = BaseConv(in_channels, hidden, 1, 1, act=act)
        self.conv3 = BaseConv(2 * hidden, out_channels, 1, 1, act=act)
        self.m = nn.Sequential(
            *[Bottleneck(hidden, hidden, shortcut, 1.0, depthwise, act=act) for _ in range(n)]
        )

    def forward(self, x: Tensor) -> Tensor:
        # Official execution order (conv1, conv2, then m): ONNX exports list their convs in this order.
        x_1 = self.conv1(x)
        x_2 = self.conv2(x)
        x_1 = self.m(x_1)
        return self.conv3(torch.cat((x_1, x_2), dim=1))


class Focus(nn.Module):
    """Space-to-depth: [B, C, H, W] -> [B, 4C, H/2, W/2] (official patch order), then a conv."""

    def __init__(
        self, in_channels: int, out_channels: int, ksize: int = 1, stride: int = 1, act: str = "silu"
    ) -> None:
        super().__init__()
        self.conv = BaseConv(in_channels * 4, out_channels, ksize, stride, act=act)

    def forward(self, x: Tensor) -> Tensor:
        top_left = x[..., ::2, ::2]
        top_right = x[..., ::2, 1::2]
        bot_left = x[..., 1::2, ::2]
        bot_right = x[..., 1::2, 1::2]
        return self.conv(torch.cat((top_left, bot_left, top_right, bot_right), dim=1))
