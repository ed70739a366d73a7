"""Engine pieces: lr schedule, parameter groups, EMA, fine-tuning init, BN unfolding, hooks and resume."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

from streamyolox.model import build_model
from streamyolox.weights import WeightsError, load_model, read_checkpoint
from tests.trainer.synthetic import write_coco
from trainer.config import TrainConfig
from trainer.data import load_data
from trainer.data.transforms import AugConfig
from trainer.engine import Callback, Trainer
from trainer.optim import ModelEMA, build_optimizer, yolox_warm_cos_lr
from trainer.pretrained import bn_is_folded, load_pretrained, unfold_bn


def test_warm_cos_schedule() -> None:
    kw = dict(lr=0.01, total_iters=100, warmup_iters=10, no_aug_iters=20, warmup_lr=0.0, min_lr_ratio=0.05)
    assert yolox_warm_cos_lr(5, **kw) == pytest.approx(0.01 * 0.25)  # quadratic: (5/10)^2
    assert yolox_warm_cos_lr(10, **kw) == pytest.approx(0.01)
    assert yolox_warm_cos_lr(45, **kw) == pytest.approx(0.0005 + 0.5 * 0.0095 * (1 + math.cos(math.pi * 35 / 70)))
    assert yolox_warm_cos_lr(80, **kw) == pytest.approx(0.0005)
    assert yolox_warm_cos_lr(99, **kw) == pytest.approx(0.0005)


def test_three_parameter_groups() -> None:
    model = build_model("custom", 3, depth=0.33, width=0.125)
    opt = build_optimizer(model, 0.01, 0.9, 5e-4)
    bn, weights, biases = ({id(p) for p in g["params"]} for g in opt.param_groups)
    assert [g["weight_decay"] for g in opt.param_groups] == [0, 5e-4, 0]
    assert all(g["nesterov"] and g["momentum"] == 0.9 for g in opt.param_groups)
    bn_ids = {id(m.weight) for m in model.modules() if isinstance(m, nn.BatchNorm2d)}
    bias_ids = {id(p) for n, p in model.named_parameters() if n.endswith("bias")}
    assert bn == bn_ids and biases == bias_ids
    assert len(bn) + len(weights) + len(biases) == len(list(model.parameters()))


def test_ema_ramp() -> None:
    model = nn.Linear(2, 2)
    ema = ModelEMA(model, 0.9998)
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update(model)
    d = 0.9998 * (1 - math.exp(-1 / 2000))
    expected = d * (model.weight - 1.0) + (1 - d) * model.weight
    torch.testing.assert_close(ema.ema.weight, expected)


def test_finetune_reinitialises_only_class_layers(nano_pth: Path) -> None:
    model = build_model("yolox-nano", 3)
    reinit = load_pretrained(model, nano_pth)
    assert sorted(reinit) == sorted(k for k in model.state_dict() if k.startswith("head.cls_preds."))
    state, _ = read_checkpoint(nano_pth)
    own = model.state_dict()
    assert all(torch.equal(own[k], v) for k, v in state.items() if not k.startswith("head.cls_preds."))
    for conv in model.head.cls_preds:
        assert conv.weight.shape[0] == 3
        torch.testing.assert_close(conv.bias, torch.full((3,), -math.log(99.0)))
    with pytest.raises(WeightsError, match="does not fit") as info:
        load_pretrained(build_model("yolox-tiny", 3), nano_pth)
    assert "\n" not in str(info.value)


def test_unfold_bn_keeps_the_function_and_restores_scale(nano_pth: Path) -> None:
    model = build_model("yolox-nano", 80)
    load_pretrained(model, nano_pth)
    assert bn_is_folded(model)
    gen = torch.Generator().manual_seed(0)
    calib = [torch.rand(4, 3, 128, 128, generator=gen) * 255]
    x = torch.rand(2, 3, 128, 128, generator=gen) * 255
    before = model.eval()(x)
    assert unfold_bn(model, calib) == sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    after = model.eval()(x)
    torch.testing.assert_close(after, before, atol=2e-3, rtol=1e-4)
    assert not bn_is_folded(model)
    stem = model.backbone.backbone.stem.conv.conv.weight
    torch.testing.assert_close(stem.flatten(1).norm(dim=1), torch.full((stem.shape[0],), 3 ** -0.5))


class Recorder(Callback):
    def __init__(self) -> None:
        self.events: list[tuple[str, int, bool, bool]] = []

    def _log(self, hook: str, t: Trainer) -> None:
        self.events.append((hook, t.epoch, t.dataset.strong, t.loss_fn.use_l1))

    def before_train(self, t: Trainer) -> None:
        self._log("before_train", t)

    def before_epoch(self, t: Trainer) -> None:
        self._log("before_epoch", t)

    def after_epoch(self, t: Trainer) -> None:
        self._log("after_epoch", t)

    def after_train(self, t: Trainer) -> None:
        self._log("after_train", t)


def _cfg(out: Path, epochs: int, resume: bool = False) -> TrainConfig:
    return TrainConfig(model="custom", depth=0.33, width=0.125, input_size=(96, 96), epochs=epochs, batch=4,
                       warmup_epochs=1, no_aug_epochs=1, eval_interval=1, workers=0, output=str(out),
                       resume=resume, progress=False, tensorboard=False,
                       aug=AugConfig(mosaic_scale=(0.5, 1.5), enable_mixup=True))


def test_hooks_no_aug_switch_checkpoints_and_resume(tmp_path: Path) -> None:
    data = load_data(write_coco(tmp_path / "data", 4, height=96, width=96))
    rec = Recorder()
    Trainer(_cfg(tmp_path / "run", 2), data, callbacks=[rec]).train()
    hooks = [(e[0], e[1]) for e in rec.events]
    assert hooks == [("before_train", 0), ("before_epoch", 0), ("after_epoch", 0), ("before_epoch", 1),
                     ("after_epoch", 1), ("after_train", 1)]
    strong_l1 = {e[1]: (e[2], e[3]) for e in rec.events if e[0] == "before_epoch"}
    assert strong_l1 == {0: (True, False), 1: (False, True)}  # last epoch: no mosaic, L1 on

    loaded = load_model(str(tmp_path / "run" / "best.pth"))
    assert loaded.class_names == tuple(data.class_names) and loaded.input_size == (96, 96)
    _, meta = read_checkpoint(tmp_path / "run" / "last.pth")
    assert meta is not None and meta["train_state"]["epoch"] == 2

    resumed = Trainer(_cfg(tmp_path / "run", 3, resume=True), data, callbacks=[rec := Recorder()])
    resumed.train()
    assert resumed.start_epoch == 2 and [e[1] for e in rec.events if e[0] == "before_epoch"] == [2]
    assert resumed.global_iter == 3  # one iteration per epoch, continued
    assert read_checkpoint(tmp_path / "run" / "last.pth")[1]["train_state"]["epoch"] == 3


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"epochs": 0}, "epochs: expected an int >= 1, got 0"),
    ({"seed": -1}, r"seed: expected an int in \[0, 4294967296\), got -1"),
    ({"input_size": (96, 100)}, r"input_size: expected multiples of 32, got \(96, 100\)"),
    ({"ema_decay": 1.5}, r"ema_decay: expected a number in \(0, 1\), got 1.5"),
    ({"iou_type": "diou"}, "iou_type: expected one of iou, giou, got 'diou'"),
])
def test_config_rejects_bad_values(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{message}$"):
        TrainConfig(**kwargs)


def test_deterministic_runs_give_the_same_weights(tmp_path: Path) -> None:
    """Same seed, `deterministic: true`, one thread: two runs end with equal weights (a third with another
    seed does not, so the comparison can fail); the global switch is put back after the run."""
    data = load_data(write_coco(tmp_path / "data", 4, height=96, width=96))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        runs = []
        for name, seed in (("a", 0), ("b", 0), ("c", 1)):
            cfg = _cfg(tmp_path / name, 2)
            cfg.seed, cfg.deterministic = seed, True
            trainer = Trainer(cfg, data)
            trainer.train()
            runs.append(trainer.model.state_dict())
            assert not torch.are_deterministic_algorithms_enabled()
    finally:
        torch.set_num_threads(threads)
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])
    assert not all(torch.equal(runs[0][k], runs[2][k]) for k in runs[0])
