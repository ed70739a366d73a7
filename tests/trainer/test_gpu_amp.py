"""On a CUDA device: a few training iterations with AMP (fp16 autocast + GradScaler) stay finite and
agree with fp32 on the first loss. Runs only where CUDA is present (``pytest -m gpu tests/trainer``);
imports nothing the device image lacks (no pycocotools, PyAV, Pillow)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from tests.trainer.synthetic import CLASS_NAMES, make_image
from trainer.config import TrainConfig
from trainer.data.records import DetectionData, ImageRecord, LoadReport
from trainer.data.transforms import AugConfig
from trainer.engine import Trainer

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def _data(tmp_path: Path) -> DetectionData:
    rng = np.random.default_rng(0)
    records = []
    for i in range(8):
        sample = make_image(rng, 160, 160)
        path = tmp_path / f"{i}.png"
        cv2.imwrite(str(path), sample.image)
        records.append(ImageRecord(path, 160, 160, sample.boxes, sample.classes, i))
    return DetectionData(records, list(CLASS_NAMES), [0, 1, 2], LoadReport("synthetic"))


def _first_iters(tmp_path: Path, amp: bool, iters: int) -> Trainer:
    cfg = TrainConfig(model="yolox-s", input_size=(160, 160), epochs=5, batch=8, workers=0, device="cuda",
                      amp=amp, output=str(tmp_path / f"run_amp{amp}"), progress=False, tensorboard=False,
                      aug=AugConfig(mosaic_prob=0.0, hsv_prob=0.0, flip_prob=0.0), seed=1)
    torch.manual_seed(0)
    trainer = Trainer(cfg, _data(tmp_path))
    trainer.before_train()
    trainer.before_epoch()
    trainer.history = []
    batch = next(iter(trainer.loader))
    for i in range(iters):
        trainer.iter = i
        trainer.before_iter()
        trainer.train_one_iter(batch)
        trainer.history.append(trainer.losses["total"])
    return trainer


def test_amp_training_is_finite_and_close_to_fp32(tmp_path: Path) -> None:
    amp = _first_iters(tmp_path, True, 5)
    assert amp.use_amp and amp.scaler.is_enabled()
    assert all(np.isfinite(amp.history))
    fp32 = _first_iters(tmp_path, False, 1)
    assert abs(amp.history[0] - fp32.history[0]) < 0.05 * fp32.history[0]
    assert amp.ema is not None and amp.ema.updates == 5
