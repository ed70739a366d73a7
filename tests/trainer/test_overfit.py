"""End to end: fine-tune yolox-nano (official weights, new 3-class head) on a handful of generated
images until it detects them (mAP@.5 >= 0.9), then run the checkpoint through `streamyolox detect`."""

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

pytestmark = pytest.mark.slow  # about 30 s on one core; still run in CI

CPU_BUDGET_S = 180  # generous: a quiet core needs about 30 s
EPOCHS = 60  # 40 epochs reached mAP@.5 0.78-0.82 on Intel Xeon and AMD EPYC: too close to the 0.9 target


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, nano_pth: Path) -> tuple[Path, Path, float]:
    root = tmp_path_factory.mktemp("overfit")
    ann = write_coco(root / "data", 8, seed=1)
    cfg = TrainConfig(model="yolox-nano", weights=str(nano_pth), input_size=(160, 160), epochs=EPOCHS, batch=8,
                      basic_lr_per_img=0.01 / 8, warmup_epochs=2, no_aug_epochs=15, eval_interval=100,
                      save_interval=10, workers=0, output=str(root / "run"), aug=aug_for_model("yolox-nano"), progress=False,
                      tensorboard=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one core: steady timing when the CI box is shared (OpenMP spins otherwise)
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
    assert seconds < CPU_BUDGET_S
    assert losses[-1] < 0.4 * losses[0]
    assert scored[-1] >= 0.9
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
