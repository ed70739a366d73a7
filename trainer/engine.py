"""`Trainer`: the official YOLOX training loop as hooks, with callbacks for progress and logging.

Hooks, in order: before_train, (before_epoch, (before_iter, train_one_iter, after_iter)*, after_epoch)*,
after_train. Each runs the trainer's own step, then the same-named method of every callback.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler

from streamyolox.model import YOLOX, build_model
from streamyolox.weights import WeightsError, save_checkpoint
from trainer.config import TrainConfig
from trainer.data.dataset import TrainDataset, collate_train, worker_init
from trainer.data.records import DetectionData
from trainer.determinism import DeterminismState, enable_determinism, restore_determinism, seed_everything
from trainer.distributed import DistInfo, all_reduce_mean, barrier, init_distributed, shutdown
from trainer.evaluate import EvalResult, evaluate
from trainer.loss import YOLOXLoss
from trainer.optim import ModelEMA, build_optimizer, yolox_warm_cos_lr
from trainer.pretrained import bn_is_folded, freeze_bn_stats, load_pretrained, unfold_bn

log = logging.getLogger("trainer")
HOOKS = ("before_train", "before_epoch", "before_iter", "after_iter", "after_epoch", "after_train")
EVAL_ON_TRAIN_MAX = 500  # without a val split, score this many training images
UNFOLD_IMAGES = 64  # augmented images measured to undo BN folding


class Callback:
    """Base class: override any hook; each gets the trainer (read its state, do not replace it)."""

    def before_train(self, trainer: Trainer) -> None: ...
    def before_epoch(self, trainer: Trainer) -> None: ...
    def before_iter(self, trainer: Trainer) -> None: ...
    def after_iter(self, trainer: Trainer) -> None: ...
    def after_epoch(self, trainer: Trainer) -> None: ...
    def after_train(self, trainer: Trainer) -> None: ...


class RawForward(nn.Module):
    """Wraps `YOLOX.forward_raw` as `forward`, so DistributedDataParallel syncs its gradients."""

    def __init__(self, model: YOLOX) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> list[Tensor]:
        return self.model.forward_raw(x)


class Trainer:
    """Train a YOLOX on `train_data`, evaluating on `val_data` (or up to 500 training images).

    State callbacks may read: ``epoch``, ``iter``, ``global_iter``, ``iters_per_epoch``, ``lr``,
    ``losses`` (last iteration's terms), ``epoch_losses`` (running means), ``last_eval``, ``best_map``,
    ``dist``, ``cfg``, ``output``, ``no_aug``.
    """

    def __init__(self, cfg: TrainConfig, train_data: DetectionData, val_data: DetectionData | None = None,
                 callbacks: Sequence[Callback] = ()) -> None:
        self.cfg = cfg
        self.train_data = train_data
        self.val_data = val_data
        self.callbacks = list(callbacks)
        self.output = Path(cfg.output)
        self.class_names = list(train_data.class_names)
        self.epoch = self.start_epoch = self.iter = self.global_iter = 0
        self.lr = 0.0
        self.best_map = -1.0
        self.losses: dict[str, float] = {}
        self.epoch_losses: dict[str, float] = {}
        self.last_eval: EvalResult | None = None
        self.no_aug = False
        self._determinism: DeterminismState | None = None

    # -- the loop ---------------------------------------------------------------------------------
    def train(self) -> EvalResult | None:
        """Run all epochs; return the last evaluation."""
        self.before_train()
        try:
            for epoch in range(self.start_epoch, self.cfg.epochs):
                self.epoch = epoch
                self.before_epoch()
                for index, batch in enumerate(self.loader):
                    self.iter = index
                    self.before_iter()
                    self.train_one_iter(batch)
                    self.after_iter()
                self.after_epoch()
        finally:
            self.after_train()
        return self.last_eval

    def _emit(self, hook: str) -> None:
        for cb in self.callbacks:
            getattr(cb, hook)(self)

    # -- hooks ------------------------------------------------------------------------------------
    def before_train(self) -> None:
        cfg = self.cfg
        self.dist: DistInfo = init_distributed(cfg.device)
        seed_everything(cfg.seed + self.dist.rank)
        if cfg.deterministic:
            self._determinism = enable_determinism()
        self.device = self.dist.device
        self.model = self._build_model().to(self.device)
        self._build_loader()
        if not cfg.resume and bn_is_folded(self.model):
            self._unfold_bn()
        self.optimizer = build_optimizer(self.model, cfg.lr, cfg.momentum, cfg.weight_decay)
        self.ema = ModelEMA(self.model, cfg.ema_decay) if cfg.ema_decay else None
        self.loss_fn = YOLOXLoss(len(self.class_names), self.model.strides, cfg.iou_type)
        if cfg.resume:
            self._resume()
        self.net: nn.Module = RawForward(self.model)
        if self.dist.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = DistributedDataParallel(self.net, device_ids=ids)
        self.use_amp = cfg.amp and self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp)
        self.total_iters = cfg.epochs * self.iters_per_epoch
        if self.dist.is_main:
            self.output.mkdir(parents=True, exist_ok=True)
        self._emit("before_train")

    def before_epoch(self) -> None:
        self.no_aug = self.epoch >= self.cfg.epochs - self.cfg.no_aug_epochs
        self.dataset.strong = not self.no_aug  # official close_mosaic
        self.loss_fn.use_l1 = self.no_aug
        if isinstance(self.sampler, DistributedSampler):
            self.sampler.set_epoch(self.epoch)
        self.model.train()
        if self.cfg.freeze_bn:
            freeze_bn_stats(self.model)
        self.epoch_losses = {}
        self.epoch_start = time.monotonic()
        self._emit("before_epoch")

    def before_iter(self) -> None:
        self.lr = yolox_warm_cos_lr(self.global_iter + 1, self.cfg.lr, self.total_iters,
                                    self.cfg.warmup_epochs * self.iters_per_epoch,
                                    self.cfg.no_aug_epochs * self.iters_per_epoch,
                                    self.cfg.warmup_lr, self.cfg.min_lr_ratio)
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr
        self._emit("before_iter")

    def train_one_iter(self, batch: tuple[Tensor, list[Tensor]]) -> None:
        images, targets = batch
        images = images.to(self.device, non_blocking=True)
        targets = [t.to(self.device) for t in targets]
        with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.use_amp):
            raw = self.net(images)
        out = self.loss_fn(raw, targets)
        if not torch.isfinite(out["total"]):
            raise RuntimeError(f"loss is {float(out['total'])} at epoch {self.epoch + 1} iteration "
                               f"{self.iter + 1}: lower the learning rate (--lr-per-img) or check the labels")
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(out["total"]).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.ema is not None:
            self.ema.update(self.model)
        self.global_iter += 1
        self.losses = {k: float(v.detach()) for k, v in out.items()}

    def after_iter(self) -> None:
        n = self.iter + 1
        for key, value in self.losses.items():
            self.epoch_losses[key] = self.epoch_losses.get(key, 0.0) + (value - self.epoch_losses.get(key, 0.0)) / n
        self._emit("after_iter")

    def after_epoch(self) -> None:
        self.epoch_time = time.monotonic() - self.epoch_start
        self.epoch_losses = {k: float(all_reduce_mean(torch.tensor(v, device=self.device), self.dist))
                             for k, v in sorted(self.epoch_losses.items())}
        last = self.epoch + 1 == self.cfg.epochs
        due = last or self.no_aug or (self.epoch + 1) % max(self.cfg.eval_interval, 1) == 0
        self.last_eval = self.evaluate() if due and self.dist.is_main else None
        if self.dist.is_main:
            self._save()
        barrier(self.dist)
        self._emit("after_epoch")

    def after_train(self) -> None:
        try:
            self._emit("after_train")
        finally:
            if self._determinism is not None:
                restore_determinism(self._determinism)
                self._determinism = None
            shutdown(self.dist)

    # -- pieces -----------------------------------------------------------------------------------
    @property
    def eval_model(self) -> YOLOX:
        """What gets evaluated and saved: the EMA weights when EMA is on (as official)."""
        return self.ema.ema if self.ema is not None else self.model

    def evaluate(self) -> EvalResult:
        data = self.val_data
        if data is None:
            data = DetectionData(self.train_data.records[:EVAL_ON_TRAIN_MAX], self.train_data.class_names,
                                 self.train_data.category_ids, self.train_data.report, self.train_data.coco_gt)
        result = evaluate(self.eval_model, data, self.cfg.input_size, self.device,
                          batch=max(self.cfg.batch // self.dist.world_size, 1), workers=self.cfg.workers,
                          conf=self.cfg.eval_conf, nms=self.cfg.eval_nms)
        log.info("epoch %d: mAP@[.5:.95] %.4f mAP@.5 %.4f on %d images", self.epoch + 1, result.map,
                 result.map50, len(data))
        return result

    def _build_model(self) -> YOLOX:
        cfg = self.cfg
        model = build_model(cfg.model, len(self.class_names), depth=cfg.depth, width=cfg.width)
        if cfg.weights and not cfg.resume:
            load_pretrained(model, cfg.weights)
        return model

    def _unfold_bn(self) -> None:
        """The starting weights have BN folded (the shared official files): restore trainable BN from
        the statistics of a few augmented training batches (see `unfold_bn`)."""
        count = min(UNFOLD_IMAGES, len(self.dataset))
        batch = max(min(self.cfg.batch, count), 1)
        samples = [self.dataset[i][0] for i in range(count)]
        batches = [torch.from_numpy(np.stack(samples[i:i + batch])).to(self.device)
                   for i in range(0, count, batch)]
        layers = unfold_bn(self.model, batches)
        log.info("BatchNorm unfolded in %d layers from %d images (the starting weights had BN folded)",
                 layers, count)

    def _build_loader(self) -> None:
        cfg = self.cfg
        self.dataset = TrainDataset(self.train_data.records, cfg.input_size, cfg.aug, seed=cfg.seed + self.dist.rank)
        per_process = max(cfg.batch // self.dist.world_size, 1)
        if self.dist.enabled:
            self.sampler: Any = DistributedSampler(self.dataset, shuffle=True, seed=cfg.seed)
        else:
            self.sampler = RandomSampler(self.dataset, generator=torch.Generator().manual_seed(cfg.seed))
        drop_last = len(self.dataset) // self.dist.world_size >= per_process
        # its own generator: the workers' seeds (and so their augmentation, see `worker_init`) follow from
        # cfg.seed alone, not from whatever else drew from torch's global RNG first
        workers_rng = torch.Generator().manual_seed(cfg.seed + self.dist.rank)
        self.loader = DataLoader(self.dataset, batch_size=per_process, sampler=self.sampler,
                                 num_workers=cfg.workers, collate_fn=collate_train, worker_init_fn=worker_init,
                                 pin_memory=self.device.type == "cuda", drop_last=drop_last,
                                 generator=workers_rng)
        self.iters_per_epoch = len(self.loader)

    def _save(self) -> None:
        cfg = self.cfg
        score = self.last_eval.map if self.last_eval is not None else None
        meta: dict[str, Any] = {"epoch": self.epoch + 1, "map": score,
                                "map50": self.last_eval.map50 if self.last_eval else None}
        if score is not None and score > self.best_map:
            self.best_map = score
            save_checkpoint(self.output / "best.pth", self.eval_model, self.model.name, self.class_names,
                            cfg.input_size, **meta)
        if (self.epoch + 1) % max(cfg.save_interval, 1) and self.epoch + 1 != cfg.epochs:
            return
        state = {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                 "epoch": self.epoch + 1, "global_iter": self.global_iter, "best_map": self.best_map,
                 "ema_updates": self.ema.updates if self.ema else 0,
                 "config": {"model": cfg.model, "epochs": cfg.epochs, "batch": cfg.batch}}
        save_checkpoint(self.output / "last.pth", self.eval_model, self.model.name, self.class_names,
                        cfg.input_size, train_state=state, **meta)

    def _resume(self) -> None:
        path = self.output / "last.pth" if self.cfg.resume is True else Path(str(self.cfg.resume))
        if not path.is_file():
            raise WeightsError(f"--resume: {path} not found")
        ckpt = torch.load(path, map_location=self.device, weights_only=True)
        state = (ckpt.get("streamyolox") or {}).get("train_state")
        if not state:
            raise WeightsError(f"--resume: {path} holds no training state (not a last.pth)")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.ema is not None:
            self.ema.ema.load_state_dict(ckpt["model"])
            self.ema.updates = int(state["ema_updates"])
        self.start_epoch, self.global_iter = int(state["epoch"]), int(state["global_iter"])
        self.best_map = float(state["best_map"])
        log.info("resumed from %s at epoch %d", path, self.start_epoch + 1)
        if not math.isfinite(self.best_map):
            self.best_map = -1.0
