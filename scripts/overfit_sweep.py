"""Measure tests/trainer/test_overfit.py's recipe on this CPU: mAP@.5 per epoch of one seeded run.

    PYTHONPATH=. python scripts/overfit_sweep.py --seed 0            # one run, this CPU's kernels
    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 PYTHONPATH=. python scripts/overfit_sweep.py --seed 1

The ISA is chosen by environment variables read at import (ATEN_CPU_CAPABILITY=default/avx2/avx512,
ONEDNN_MAX_CPU_ISA=SSE41/AVX2/..., MKL_ENABLE_INSTRUCTIONS=SSE4_2/AVX2, OPENCV_CPU_DISABLE=AVX2,...), so a
sweep is one process per setting. Prints one `RESULT` line: the setting, the loss, the last mAP@.5, the
first epoch from which mAP@.5 stayed >= 0.9, and the curve. The table in test_overfit.py came from this.
"""

from __future__ import annotations

import argparse
import csv
import os
import tempfile
import time
from pathlib import Path

import torch

from tests.trainer.synthetic import write_coco
from tests.trainer.test_overfit import EPOCHS, NO_AUG_EPOCHS
from trainer.callbacks import CSVLogger
from trainer.config import TrainConfig, aug_for_model
from trainer.data import load_data
from trainer.engine import Trainer

SETTING_VARS = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS", "OPENCV_CPU_DISABLE")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=EPOCHS)
    p.add_argument("--no-aug-epochs", type=int, default=NO_AUG_EPOCHS)
    p.add_argument("--weights", default=os.path.join(os.environ.get("STREAMYOLOX_SHARED", "../shared"),
                                                     "weights", "yolox_nano.pth"))
    args = p.parse_args()
    torch.set_num_threads(1)  # as the test
    with tempfile.TemporaryDirectory(prefix="overfit-") as tmp:
        root = Path(tmp)
        ann = write_coco(root / "data", 8, seed=1)
        cfg = TrainConfig(model="yolox-nano", weights=args.weights, input_size=(160, 160), epochs=args.epochs,
                          batch=8, basic_lr_per_img=0.01 / 8, warmup_epochs=2, no_aug_epochs=args.no_aug_epochs,
                          eval_interval=100, save_interval=1000, workers=0, output=str(root / "run"),
                          aug=aug_for_model("yolox-nano"), progress=False, tensorboard=False, seed=args.seed,
                          deterministic=True)
        start = time.monotonic()
        Trainer(cfg, load_data(ann), callbacks=[CSVLogger()]).train()
        rows = list(csv.DictReader((root / "run" / "metrics.csv").read_text().splitlines()))
    curve = [(int(r["epoch"]), round(float(r["map50"]), 3)) for r in rows if r["map50"]]
    held = next((e for i, (e, _) in enumerate(curve) if all(v >= 0.9 for _, v in curve[i:])), None)
    setting = " ".join(f"{k}={os.environ[k]}" for k in SETTING_VARS if k in os.environ) or "native"
    print(f"RESULT {setting} seed={args.seed} loss {float(rows[0]['loss_total']):.3f} -> "
          f"{float(rows[-1]['loss_total']):.3f} last mAP@.5 {curve[-1][1]:.3f} >=0.9 from epoch {held} "
          f"({time.monotonic() - start:.0f} s) curve {curve}")


if __name__ == "__main__":
    main()
