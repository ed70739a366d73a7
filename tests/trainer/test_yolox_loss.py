"""YOLOX loss: consistency of decode, L1 targets and IoU terms; it goes down when training a tiny set."""

from __future__ import annotations

import math

import numpy as np
import torch

from streamyolox.model import build_model
from tests.trainer.synthetic import make_image
from trainer.boxes import aligned_iou, pairwise_iou
from trainer.data.dataset import boxes_to_labels
from trainer.data.transforms import letterbox, to_tensor_layout
from trainer.loss import YOLOXLoss
from trainer.optim import build_optimizer


def _raw_predicting(box: torch.Tensor, num_classes: int, size: int = 64) -> list[torch.Tensor]:
    """Raw level maps where every anchor regresses exactly `box` (cx, cy, w, h)."""
    levels = []
    for stride in (8, 16, 32):
        n = size // stride
        ys, xs = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
        raw = torch.zeros(1, 5 + num_classes, n, n)
        raw[0, 0] = box[0] / stride - xs
        raw[0, 1] = box[1] / stride - ys
        raw[0, 2] = math.log(box[2] / stride)
        raw[0, 3] = math.log(box[3] / stride)
        levels.append(raw)
    return levels


def test_perfect_regression_has_zero_iou_and_l1_loss() -> None:
    box = torch.tensor([30.0, 26.0, 20.0, 14.0])
    loss = YOLOXLoss(num_classes=2, use_l1=True)
    out = loss(_raw_predicting(box, 2), [torch.tensor([[1.0, *box.tolist()]])])
    assert out["num_fg"] == 10  # every candidate has IoU 1: dynamic k = top-10 sum = 10
    assert out["iou"] < 1e-5 and out["l1"] < 1e-5
    # obj: 10 positives and the rest negatives at logit 0, each BCE log(2), over num_fg
    anchors = 8 * 8 + 4 * 4 + 2 * 2
    assert torch.isclose(out["obj"], torch.tensor(anchors * math.log(2) / 10), rtol=1e-4)
    # cls: targets one-hot x IoU (1), logits 0: 2 classes x log(2) per fg, over num_fg
    assert torch.isclose(out["cls"], torch.tensor(2 * math.log(2)), rtol=1e-4)
    assert torch.isclose(out["total"], 5.0 * out["iou"] + out["obj"] + out["cls"] + out["l1"])
    assert YOLOXLoss(2, use_l1=False)(_raw_predicting(box, 2), [torch.tensor([[1.0, *box.tolist()]])])["l1"] == 0


def test_iou_and_giou() -> None:
    gen = torch.Generator().manual_seed(0)
    a = torch.cat([torch.rand(20, 2, generator=gen) * 50, torch.rand(20, 2, generator=gen) * 20 + 1], 1)
    b = torch.cat([torch.rand(20, 2, generator=gen) * 50, torch.rand(20, 2, generator=gen) * 20 + 1], 1)
    torch.testing.assert_close(aligned_iou(a, b), pairwise_iou(a, b).diagonal())
    # disjoint unit squares 1 apart: IoU 0, hull 3 x 1, union 2 -> GIoU = -1/3
    p, t = torch.tensor([[0.5, 0.5, 1.0, 1.0]]), torch.tensor([[2.5, 0.5, 1.0, 1.0]])
    torch.testing.assert_close(aligned_iou(p, t, giou=True), torch.tensor([-1 / 3]))


def test_loss_decreases_on_a_tiny_set() -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # steady on a shared box (OpenMP spin-waits otherwise)
    try:
        _train_tiny_set()
    finally:
        torch.set_num_threads(threads)


def _train_tiny_set() -> None:
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    images, targets = [], []
    for _ in range(4):
        sample = make_image(rng, 128, 128)
        padded, _ = letterbox(sample.image, (128, 128))
        images.append(to_tensor_layout(padded))
        targets.append(torch.from_numpy(boxes_to_labels(sample.boxes, sample.classes)))
    x = torch.from_numpy(np.stack(images))
    model = build_model("custom", 3, depth=0.33, width=0.125).train()
    loss_fn = YOLOXLoss(3)
    opt = build_optimizer(model, lr=0.02)
    history = []
    for _ in range(25):
        out = loss_fn(model.forward_raw(x), targets)
        opt.zero_grad()
        out["total"].backward()
        opt.step()
        history.append(float(out["total"].detach()))
    print("tiny set: loss", " ".join(f"{v:.2f}" for v in history))
    assert np.mean(history[-5:]) < 0.75 * np.mean(history[:3])
