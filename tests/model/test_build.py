"""Every zoo variant's state_dict matches the official listing exactly (keys, shapes, dtypes, order, params)."""

from __future__ import annotations

import json

import pytest
import torch

from streamyolox.model import ZOO, build_model

VARIANTS = list(ZOO)


@pytest.fixture(scope="module")
def listing(official_state_dicts):
    return json.loads(official_state_dicts.read_text())


@pytest.mark.parametrize("name", VARIANTS)
def test_state_dict_matches_official_listing(name, listing):
    ref = listing[name]
    model = build_model(name)
    got = [[k, list(v.shape), str(v.dtype).removeprefix("torch.")] for k, v in model.state_dict().items()]
    assert got == ref["state_dict"]
    assert sum(p.numel() for p in model.parameters()) == ref["params"]
    entry = ZOO[name]
    assert (entry.depth, entry.width, list(entry.test_size)) == (ref["depth"], ref["width"], ref["test_size"])
    assert model.name == name


def test_zoo_covers_listing(listing):
    assert set(ZOO) == set(listing)


def test_num_classes_changes_only_cls_preds():
    sd80 = build_model("yolox-nano").state_dict()
    sd3 = build_model("yolox-nano", num_classes=3).state_dict()
    assert list(sd80) == list(sd3)
    differing = {k for k in sd80 if sd80[k].shape != sd3[k].shape}
    assert differing == {f"head.cls_preds.{i}.{p}" for i in range(3) for p in ("weight", "bias")}
    assert sd3["head.cls_preds.0.weight"].shape[0] == 3


def test_custom_depth_width():
    model = build_model("custom", num_classes=5, depth=0.33, width=0.25).eval()
    assert model.name == "custom" and model.width == 0.25
    # Same multipliers as yolox-s but non-depthwise nano-width: differs from both zoo entries.
    assert model.state_dict()["backbone.backbone.stem.conv.conv.weight"].shape[0] == 16
    out = model(torch.zeros(1, 3, 64, 96))
    assert out.shape == (1, 8 * 12 + 4 * 6 + 2 * 3, 10)
    assert build_model("yolox-s", width=0.25).name == "custom"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "yolox-q"}, "unknown model 'yolox-q'"),
        ({"name": "custom", "depth": 0.33}, "needs both depth and width"),
        ({"name": "yolox-darknet53", "width": 0.5}, "fixed architecture"),
        ({"name": "yolox-s", "num_classes": 0}, "num_classes"),
    ],
)
def test_bad_build_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        build_model(**kwargs)


def test_name_aliases():
    assert build_model("YOLOX_Nano").name == "yolox-nano"
    assert build_model("tiny").name == "yolox-tiny"


def test_darknet53_forward_shapes():
    model = build_model("yolox-darknet53", num_classes=2).eval()
    with torch.no_grad():
        raw = model.forward_raw(torch.zeros(1, 3, 64, 64))
    assert [tuple(r.shape) for r in raw] == [(1, 7, 8, 8), (1, 7, 4, 4), (1, 7, 2, 2)]
