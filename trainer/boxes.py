"""Box helpers for the loss and the assigner (torch, ``(cx, cy, w, h)`` unless named otherwise)."""

from __future__ import annotations

import torch
from torch import Tensor


def cxcywh_to_xyxy(boxes: Tensor) -> Tensor:
    """[..., 4] ``(cx, cy, w, h)`` -> ``(x1, y1, x2, y2)``."""
    half = boxes[..., 2:] / 2
    return torch.cat([boxes[..., :2] - half, boxes[..., :2] + half], dim=-1)


def pairwise_iou(a: Tensor, b: Tensor) -> Tensor:
    """IoU of every ``(cx, cy, w, h)`` box in a [N, 4] with every box in b [M, 4] -> [N, M]."""
    a_xy, b_xy = cxcywh_to_xyxy(a), cxcywh_to_xyxy(b)
    tl = torch.maximum(a_xy[:, None, :2], b_xy[None, :, :2])
    br = torch.minimum(a_xy[:, None, 2:], b_xy[None, :, 2:])
    inter = (br - tl).clamp(min=0).prod(dim=-1)
    area_a = a[:, 2:].prod(dim=-1)
    area_b = b[:, 2:].prod(dim=-1)
    return inter / (area_a[:, None] + area_b[None, :] - inter + 1e-16)


def aligned_iou(pred: Tensor, target: Tensor, giou: bool = False) -> Tensor:
    """IoU (or GIoU) of matching rows of ``(cx, cy, w, h)`` boxes [N, 4] -> [N] (official ``IOUloss``)."""
    p, t = cxcywh_to_xyxy(pred), cxcywh_to_xyxy(target)
    tl = torch.maximum(p[:, :2], t[:, :2])
    br = torch.minimum(p[:, 2:], t[:, 2:])
    inter = (br - tl).clamp(min=0).prod(dim=-1)
    union = pred[:, 2:].prod(dim=-1) + target[:, 2:].prod(dim=-1) - inter
    iou = inter / (union + 1e-16)
    if not giou:
        return iou
    hull = (torch.maximum(p[:, 2:], t[:, 2:]) - torch.minimum(p[:, :2], t[:, :2])).prod(dim=-1)
    return iou - (hull - union) / hull.clamp(min=1e-16)
