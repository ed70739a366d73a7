"""Start weights for fine-tuning: load what fits, re-initialise the class layers for a new class count."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from pathlib import Path

import torch
from torch import Tensor, nn

from streamyolox.model import YOLOX
from streamyolox.model.blocks import BaseConv
from streamyolox.weights import WeightsError, read_checkpoint

log = logging.getLogger("trainer")
CLASS_LAYERS = "head.cls_preds."
PRIOR_PROB = 1e-2


def load_pretrained(model: YOLOX, path: str | Path) -> list[str]:
    """Load `path` (official or project checkpoint) into `model`; return the keys left re-initialised.

    Only ``head.cls_preds.*`` may differ (another class count): those layers get a fresh init with the
    official bias prior ``-log((1 - 0.01) / 0.01)``. Any other missing or mismatched key is an
    architecture mismatch.

    Raises:
        WeightsError: unreadable file or a different architecture (one line naming both).
    """
    state, _ = read_checkpoint(path)
    own = model.state_dict()
    reinit = [k for k in own if k.startswith(CLASS_LAYERS) and (k not in state or state[k].shape != own[k].shape)]
    bad = [k for k in own if k not in reinit and (k not in state or state[k].shape != own[k].shape)]
    extra = [k for k in state if k not in own]
    if bad or extra:
        example = (bad or extra)[0]
        raise WeightsError(f"{Path(path).name}: does not fit {model.name} ({len(bad)} missing/mismatched, "
                           f"{len(extra)} unexpected keys, e.g. {example})")
    merged = {k: (own[k] if k in reinit else state[k]) for k in own}
    model.load_state_dict(merged, strict=True)
    if reinit:
        reset_class_layers(model)
        log.info("%s: class layers re-initialised for %d classes", Path(path).name, model.num_classes)
    return reinit


def reset_class_layers(model: YOLOX, prior_prob: float = PRIOR_PROB) -> None:
    """Fresh default init of ``head.cls_preds`` with the official bias prior."""
    for conv in model.head.cls_preds:
        conv.reset_parameters()
        nn.init.constant_(conv.bias, -math.log((1 - prior_prob) / prior_prob))


def bn_is_folded(model: nn.Module) -> bool:
    """True when every BatchNorm is an identity (mean 0, var + eps = 1): the weights had BN folded into
    the convs (the shared official files), so batch statistics in training would not match them."""
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    return bool(bns) and all(_is_identity(m) for m in bns)


def _is_identity(bn: nn.BatchNorm2d) -> bool:
    mean, var = bn.running_mean, bn.running_var
    if mean is None or var is None:  # no running statistics (track_running_stats=False): nothing folded
        return False
    return bool((mean == 0).all()) and bool(((var + bn.eps) - 1).abs().max() < 1e-5)


def _conv_bn_pairs(model: nn.Module) -> list[tuple[nn.Conv2d, nn.BatchNorm2d]]:
    """(conv, BN) of every `BaseConv` whose BN is still there (not fused) and keeps running statistics."""
    pairs = []
    for m in model.modules():
        if isinstance(m, BaseConv) and isinstance(m.bn, nn.BatchNorm2d) and m.bn.running_mean is not None:
            pairs.append((m.conv, m.bn))
    return pairs


@torch.no_grad()
def unfold_bn(model: YOLOX, batches: Iterable[Tensor]) -> int:
    """Undo BN folding so that training sees the official parametrisation; the eval function is unchanged.

    A folded conv has tiny weights (the BN scale went into them) and an identity BN, so SGD steps are
    huge relative to the weights and the model diverges. For each conv + identity BN this measures the
    conv output mean ``mu`` and variance ``var`` per channel on `batches` (images [B, 3, H, W]), rescales
    the conv weights by ``t = (1/sqrt(3)) / ||w_c||`` (PyTorch's default init norm) and sets
    ``running_mean = t*mu``, ``running_var = t^2*var``, ``weight = sqrt(t^2*var + eps) / t``,
    ``bias = bias + mu``: in eval mode ``bn(t*x) = x + bias`` exactly as before, and in training the
    batch statistics are close to the running ones. Returns the number of layers unfolded.
    """
    pairs = _conv_bn_pairs(model)
    sums: dict[int, list[Tensor]] = {}

    def hook(bn: nn.Module, args: tuple[Tensor, ...]) -> None:
        x = args[0].double().transpose(0, 1).flatten(1)  # [C, B*H*W]
        acc = sums.setdefault(id(bn), [x.new_zeros(x.shape[0]), x.new_zeros(x.shape[0]), x.new_zeros(())])
        acc[0] += x.sum(1)
        acc[1] += (x * x).sum(1)
        acc[2] += x.shape[1]

    was_training = model.training
    model.eval()
    handles = [bn.register_forward_pre_hook(hook) for _, bn in pairs]
    try:
        for images in batches:
            model.forward_raw(images)
    finally:
        for h in handles:
            h.remove()
    model.train(was_training)
    for conv, bn in pairs:
        total, squares, n = sums[id(bn)]
        mu = total / n
        var = (squares / n - mu * mu).clamp(min=0)
        norm = conv.weight.double().flatten(1).norm(dim=1)
        t = torch.where(norm > 0, (1 / math.sqrt(3)) / norm.clamp(min=1e-30), torch.ones_like(norm))
        conv.weight.mul_(t.view(-1, 1, 1, 1).to(conv.weight.dtype))
        running_mean, running_var = bn.running_mean, bn.running_var
        assert running_mean is not None and running_var is not None  # _conv_bn_pairs kept only these
        running_mean.copy_(t * mu)
        running_var.copy_(t * t * var)
        bn.weight.copy_((t * t * var + bn.eps).sqrt() / t)
        bn.bias.add_(mu.to(bn.bias.dtype))
    return len(pairs)


def freeze_bn_stats(model: nn.Module) -> None:
    """Put every BatchNorm in eval mode (statistics frozen, affine still trained); call after ``train()``."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.eval()
