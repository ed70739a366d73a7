"""`streamyolox train` and `streamyolox eval` from the command line on a YOLO folder."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from streamyolox.cli import main
from tests.trainer.synthetic import write_yolo


def test_train_then_eval_yolo_folder(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    write_yolo(tmp_path / "data", 4, "train", seed=1)
    yaml_path = write_yolo(tmp_path / "data", 2, "val", seed=2)
    yaml_path.write_text("path: .\ntrain: images/train\nval: images/val\nnames: [a, b, c]\n")
    run = tmp_path / "run"
    rc = main(["train", "--data", str(yaml_path), "--model", "custom", "--depth", "0.33", "--width", "0.125",
               "--epochs", "2", "--batch", "4", "--size", "96", "--output", str(run), "--workers", "0",
               "--no-aug-epochs", "1", "--warmup-epochs", "1", "--no-progress"])
    assert rc == 0
    assert {"best.pth", "last.pth", "metrics.csv", "tensorboard"} <= {p.name for p in run.iterdir()}
    rows = list(csv.DictReader((run / "metrics.csv").read_text().splitlines()))
    assert [r["epoch"] for r in rows] == ["1", "2"] and rows[-1]["map"] != ""
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    capsys.readouterr()
    out = tmp_path / "dets.json"
    assert main(["eval", "--data", str(yaml_path), "--weights", str(run / "best.pth"), "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "mAP@[.5:.95]" in printed and out.is_file()
    mean = float(printed.split("mAP@[.5:.95] ")[1].split()[0])
    best = max(float(r["map"]) for r in rows if r["map"])
    assert mean == pytest.approx(best, abs=0.01)  # best.pth, scored again (fused) from the command line


@pytest.mark.parametrize("argv, message", [
    (["train", "--data", "missing.json"], "missing.json: COCO annotation file not found"),
    (["train", "--data", "x.yaml", "--size", "100"], "--size 100"),
    (["eval", "--data", "nowhere", "--weights", "w.pth"], "nowhere: not a dataset"),
])
def test_errors_are_one_line(argv: list[str], message: str, capsys: pytest.CaptureFixture,
                             tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x.yaml").write_text("train: images\n")
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
