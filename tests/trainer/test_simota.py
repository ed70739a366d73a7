"""SimOTA: hand-built cases with known answers, and agreement with a literal port of the official
``YOLOXHead.get_assignments`` / ``simota_matching`` loops on random inputs."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from trainer.assign import simota_assign


def _grid(size: int = 128, stride: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    n = size // stride
    ys, xs = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
    centres = (torch.stack([xs, ys], -1).reshape(-1, 2).float() + 0.5) * stride
    return centres, torch.full((n * n,), float(stride))


def _preds(centres: torch.Tensor, num_classes: int = 3):
    """Far-away tiny boxes, neutral scores: nothing looks like a gt unless a test says so."""
    a = len(centres)
    boxes = torch.tensor([[-100.0, -100.0, 2.0, 2.0]]).repeat(a, 1)
    return boxes, torch.zeros(a, num_classes), torch.zeros(a)


def _index(centres: torch.Tensor, x: float, y: float) -> int:
    return int(((centres - torch.tensor([x, y])).abs().sum(1)).argmin())


def test_dynamic_k_is_the_floor_of_the_top10_iou_sum() -> None:
    centres, strides = _grid()
    boxes, cls, obj = _preds(centres)
    gt = torch.tensor([[60.0, 60.0, 40.0, 40.0]])
    inside = [_index(centres, x, y) for x in (44, 52, 60, 68) for y in (52, 60, 68)]
    for i, idx in enumerate(inside[:10]):  # concentric boxes of width 40*s: IoU = s
        boxes[idx] = torch.tensor([60.0, 60.0, 40.0 * (0.2 + 0.05 * i), 40.0])
    ious = [0.2 + 0.05 * i for i in range(10)]
    result = simota_assign(boxes, cls, obj, centres, strides, gt, torch.tensor([1]))
    assert result.dynamic_k.tolist() == [int(sum(ious))]  # 4.25 -> 4
    assert result.num_fg == 4
    chosen = set(result.fg_mask.nonzero().squeeze(1).tolist())
    assert chosen == set(inside[6:10])  # the four best IoUs are the four cheapest
    torch.testing.assert_close(result.ious.sort().values, torch.tensor(ious[6:10]))
    assert (result.matched_gt == 0).all()


def test_known_assignment_two_gts_and_class_cost() -> None:
    centres, strides = _grid()
    boxes, cls, obj = _preds(centres)
    gts = torch.tensor([[30.0, 30.0, 24.0, 24.0], [92.0, 92.0, 24.0, 24.0]])
    a, b = _index(centres, 28, 28), _index(centres, 92, 92)
    boxes[a], boxes[b] = gts[0], gts[1]
    cls[a, 2], cls[b, 0] = 8.0, 8.0
    obj[a], obj[b] = 8.0, 8.0
    result = simota_assign(boxes, cls, obj, centres, strides, gts, torch.tensor([2, 0]))
    assert result.fg_mask.nonzero().squeeze(1).tolist() == sorted([a, b])
    assert result.matched_gt.tolist() == ([0, 1] if a < b else [1, 0])
    torch.testing.assert_close(result.ious, torch.ones(2))
    # a wrong class raises the cost: an equally good box with the right class wins
    a2 = _index(centres, 36, 28)
    boxes[a2] = gts[0] * torch.tensor([1.0, 1.0, 0.9, 1.0])  # IoU 0.9: top-10 sum 1.9, k = 1
    cls[a2, 2], obj[a2] = 8.0, 8.0
    cls[a, 2], cls[a, 1] = -8.0, 8.0
    result = simota_assign(boxes, cls, obj, centres, strides, gts[:1], torch.tensor([2]))
    assert result.fg_mask.nonzero().squeeze(1).tolist() == [a2]


def test_centre_prior_excludes_far_anchors_and_penalises_outside_the_box() -> None:
    centres, strides = _grid()
    boxes, cls, obj = _preds(centres)
    gt = torch.tensor([[100.0, 100.0, 6.0, 6.0]])
    far, ring, inside = _index(centres, 4, 4), _index(centres, 116, 100), _index(centres, 100, 100)
    boxes[far] = gt[0]  # perfect, but nowhere near the gt: not even a candidate
    boxes[ring] = gt[0]  # perfect, within 2.5 strides of the centre but outside the box: penalised
    boxes[inside] = torch.tensor([100.0, 100.0, 6.0, 18.0])  # IoU 1/3, but inside box and centre
    result = simota_assign(boxes, cls, obj, centres, strides, gt, torch.tensor([0]))
    assert not result.candidate_mask[far] and result.candidate_mask[ring]
    assert result.candidate_mask.sum() == 5 * 5  # centres 84..116 strictly within (80, 120)
    assert result.dynamic_k.tolist() == [1]
    assert result.fg_mask.nonzero().squeeze(1).tolist() == [inside]


def test_one_gt_per_anchor_cheapest_wins() -> None:
    centres, strides = _grid()
    boxes, cls, obj = _preds(centres)
    gts = torch.tensor([[60.0, 60.0, 32.0, 32.0], [64.0, 60.0, 32.0, 32.0]])
    shared = _index(centres, 60, 60)
    boxes[shared] = torch.tensor([63.0, 60.0, 32.0, 32.0])  # closer to gt 1
    result = simota_assign(boxes, cls, obj, centres, strides, gts, torch.tensor([0, 0]))
    assert result.fg_mask[shared]
    row = int(result.fg_mask[: shared + 1].sum()) - 1
    assert result.matched_gt[row] == 1
    assert result.num_fg == int(result.fg_mask.sum())


def test_no_gt_means_no_foreground() -> None:
    centres, strides = _grid()
    boxes, cls, obj = _preds(centres)
    result = simota_assign(boxes, cls, obj, centres, strides, torch.zeros(0, 4), torch.zeros(0))
    assert result.num_fg == 0 and not result.fg_mask.any()


def _official(boxes, cls, obj, centres, strides, gt, gt_cls, num_classes):
    """Literal port of official YOLOX 0.1 get_in_boxes_info + get_assignments + simota_matching."""
    num_gt = len(gt)
    x_c, y_c = centres[:, 0][None].repeat(num_gt, 1), centres[:, 1][None].repeat(num_gt, 1)
    left, r = (gt[:, 0] - 0.5 * gt[:, 2])[:, None], (gt[:, 0] + 0.5 * gt[:, 2])[:, None]
    t, b = (gt[:, 1] - 0.5 * gt[:, 3])[:, None], (gt[:, 1] + 0.5 * gt[:, 3])[:, None]
    is_in_boxes = torch.stack([x_c - left, y_c - t, r - x_c, b - y_c], 2).min(dim=-1).values > 0.0
    rad = 2.5 * strides[None]
    cl, cr, ct, cb = gt[:, 0:1] - rad, gt[:, 0:1] + rad, gt[:, 1:2] - rad, gt[:, 1:2] + rad
    is_in_centers = torch.stack([x_c - cl, y_c - ct, cr - x_c, cb - y_c], 2).min(dim=-1).values > 0.0
    fg_mask = is_in_boxes.sum(0).bool() | is_in_centers.sum(0).bool()
    in_both = is_in_boxes[:, fg_mask] & is_in_centers[:, fg_mask]
    p = boxes[fg_mask]
    p_xy = torch.cat([p[:, :2] - p[:, 2:] / 2, p[:, :2] + p[:, 2:] / 2], 1)
    g_xy = torch.cat([gt[:, :2] - gt[:, 2:] / 2, gt[:, :2] + gt[:, 2:] / 2], 1)
    tl = torch.max(g_xy[:, None, :2], p_xy[None, :, :2])
    br = torch.min(g_xy[:, None, 2:], p_xy[None, :, 2:])
    inter = (br - tl).prod(2) * (tl < br).all(2)
    ious = inter / (gt[:, 2:].prod(1)[:, None] + p[:, 2:].prod(1)[None] - inter)
    gt_onehot = F.one_hot(gt_cls, num_classes).float()[:, None].repeat(1, int(fg_mask.sum()), 1)
    scores = (cls[fg_mask].sigmoid() * obj[fg_mask, None].sigmoid())[None].repeat(num_gt, 1, 1)
    cls_cost = F.binary_cross_entropy(scores.sqrt(), gt_onehot, reduction="none").sum(-1)
    cost = cls_cost + 3.0 * -torch.log(ious + 1e-8) + 100000.0 * (~in_both)
    matching = torch.zeros_like(cost, dtype=torch.uint8)
    topk, _ = torch.topk(ious, min(10, ious.size(1)), dim=1)
    ks = torch.clamp(topk.sum(1).int(), min=1)
    for g in range(num_gt):
        _, pos = torch.topk(cost[g], k=int(ks[g]), largest=False)
        matching[g][pos] = 1
    if (matching.sum(0) > 1).any():
        multi = matching.sum(0) > 1
        _, argmin = torch.min(cost[:, multi], dim=0)
        matching[:, multi] *= 0
        matching[argmin, multi] = 1
    fg_in = matching.sum(0) > 0
    fg_mask[fg_mask.clone()] = fg_in
    matched = matching[:, fg_in].argmax(0)
    return fg_mask, matched, (matching * ious).sum(0)[fg_in], ks


def test_matches_official_port_on_random_scenes() -> None:
    gen = torch.Generator().manual_seed(0)
    centres, strides = _grid(160, 8)
    c16, s16 = _grid(160, 16)
    centres, strides = torch.cat([centres, c16]), torch.cat([strides, s16])
    for _ in range(20):
        a, g, c = len(centres), int(torch.randint(1, 7, (1,), generator=gen)), 4
        gt = torch.cat([torch.rand(g, 2, generator=gen) * 140 + 10, torch.rand(g, 2, generator=gen) * 50 + 8], 1)
        jitter = torch.randn(a, 4, generator=gen) * torch.tensor([6.0, 6.0, 8.0, 8.0])
        boxes = torch.cat([centres, torch.full((a, 2), 24.0)], 1) + jitter
        boxes[:, 2:] = boxes[:, 2:].abs() + 2
        cls, obj = torch.randn(a, c, generator=gen), torch.randn(a, generator=gen)
        gt_cls = torch.randint(0, c, (g,), generator=gen)
        ours = simota_assign(boxes, cls, obj, centres, strides, gt, gt_cls)
        fg, matched, ious, ks = _official(boxes, cls, obj, centres, strides, gt, gt_cls, c)
        assert torch.equal(ours.fg_mask, fg)
        assert torch.equal(ours.matched_gt, matched)
        torch.testing.assert_close(ours.ious, ious)
        assert ours.dynamic_k.tolist() == ks.tolist()
