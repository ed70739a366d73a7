"""Import the weights of an official YOLOX ONNX export (BatchNorm folded into the convs) into a fused model.

Official exports name most initializers `onnx::Conv_<n>`, so names cannot be matched; instead the Conv nodes,
in graph order, are paired with the model's convolutions in execution order (the order tracing saw them) and
every weight and bias shape is checked.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn

from streamyolox.model import YOLOX, ZOO
from streamyolox.weights.checkpoint import WeightsError


@dataclass(frozen=True)
class OnnxConv:
    """One Conv node: weight [O, I/g, k, k], bias [O] (zeros if the node has none), groups."""

    weight: np.ndarray
    bias: np.ndarray
    groups: int


@dataclass(frozen=True)
class OnnxModelInfo:
    """What an export says about its model: convs in graph order, class count, input (h, w) if static."""

    convs: list[OnnxConv]
    num_classes: int
    input_size: tuple[int, int] | None


def read_onnx(path: str | Path) -> OnnxModelInfo:
    """Read the Conv weights of a YOLOX ONNX export; WeightsError if it is missing, unreadable or not YOLOX."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    try:
        graph = onnx.load(str(path)).graph
    except Exception as exc:  # protobuf raises DecodeError and others on a bad file
        raise WeightsError(f"{path.name}: not a readable ONNX model ({type(exc).__name__})") from exc
    inits = {t.name: t for t in graph.initializer}
    convs = []
    for node in graph.node:
        if node.op_type != "Conv":
            continue
        if node.input[1] not in inits:
            raise WeightsError(f"{path.name}: Conv {node.name} has a computed weight; not a YOLOX export")
        weight = numpy_helper.to_array(inits[node.input[1]])
        has_bias = len(node.input) > 2 and node.input[2] in inits
        bias = (
            numpy_helper.to_array(inits[node.input[2]])
            if has_bias
            else np.zeros(weight.shape[0], weight.dtype)
        )
        groups = next((a.i for a in node.attribute if a.name == "group"), 1)
        convs.append(OnnxConv(weight, bias, groups))
    num_classes = _num_classes(graph, inits)
    if len(convs) < 4 or num_classes < 1:
        raise WeightsError(
            f"{path.name}: not a YOLOX export (no head.cls_preds weights, output not [B, N, 5+C])"
        )
    dims = [d.dim_value for d in graph.input[0].type.tensor_type.shape.dim]
    size = (dims[2], dims[3]) if len(dims) == 4 and dims[2] > 0 and dims[3] > 0 else None
    return OnnxModelInfo(convs, num_classes, size)


def _num_classes(graph: onnx.GraphProto, inits: dict[str, onnx.TensorProto]) -> int:
    """C from the named `head.cls_preds.0.weight` initializer (official and our exports), else output dim - 5."""
    for name, tensor in inits.items():
        if name.endswith("head.cls_preds.0.weight"):
            return int(tensor.dims[0])
    dims = graph.output[0].type.tensor_type.shape.dim
    return int(dims[-1].dim_value) - 5 if dims else 0


def infer_onnx_model_name(info: OnnxModelInfo, source: str) -> str:
    """Zoo name of an export from its first conv (Focus: 12 input channels, width = out / 64) and depthwise use."""
    first = info.convs[0].weight
    if first.shape[1] == 3:
        return "yolox-darknet53"
    depthwise = any(c.groups > 1 for c in info.convs)
    width = first.shape[0] / 64
    for name, entry in ZOO.items():
        if not entry.darknet and entry.width == width and entry.depthwise == depthwise:
            return name
    raise WeightsError(f"{source}: width {width:g} matches no zoo model; pass the model name (--model)")


def _convs_in_execution_order(model: YOLOX, input_size: tuple[int, int]) -> list[nn.Conv2d]:
    order: list[nn.Conv2d] = []
    hooks = [
        m.register_forward_hook(lambda mod, _i, _o: order.append(mod))
        for m in model.modules()
        if isinstance(m, nn.Conv2d)
    ]
    try:
        param = next(model.parameters())
        with torch.no_grad():
            model.forward_raw(torch.zeros(1, 3, *input_size, dtype=param.dtype, device=param.device))
    finally:
        for h in hooks:
            h.remove()
    return order


def load_onnx_weights(model: YOLOX, path: str | Path) -> YOLOX:
    """Copy the conv weights of an official BN-folded ONNX export into `model` (fused first if it is not).

    Returns the model (eval mode). Raises WeightsError naming the first mismatch (class count, conv count,
    a conv's shape).
    """
    source = Path(path).name
    info = read_onnx(path)
    if info.num_classes != model.num_classes:
        raise WeightsError(
            f"{source}: head.cls_preds.0.weight has {info.num_classes} classes, model has {model.num_classes}"
        )
    model.eval().fuse()
    convs = _convs_in_execution_order(model, (64, 64))
    names = {m: n for n, m in model.named_modules()}
    if convs[0].weight.shape[:2] != info.convs[0].weight.shape[:2]:
        got, want = info.convs[0].weight.shape[0] / 64, convs[0].weight.shape[0] / 64
        raise WeightsError(f"{source}: ONNX is for width {got:g}, model {model.name} expects width {want:g}")
    if len(convs) != len(info.convs):
        raise WeightsError(
            f"{source}: ONNX has {len(info.convs)} convolutions, model {model.name} has {len(convs)}"
        )
    for i, (conv, src) in enumerate(zip(convs, info.convs)):
        if tuple(conv.weight.shape) != src.weight.shape or conv.groups != src.groups:
            raise WeightsError(
                f"{source}: conv #{i} ({names[conv]}) is {list(src.weight.shape)} groups {src.groups} in ONNX, "
                f"model expects {list(conv.weight.shape)} groups {conv.groups}"
            )
    with torch.no_grad():
        for conv, src in zip(convs, info.convs):
            conv.weight.copy_(torch.tensor(src.weight))
            assert conv.bias is not None  # fuse() made every conv a FusedConv2d, built with bias=True
            conv.bias.copy_(torch.tensor(src.bias))
    return model
