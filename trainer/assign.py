"""SimOTA label assignment (YOLOX paper, section 2.2), as a pure function of one image's predictions."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from trainer.boxes import pairwise_iou

CENTER_RADIUS = 2.5  # in strides: the fixed centre region of the centre prior
TOPK_FOR_K = 10  # dynamic k = sum of a gt's top-10 candidate IoUs
IOU_WEIGHT = 3.0
OUTSIDE_PENALTY = 1e5


@dataclass
class Assignment:
    """Which anchors are foreground and what they learn.

    Attributes:
        fg_mask (Tensor[A] bool): foreground anchors.
        matched_gt (Tensor[F] int64): for each foreground anchor, in anchor order, its gt index.
        ious (Tensor[F]): IoU between that anchor's predicted box and its gt (the IoU-aware cls target).
        dynamic_k (Tensor[G] int64): how many anchors each gt asked for before conflicts were resolved.
        candidate_mask (Tensor[A] bool): anchors inside some gt box or centre region (cost was computed).
    """

    fg_mask: Tensor
    matched_gt: Tensor
    ious: Tensor
    dynamic_k: Tensor
    candidate_mask: Tensor

    @property
    def num_fg(self) -> int:
        return int(self.matched_gt.numel())


@torch.no_grad()
def simota_assign(pred_boxes: Tensor, cls_logits: Tensor, obj_logits: Tensor, anchor_centers: Tensor,
                  strides: Tensor, gt_boxes: Tensor, gt_classes: Tensor) -> Assignment:
    """Assign gts to anchors for one image with SimOTA.

    Args:
        pred_boxes (Tensor[A, 4]): decoded predictions ``(cx, cy, w, h)``, input pixels.
        cls_logits (Tensor[A, C]), obj_logits (Tensor[A] or [A, 1]): raw logits.
        anchor_centers (Tensor[A, 2]): anchor-point centres ``(x, y)`` = (grid + 0.5) * stride, pixels.
        strides (Tensor[A]): each anchor's stride.
        gt_boxes (Tensor[G, 4]): ``(cx, cy, w, h)`` pixels; gt_classes (Tensor[G]): class indices.

    Candidates are anchors whose centre lies inside a gt box or within ``2.5 * stride`` of a gt centre.
    For each (gt, candidate) the cost is ``BCE(sqrt(cls * obj), one-hot) + 3 * -log(IoU)`` plus 1e5 unless
    the anchor is inside both that gt's box and its centre region. Each gt takes its ``k`` cheapest
    candidates, ``k = max(1, int(sum of its top-10 IoUs))``; an anchor claimed by several gts keeps the
    cheapest one.
    """
    num_anchors, num_gt = pred_boxes.shape[0], gt_boxes.shape[0]
    device = pred_boxes.device
    in_box, in_centre = _centre_prior(anchor_centers, strides, gt_boxes)  # [G, A] each
    candidates = (in_box | in_centre).any(dim=0) if num_gt else torch.zeros(num_anchors, dtype=torch.bool,
                                                                           device=device)
    if not candidates.any():
        empty = torch.zeros(0, dtype=torch.long, device=device)
        return Assignment(torch.zeros(num_anchors, dtype=torch.bool, device=device), empty,
                          pred_boxes.new_zeros(0), torch.zeros(num_gt, dtype=torch.long, device=device),
                          candidates)
    ious = pairwise_iou(gt_boxes.float(), pred_boxes[candidates].float())  # [G, Ac]
    cost = (_cls_cost(cls_logits[candidates], obj_logits.reshape(-1)[candidates], gt_classes)
            + IOU_WEIGHT * -torch.log(ious + 1e-8)
            + OUTSIDE_PENALTY * ~(in_box & in_centre)[:, candidates])
    matching, dynamic_k = _match(cost, ious)
    fg_in_candidates = matching.any(dim=0)
    fg_mask = torch.zeros(num_anchors, dtype=torch.bool, device=device)
    fg_mask[candidates.nonzero().squeeze(1)[fg_in_candidates]] = True
    matched = matching[:, fg_in_candidates].float().argmax(dim=0)
    matched_ious = ious[:, fg_in_candidates].gather(0, matched[None]).squeeze(0)
    return Assignment(fg_mask, matched, matched_ious, dynamic_k, candidates)


def _centre_prior(centres: Tensor, strides: Tensor, gt: Tensor) -> tuple[Tensor, Tensor]:
    """[G, A] masks: anchor centre strictly inside the gt box; within 2.5 strides of the gt centre."""
    x, y = centres[None, :, 0], centres[None, :, 1]
    cx, cy, hw, hh = (gt[:, i, None] for i in range(4))
    hw, hh = hw / 2, hh / 2
    in_box = (x > cx - hw) & (x < cx + hw) & (y > cy - hh) & (y < cy + hh)
    r = CENTER_RADIUS * strides[None, :]
    in_centre = (x > cx - r) & (x < cx + r) & (y > cy - r) & (y < cy + r)
    return in_box, in_centre


def _cls_cost(cls_logits: Tensor, obj_logits: Tensor, gt_classes: Tensor) -> Tensor:
    """[G, Ac] summed BCE of ``p = sqrt(sigmoid(cls) * sigmoid(obj))`` against each gt's one-hot class.

    Uses sum_c BCE = sum_c -log(1 - p_c) + (log(1 - p_k) - log(p_k)) for gt class k: O(G * Ac) memory
    instead of the official [G, Ac, C] tensor. Logs clamp at -100 like ``F.binary_cross_entropy``.
    """
    p = (cls_logits.float().sigmoid() * obj_logits.float().sigmoid()[:, None]).sqrt()
    log_p = torch.log(p).clamp(min=-100)
    log_1p = torch.log1p(-p).clamp(min=-100)
    base = -log_1p.sum(dim=1)  # [Ac]
    k = gt_classes.long()
    return base[None, :] + (log_1p[:, k] - log_p[:, k]).T


def _match(cost: Tensor, ious: Tensor) -> tuple[Tensor, Tensor]:
    """Dynamic-k matching -> (matching [G, Ac] bool with one gt per anchor at most, dynamic_k [G])."""
    topk = ious.topk(min(TOPK_FOR_K, ious.shape[1]), dim=1).values
    dynamic_k = topk.sum(dim=1).int().clamp(min=1).long()
    rank = torch.empty_like(cost, dtype=torch.long)
    order = cost.argsort(dim=1, stable=True)
    rank.scatter_(1, order, torch.arange(cost.shape[1], device=cost.device).expand_as(order).contiguous())
    matching = rank < dynamic_k[:, None]
    shared = matching.sum(dim=0) > 1
    if shared.any():  # an anchor wanted by several gts goes to the cheapest of all gts
        cheapest = cost[:, shared].argmin(dim=0)
        matching[:, shared] = False
        matching[cheapest, shared.nonzero().squeeze(1)] = True
    return matching, dynamic_k
