"""`TrainConfig`: every training setting in one typed dataclass, defaults from the official recipe."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from trainer.data.transforms import AugConfig


@dataclass
class TrainConfig:
    """Settings of one run (official ``yolox_base.Exp`` defaults unless noted).

    Attributes:
        model: zoo name (``yolox-nano`` ... ``yolox-x``) or ``custom`` with depth and width.
        weights: a checkpoint to start from (official or project); class layers re-initialised when the
            class count differs.
        input_size: training and evaluation size (h, w), multiples of 32.
        epochs, batch: total epochs; total batch over all processes.
        basic_lr_per_img: lr = basic_lr_per_img * batch (0.01 / 64).
        warmup_epochs, warmup_lr: quadratic warm-up from warmup_lr.
        min_lr_ratio: the cosine ends at lr * min_lr_ratio, kept for the no-aug epochs.
        no_aug_epochs: last epochs without mosaic/mixup/affine, with the L1 loss.
        ema_decay: EMA of the weights (None: off); the ramp ``decay * (1 - exp(-updates / 2000))``.
        amp: mixed precision (CUDA only).
        resume: True continues from ``<output>/last.pth``; a path continues from that file.
        eval_interval: evaluate every N epochs (and every no-aug epoch, and the last one).
        save_interval: write ``last.pth`` every N epochs (and after the last); ``best.pth`` is written
            whenever an evaluation improves mAP.
        freeze_bn: keep BatchNorm statistics fixed (eval mode) while training. Starting weights with BN
            folded into the convs are always unfolded first (`trainer.pretrained.unfold_bn`).
    """

    model: str = "yolox-s"
    depth: float | None = None
    width: float | None = None
    weights: str | None = None
    input_size: tuple[int, int] = (640, 640)
    epochs: int = 300
    batch: int = 64
    basic_lr_per_img: float = 0.01 / 64.0
    warmup_epochs: int = 5
    warmup_lr: float = 0.0
    min_lr_ratio: float = 0.05
    no_aug_epochs: int = 15
    weight_decay: float = 5e-4
    momentum: float = 0.9
    ema_decay: float | None = 0.9998
    amp: bool = True
    iou_type: str = "iou"
    eval_interval: int = 10
    save_interval: int = 1
    eval_conf: float = 0.001
    eval_nms: float = 0.65
    workers: int = 4
    device: str = "auto"
    output: str = "runs/exp"
    resume: bool | str = False
    seed: int = 0
    freeze_bn: bool = False
    progress: bool = True
    tensorboard: bool = True
    aug: AugConfig = field(default_factory=AugConfig)

    @property
    def lr(self) -> float:
        return self.basic_lr_per_img * self.batch

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def aug_for_model(model: str) -> AugConfig:
    """The official per-variant augmentation: nano and tiny use mosaic scale (0.5, 1.5) and no mixup."""
    key = model.lower().replace("_", "-")
    if key in ("yolox-nano", "nano", "yolox-tiny", "tiny"):
        return AugConfig(mosaic_scale=(0.5, 1.5), enable_mixup=False)
    return AugConfig()
