"""Optimisation as the official recipe: SGD with 3 parameter groups, ``yoloxwarmcos``, weight EMA."""

from __future__ import annotations

import math
from copy import deepcopy

import torch
from torch import nn


def build_optimizer(model: nn.Module, lr: float, momentum: float = 0.9,
                    weight_decay: float = 5e-4) -> torch.optim.SGD:
    """Nesterov SGD with three groups (official ``Exp.get_optimizer``): BatchNorm weights (no decay),
    other weights (decay), biases (no decay)."""
    bn_weights, weights, biases = [], [], []
    for name, module in model.named_modules():
        if isinstance(getattr(module, "bias", None), nn.Parameter):
            biases.append(module.bias)
        if isinstance(module, nn.BatchNorm2d) or "bn" in name.split(".")[-1:]:
            if isinstance(getattr(module, "weight", None), nn.Parameter):
                bn_weights.append(module.weight)
        elif isinstance(getattr(module, "weight", None), nn.Parameter):
            weights.append(module.weight)
    optimizer = torch.optim.SGD(bn_weights, lr=lr, momentum=momentum, nesterov=True)
    optimizer.add_param_group({"params": weights, "weight_decay": weight_decay})
    optimizer.add_param_group({"params": biases})
    return optimizer


def yolox_warm_cos_lr(iteration: int, lr: float, total_iters: int, warmup_iters: int, no_aug_iters: int,
                      warmup_lr: float = 0.0, min_lr_ratio: float = 0.05) -> float:
    """Learning rate at `iteration`: quadratic warm-up, cosine to ``lr * min_lr_ratio``, then flat for the
    last `no_aug_iters` (official ``yolox_warm_cos_lr``)."""
    min_lr = lr * min_lr_ratio
    if warmup_iters > 0 and iteration <= warmup_iters:
        return (lr - warmup_lr) * (iteration / warmup_iters) ** 2 + warmup_lr
    if iteration >= total_iters - no_aug_iters:
        return min_lr
    span = max(total_iters - warmup_iters - no_aug_iters, 1)
    return min_lr + 0.5 * (lr - min_lr) * (1.0 + math.cos(math.pi * (iteration - warmup_iters) / span))


class ModelEMA:
    """Exponential moving average of a model's floating-point state (official ``ModelEMA``).

    The decay ramps as ``decay * (1 - exp(-updates / 2000))`` so early averages follow the model.
    """

    def __init__(self, model: nn.Module, decay: float = 0.9998, updates: int = 0) -> None:
        self.ema = deepcopy(model).eval()
        self.decay = decay
        self.updates = updates
        for p in self.ema.parameters():
            p.requires_grad_(False)

    def current_decay(self) -> float:
        return self.decay * (1 - math.exp(-self.updates / 2000))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        d = self.current_decay()
        state = model.state_dict()
        for key, value in self.ema.state_dict().items():
            if value.dtype.is_floating_point:
                value.mul_(d).add_(state[key].detach(), alpha=1.0 - d)
            else:
                value.copy_(state[key])
