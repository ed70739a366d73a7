"""The YOLOX model zoo: official variants by name, plus custom depth/width."""

from __future__ import annotations

from torch import nn

from streamyolox.model.blocks import BN_EPS, BN_MOMENTUM
from streamyolox.model.head import YOLOXHead
from streamyolox.model.neck import YOLOFPN, YOLOPAFPN
from streamyolox.model.yolox import YOLOX
from streamyolox.model.zoo import ZOO, ZooEntry, canonical_name


def _init_like_official(model: YOLOX) -> None:
    # Official `Exp.get_model` sets these on every BN and the head priors; the trainer depends on them.
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.eps = BN_EPS
            m.momentum = BN_MOMENTUM
    model.head.initialize_biases(1e-2)


def build_model(
    name: str = "yolox-s",
    num_classes: int = 80,
    depth: float | None = None,
    width: float | None = None,
    depthwise: bool | None = None,
    act: str | None = None,
) -> YOLOX:
    """Build a YOLOX variant with freshly initialised weights (eval mode off; call `.eval()` for inference).

    Args:
        name: a zoo name (`yolox-nano` ... `yolox-x`, `yolox-darknet53`) or `custom` (then depth and width
            are required). depth/width/depthwise/act override the zoo entry (CSPDarknet variants only).
        num_classes: number of classes C; outputs are [B, N, 5 + C].
    """
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    key = canonical_name(name)
    if key == "custom":
        if depth is None or width is None:
            raise ValueError("a custom model needs both depth and width")
        entry = ZooEntry(depth, width, (640, 640))
    else:
        entry = ZOO[key]
    if entry.darknet:
        if depth is not None or width is not None or depthwise:
            raise ValueError("yolox-darknet53 has a fixed architecture: depth/width/depthwise do not apply")
        neck: nn.Module = YOLOFPN(53)
        head = YOLOXHead(num_classes, 1.0, in_channels=(128, 256, 512), act="lrelu")
        model = YOLOX(neck, head, key, entry.depth, entry.width, False, "lrelu")
    else:
        d = entry.depth if depth is None else depth
        w = entry.width if width is None else width
        dw = entry.depthwise if depthwise is None else depthwise
        a = act or entry.act
        custom = (d, w, dw, a) != (entry.depth, entry.width, entry.depthwise, entry.act)
        neck = YOLOPAFPN(d, w, depthwise=dw, act=a)
        head = YOLOXHead(num_classes, w, act=a, depthwise=dw)
        model = YOLOX(neck, head, "custom" if custom else key, d, w, dw, a)
    _init_like_official(model)
    return model
