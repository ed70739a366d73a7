"""`TrainConfig`: every training setting in one typed dataclass, defaults from the official recipe."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from streamyolox.config_fields import check_ranges, ranged
from trainer.data.transforms import AugConfig

IOU_TYPES = ("iou", "giou")


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
        seed: seeds torch, numpy, `random`, the sampler, the loader workers and the augmentation.
        deterministic: also `torch.use_deterministic_algorithms(True)` (and cuDNN without autotuning) for
            the run, so that two runs on the same machine, thread count and CPU ISA give the same weights.
            Different CPU models can still differ in the last bits (oneDNN/MKL pick kernels by ISA).

    Raises:
        OptionError (a ValueError): a value out of its range (`epochs: expected an int >= 1, got 0`).
    """

    model: str = "yolox-s"
    depth: float | None = None
    width: float | None = None
    weights: str | None = None
    input_size: tuple[int, int] = ranged((640, 640), ge=32)
    epochs: int = ranged(300, ge=1)
    batch: int = ranged(64, ge=1)
    basic_lr_per_img: float = ranged(0.01 / 64.0, gt=0)
    warmup_epochs: int = ranged(5, ge=0)
    warmup_lr: float = ranged(0.0, ge=0)
    min_lr_ratio: float = ranged(0.05, ge=0, le=1)
    no_aug_epochs: int = ranged(15, ge=0)
    weight_decay: float = ranged(5e-4, ge=0)
    momentum: float = ranged(0.9, ge=0, lt=1)
    ema_decay: float | None = ranged(0.9998, gt=0, lt=1)
    amp: bool = True
    iou_type: str = "iou"
    eval_interval: int = ranged(10, ge=1)
    save_interval: int = ranged(1, ge=1)
    eval_conf: float = ranged(0.001, ge=0, le=1)
    eval_nms: float = ranged(0.65, ge=0, le=1)
    workers: int = ranged(4, ge=0)
    device: str = "auto"
    output: str = "runs/exp"
    resume: bool | str = False
    seed: int = ranged(0, ge=0, lt=2**32)  # numpy's seed range
    freeze_bn: bool = False
    deterministic: bool = False
    progress: bool = True
    tensorboard: bool = True
    aug: AugConfig = field(default_factory=AugConfig)

    def __post_init__(self) -> None:
        check_ranges(self)
        if any(side % 32 for side in self.input_size):
            raise ValueError(f"input_size: expected multiples of 32, got {tuple(self.input_size)}")
        if self.iou_type not in IOU_TYPES:
            raise ValueError(f"iou_type: expected one of {', '.join(IOU_TYPES)}, got {self.iou_type!r}")

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
