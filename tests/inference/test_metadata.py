"""Class names and input size read from checkpoints without importing torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from streamyolox.classes import COCO_CLASSES
from streamyolox.inference.metadata import class_names_for, default_input_size
from streamyolox.model.spec import ModelSpec


def make_project_checkpoint(path: Path) -> Path:
    from streamyolox.model import build_model
    from streamyolox.weights import save_checkpoint

    model = build_model("yolox-nano", num_classes=3)
    # tensors in `extra` (as the trainer's resume state has) must not disturb the torch-free reader
    save_checkpoint(path, model, "yolox-nano", ["cat", "hat", "bat"], (320, 288),
                    train_state={"w": model.head.cls_preds[0].weight.detach()})
    return path


def test_project_checkpoint_names_and_size(tmp_path: Path) -> None:
    ckpt = make_project_checkpoint(tmp_path / "mine.pth")
    assert class_names_for(ModelSpec(weights=str(ckpt))) == ("cat", "hat", "bat")
    assert default_input_size(ckpt, "yolox-s") == (320, 288)


def test_reading_metadata_does_not_import_torch(tmp_path: Path) -> None:
    ckpt = make_project_checkpoint(tmp_path / "mine.pth")
    code = ("import sys; from streamyolox.inference.metadata import class_names_for, default_input_size; "
            "from streamyolox.model.spec import ModelSpec; "
            f"print(class_names_for(ModelSpec(weights={str(ckpt)!r})), default_input_size({str(ckpt)!r}, 'x'), "
            "'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "('cat', 'hat', 'bat') (320, 288) False"


def test_official_and_other_files_fall_back(tmp_path: Path, nano_pth: Path) -> None:
    assert class_names_for(ModelSpec(weights=str(nano_pth))) == COCO_CLASSES
    assert default_input_size(nano_pth, "yolox-nano") == (416, 416)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    assert class_names_for(ModelSpec(weights=str(junk))) == COCO_CLASSES
    assert default_input_size(junk, "yolox-s") == (640, 640)
    assert default_input_size(None, "no-such-model") == (640, 640)
