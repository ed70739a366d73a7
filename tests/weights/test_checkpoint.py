"""Official and project `.pth` checkpoints: strict loading, one-line errors, the project format round trip."""

from __future__ import annotations

import pytest
import torch

from streamyolox.classes import COCO_CLASSES
from streamyolox.model import build_model
from streamyolox.weights import WeightsError, load_checkpoint, load_model, read_checkpoint, save_checkpoint


def assert_one_line(exc: pytest.ExceptionInfo, *fragments: str) -> None:
    message = str(exc.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message


def test_official_wrapped_and_bare_state_dict(nano_pth, tmp_path):
    official = torch.load(nano_pth, map_location="cpu", weights_only=True)["model"]
    bare = tmp_path / "bare.pth"
    torch.save(official, bare)
    ddp = tmp_path / "ddp.pth"
    torch.save({"model": {f"module.{k}": v for k, v in official.items()}}, ddp)
    for path in (nano_pth, bare, ddp):
        model = build_model("yolox-nano")
        assert load_checkpoint(model, path) is None  # official files carry no project metadata
        torch.testing.assert_close(
            model.state_dict()["head.stems.0.conv.weight"], official["head.stems.0.conv.weight"]
        )


def test_load_model_official(nano_pth):
    loaded = load_model(nano_pth)  # architecture inferred from the file
    assert loaded.name == "yolox-nano" and loaded.input_size == (416, 416)
    assert loaded.class_names == COCO_CLASSES and loaded.source_path == nano_pth
    assert loaded.model.is_fused and not loaded.model.training


@pytest.mark.parametrize(
    ("name", "num_classes", "fragments"),
    [
        ("yolox-nano", 3, ("yolox_nano.pth: head.cls_preds.0.weight has 80 classes, model has 3",)),
        ("yolox-s", 80, ("checkpoint is for width 0.25 (depthwise), model yolox-s expects width 0.5",)),
        ("yolox-darknet53", 80, ("model yolox-darknet53 expects yolox-darknet53",)),
    ],
)
def test_wrong_model_for_checkpoint(nano_pth, name, num_classes, fragments):
    with pytest.raises(WeightsError) as exc:
        load_checkpoint(build_model(name, num_classes), nano_pth)
    assert_one_line(exc, *fragments)
    with pytest.raises(ValueError):  # WeightsError is a ValueError for callers that catch that
        load_model(nano_pth, name=name, num_classes=num_classes)


def test_depth_mismatch_named(tmp_path):
    path = tmp_path / "m.pth"
    torch.save({"model": build_model("yolox-s", depth=0.67).state_dict()}, path)
    with pytest.raises(WeightsError) as exc:
        load_checkpoint(build_model("yolox-s"), path)
    assert_one_line(exc, "m.pth: checkpoint has 2 bottlenecks", "yolox-s has 1")


def test_bad_files(nano_pth, tmp_path):
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(nano_pth.read_bytes()[:100_000])
    text = tmp_path / "notes.pth"
    text.write_text("these are not weights\n")
    other = tmp_path / "other.pth"
    torch.save({"model": {"fc.weight": torch.zeros(2, 2)}}, other)
    cases = [
        (tmp_path / "missing.pth", "weights file not found"),
        (truncated, "truncated.pth: not a readable PyTorch checkpoint"),
        (text, "notes.pth: not a readable PyTorch checkpoint"),
        (other, "other.pth: not a YOLOX checkpoint"),
    ]
    for path, fragment in cases:
        with pytest.raises(WeightsError) as exc:
            load_model(path)
        assert_one_line(exc, fragment)


def test_project_checkpoint_round_trip(tmp_path):
    model = build_model("yolox-tiny", num_classes=3).eval()
    path = save_checkpoint(
        tmp_path / "run" / "best.pth", model, "yolox-tiny", ["cat", "dog", "cow"], (320, 384), epoch=7
    )
    assert sorted(p.name for p in path.parent.iterdir()) == ["best.pth"]  # no temp file left
    _, meta = read_checkpoint(path)
    assert meta["format_version"] == 1 and meta["epoch"] == 7 and meta["width"] == 0.375
    loaded = load_model(path, name="yolox-nano")  # the file's own name wins over a default --model
    assert (loaded.name, loaded.class_names, loaded.input_size) == (
        "yolox-tiny",
        ("cat", "dog", "cow"),
        (320, 384),
    )
    x = torch.rand(1, 3, 320, 384) * 255
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x), model(x), rtol=1e-4, atol=1e-3)
    with pytest.raises(WeightsError, match="checkpoint has 3 classes, asked for 80"):
        load_model(path, num_classes=80)


def test_project_checkpoint_custom_architecture(tmp_path):
    model = build_model("custom", num_classes=2, depth=0.33, width=0.125)
    path = save_checkpoint(tmp_path / "c.pth", model, "custom", ["a", "b"], (256, 256))
    loaded = load_model(path, fuse=False)
    assert loaded.name == "custom" and loaded.model.width == 0.125
    assert loaded.model.state_dict().keys() == model.state_dict().keys()


def test_save_refuses_fused_or_wrong_names(tmp_path):
    model = build_model("yolox-nano", num_classes=2).eval()
    with pytest.raises(ValueError, match="3 class names for a 2-class model"):
        save_checkpoint(tmp_path / "a.pth", model, "yolox-nano", ["a", "b", "c"], (416, 416))
    with pytest.raises(ValueError, match="fused"):
        save_checkpoint(tmp_path / "a.pth", model.fuse(), "yolox-nano", ["a", "b"], (416, 416))
    assert not list(tmp_path.iterdir())
