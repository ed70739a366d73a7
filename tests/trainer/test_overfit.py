"""End to end: fine-tune yolox-nano (official weights, new 3-class head) on a handful of generated
images until it detects them (mAP@.5 >= 0.8), then run the checkpoint through `streamyolox detect`.

Deterministic on one machine (seeded, `deterministic=True`, one thread), but not across CPU models: oneDNN,
MKL, ATen and OpenCV pick kernels by ISA, the last bits differ, and a 60-step fine-tune amplifies them.
The old recipe (15 no-aug epochs) ended at mAP@.5 0.784 on an Intel Xeon and 1.000 on an AMD EPYC: it
reached the target only in its last epochs. With 30 no-aug epochs it was measured on the AMD EPYC
(AVX-512) under ATEN_CPU_CAPABILITY=default/avx2/avx512, ONEDNN_MAX_CPU_ISA=SSE41/AVX2/native,
MKL_ENABLE_INSTRUCTIONS=SSE4_2/AVX2 and OpenCV's SIMD on/off (OPENCV_CPU_DISABLE, which also changes the
generated images), seeds 0-2 each (and 3-5 native): the last epoch scored mAP@.5 1.000 in every run, and
every run held >= 0.9 from epoch 48 at the latest (0.92 the lowest of epochs 51-60). 0.8 leaves that margin.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.trainer.synthetic import CLASS_NAMES, write_coco
from trainer.callbacks import CSVLogger
from trainer.config import TrainConfig, aug_for_model
from trainer.data import load_data
from trainer.engine import Trainer

pytestmark = pytest.mark.slow  # about 30 s on one quiet core; still run in CI

EPOCHS = 60
NO_AUG_EPOCHS = 30  # 15 reached the target only in the last epochs, too late on an Intel Xeon (see above)
SEED = 0
MAP50_TARGET = 0.8  # every measured setting ended at 1.0 (see the module docstring)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, nano_pth: Path) -> tuple[Path, Path, float]:
    root = tmp_path_factory.mktemp("overfit")
    ann = write_coco(root / "data", 8, seed=1)
    cfg = TrainConfig(model="yolox-nano", weights=str(nano_pth), input_size=(160, 160), epochs=EPOCHS, batch=8,
                      basic_lr_per_img=0.01 / 8, warmup_epochs=2, no_aug_epochs=NO_AUG_EPOCHS, eval_interval=100,
                      save_interval=10, workers=0, output=str(root / "run"), aug=aug_for_model("yolox-nano"), progress=False,
                      tensorboard=False, seed=SEED, deterministic=True)
    threads = torch.get_num_threads()
    # one thread: the reduction order (so the result) does not depend on the core count, and no OpenMP
    # spinning when the CI box is shared
    torch.set_num_threads(1)
    try:
        start = time.monotonic()
        Trainer(cfg, load_data(ann), callbacks=[CSVLogger()]).train()
        return ann, root / "run", time.monotonic() - start
    finally:
        torch.set_num_threads(threads)


def test_overfit_reaches_map50(trained: tuple[Path, Path, float]) -> None:
    _, run, seconds = trained
    rows = list(csv.DictReader((run / "metrics.csv").read_text().splitlines()))
    losses = [float(r["loss_total"]) for r in rows]
    scored = [float(r["map50"]) for r in rows if r["map50"]]
    print(f"overfit: {len(rows)} epochs in {seconds:.1f}s, loss {losses[0]:.3f} -> {losses[-1]:.3f}, "
          f"mAP@.5 {scored[-1]:.3f}, mAP {float(rows[-1]['map']):.3f}")
    assert losses[-1] < 0.4 * losses[0]  # measured: 0.11-0.15 of the first epoch's loss
    assert scored[-1] >= MAP50_TARGET
    assert (run / "best.pth").is_file() and (run / "last.pth").is_file()


def test_checkpoint_runs_in_detect(trained: tuple[Path, Path, float], tmp_path: Path) -> None:
    from streamyolox.cli import main

    ann, run, _ = trained
    image = ann.parent / "images" / "img_0000.jpg"
    out = tmp_path / "dets.json"
    assert main(["detect", str(image), "--weights", str(run / "best.pth"), "--output", str(out)]) == 0
    dets = json.loads(out.read_text().splitlines()[0])["detections"]
    truth = json.loads(ann.read_text())
    expected = {CLASS_NAMES[[3, 7, 11].index(a["category_id"])] for a in truth["annotations"]
                if a["image_id"] == 100}
    assert {d["class_name"] for d in dets} >= expected


def test_checkpoint_runs_in_pipeline(trained: tuple[Path, Path, float], tmp_path: Path) -> None:
    """`streamyolox run pipelines/demo.yaml --set model.weights=best.pth` on the training images."""
    ann, run, _ = trained
    repo = Path(__file__).resolve().parents[2]
    out = tmp_path / "out.jsonl"
    cmd = [sys.executable, "-m", "streamyolox", "run", str(repo / "pipelines" / "demo.yaml"), "--no-dashboard",
           "--set", f"stages.source.url={ann.parent / 'images'}", "--set", f"model.weights={run / 'best.pth'}",
           "--set", f"stages.json.path={out}"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=repo)
    assert result.returncode == 0, result.stderr[-2000:]
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 8
    names = {d["class_name"] for r in records for d in r["detections"]}
    assert names and names <= set(CLASS_NAMES)
