"""YOLOX training loss on the model's raw per-level outputs; SimOTA picks the foreground."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from streamyolox.model.head import make_grids
from trainer.assign import simota_assign
from trainer.boxes import aligned_iou


@dataclass
class FlatPredictions:
    """All anchors of a batch: raw reg [B, A, 4], decoded boxes [B, A, 4] ``(cx, cy, w, h)`` pixels,
    obj logits [B, A], cls logits [B, A, C], grid cells [A, 2] ``(x, y)`` and strides [A]."""

    reg: Tensor
    boxes: Tensor
    obj: Tensor
    cls: Tensor
    grids: Tensor
    strides: Tensor


def flatten_raw(raw: Sequence[Tensor], strides: Sequence[int]) -> FlatPredictions:
    """Per-level raw maps [B, 5+C, H_i, W_i] -> `FlatPredictions` (float32, official decode)."""
    flat = torch.cat([r.flatten(2) for r in raw], dim=2).permute(0, 2, 1).float()  # [B, A, 5+C]
    hw = [(int(r.shape[-2]), int(r.shape[-1])) for r in raw]
    grids, stride_t = make_grids(hw, strides, torch.float32, flat.device)
    grids, stride_t = grids[0], stride_t[0, :, 0]
    boxes = torch.cat([(flat[..., :2] + grids) * stride_t[:, None],
                       torch.exp(flat[..., 2:4]) * stride_t[:, None]], dim=-1)
    return FlatPredictions(flat[..., :4], boxes, flat[..., 4], flat[..., 5:], grids, stride_t)


class YOLOXLoss(nn.Module):
    """``reg_weight * IoU loss + obj BCE + cls BCE (+ L1)``, each summed and divided by the number of
    foreground anchors in the batch (official ``YOLOXHead.get_losses``).

    Args:
        num_classes: C.
        strides: the model's strides (8, 16, 32).
        iou_type: ``iou`` (loss ``1 - IoU^2``, official default) or ``giou`` (``1 - GIoU``).
        reg_weight: weight of the IoU loss (5.0).
        use_l1: add the L1 loss on the raw regression (the trainer turns it on for the no-aug epochs).

    Targets: a list of B tensors [N_i, 5] ``(class, cx, cy, w, h)`` in input pixels.
    """

    def __init__(self, num_classes: int, strides: Sequence[int] = (8, 16, 32), iou_type: str = "iou",
                 reg_weight: float = 5.0, use_l1: bool = False) -> None:
        super().__init__()
        if iou_type not in ("iou", "giou"):
            raise ValueError(f"iou_type must be 'iou' or 'giou', got {iou_type!r}")
        self.num_classes = num_classes
        self.strides = tuple(strides)
        self.iou_type = iou_type
        self.reg_weight = reg_weight
        self.use_l1 = use_l1

    def forward(self, raw: Sequence[Tensor], targets: Sequence[Tensor]) -> dict[str, Tensor]:
        """Returns ``total`` (to backpropagate) and the detached terms ``iou``, ``obj``, ``cls``, ``l1``,
        ``num_fg``."""
        pred = flatten_raw(raw, self.strides)
        fg_masks, box_t, cls_t, l1_t = self._targets(pred, targets)
        num_fg = max(sum(int(m.sum()) for m in fg_masks), 1)
        fg = torch.stack(fg_masks)  # [B, A]
        obj_loss = F.binary_cross_entropy_with_logits(pred.obj, fg.float(), reduction="sum") / num_fg
        iou = aligned_iou(pred.boxes[fg], torch.cat(box_t), giou=self.iou_type == "giou")
        iou_loss = ((1 - iou**2) if self.iou_type == "iou" else (1 - iou.clamp(-1.0, 1.0))).sum() / num_fg
        cls_loss = F.binary_cross_entropy_with_logits(pred.cls[fg], torch.cat(cls_t), reduction="sum") / num_fg
        l1_loss = (F.l1_loss(pred.reg[fg], torch.cat(l1_t), reduction="sum") / num_fg
                   if self.use_l1 else pred.reg.new_zeros(()))
        total = self.reg_weight * iou_loss + obj_loss + cls_loss + l1_loss
        terms = {"iou": iou_loss, "obj": obj_loss, "cls": cls_loss, "l1": l1_loss}
        out = {"total": total, **{k: v.detach() for k, v in terms.items()}}
        out["num_fg"] = torch.tensor(float(num_fg))
        return out

    def _targets(self, pred: FlatPredictions,
                 targets: Sequence[Tensor]) -> tuple[list[Tensor], list[Tensor], list[Tensor], list[Tensor]]:
        """Per image: fg mask [A], box targets [F, 4], IoU-aware cls targets [F, C], L1 targets [F, 4]."""
        centres = (pred.grids + 0.5) * pred.strides[:, None]
        fg_masks, box_t, cls_t, l1_t = [], [], [], []
        for b, gt in enumerate(targets):
            gt = gt.to(pred.boxes.device).float()
            result = simota_assign(pred.boxes[b].detach(), pred.cls[b].detach(), pred.obj[b].detach(),
                                   centres, pred.strides, gt[:, 1:5], gt[:, 0].long())
            boxes = gt[result.matched_gt, 1:5]
            onehot = F.one_hot(gt[result.matched_gt, 0].long(), self.num_classes).float()
            fg_masks.append(result.fg_mask)
            box_t.append(boxes)
            cls_t.append(onehot * result.ious[:, None])
            l1_t.append(_l1_target(boxes, pred.grids[result.fg_mask], pred.strides[result.fg_mask]))
        return fg_masks, box_t, cls_t, l1_t


def _l1_target(boxes: Tensor, grids: Tensor, strides: Tensor) -> Tensor:
    """Raw-regression targets [F, 4] for gt ``(cx, cy, w, h)`` boxes at the given anchors."""
    s = strides[:, None]
    return torch.cat([boxes[:, :2] / s - grids, torch.log(boxes[:, 2:] / s + 1e-8)], dim=1)
