"""YOLOX-Nano with the official checkpoint reproduces onnxruntime on the official ONNX export."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch

from streamyolox.model import build_model, decode_outputs
from streamyolox.model.head import make_grids


@pytest.fixture(scope="module")
def nano(nano_pth):
    model = build_model("yolox-nano").eval()
    model.load_state_dict(torch.load(nano_pth, map_location="cpu", weights_only=True)["model"])
    return model


@pytest.fixture(scope="module")
def ort_output(nano_onnx, dog_input_416):
    session = ort.InferenceSession(str(nano_onnx), providers=["CPUExecutionProvider"])
    return session.run(["output"], {"images": dog_input_416})[0]


def output_errors(out: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    """(max abs error on obj/cls, max box error relative to the box size) between undecoded outputs.

    Boxes are decoded; centre errors are divided by the reference box's w/h, size errors by its w/h.
    """
    hw = [(52, 52), (26, 26), (13, 13)]
    a = numpy_decode(out, hw, [8, 16, 32])[..., :4]
    b = numpy_decode(ref, hw, [8, 16, 32])[..., :4]
    box_err = np.abs(a - b) / np.concatenate([b[..., 2:4], b[..., 2:4]], axis=-1)
    return float(np.abs(out[..., 4:] - ref[..., 4:]).max()), float(box_err.max())


def test_nano_pth_matches_onnxruntime(nano, ort_output, dog_input_416):
    with torch.no_grad():
        out = nano(torch.from_numpy(dog_input_416), decode=False).numpy()
    assert out.shape == (1, 3549, 85)
    score_err, box_err = output_errors(out, ort_output)
    assert score_err < 1e-4 and box_err < 1e-4
    # The scene has a confident detection (the dog), so the comparison covers real scores, not only ~0.
    assert (out[..., 4:5] * out[..., 5:]).max() > 0.5


def numpy_decode(undecoded: np.ndarray, hw: list[tuple[int, int]], strides: list[int]) -> np.ndarray:
    """Independent decode written from the YOLOX paper's definition, for comparison."""
    centers, scales = [], []
    for (h, w), s in zip(hw, strides):
        ys, xs = np.divmod(np.arange(h * w), w)
        centers.append(np.stack([xs, ys], 1))
        scales.append(np.full((h * w, 1), s))
    grid, stride = np.concatenate(centers)[None], np.concatenate(scales)[None]
    out = undecoded.astype(np.float64).copy()
    out[..., :2] = (out[..., :2] + grid) * stride
    out[..., 2:4] = np.exp(out[..., 2:4]) * stride
    return out


def test_decode_true_equals_decode_of_undecoded(nano, dog_input_416):
    x = torch.from_numpy(dog_input_416)
    with torch.no_grad():
        undecoded = nano(x, decode=False)
        decoded = nano(x)
    hw = [(52, 52), (26, 26), (13, 13)]
    torch.testing.assert_close(decoded, decode_outputs(undecoded, hw, nano.strides))
    np.testing.assert_allclose(
        decoded.numpy(), numpy_decode(undecoded.numpy(), hw, [8, 16, 32]), rtol=1e-5, atol=1e-3
    )
    # Boxes are in input pixels: centres inside the 416 input.
    assert decoded[..., :2].min() >= 0 and decoded[..., :2].max() <= 416 + 32


def test_make_grids_order():
    grids, strides = make_grids([(2, 3), (1, 2)], [8, 16], torch.float32, "cpu")
    assert grids[0].tolist() == [[0, 0], [1, 0], [2, 0], [0, 1], [1, 1], [2, 1], [0, 0], [1, 0]]
    assert strides[0, :, 0].tolist() == [8] * 6 + [16] * 2


def test_forward_raw_levels_and_flatten(nano, dog_input_416):
    x = torch.from_numpy(dog_input_416)
    with torch.no_grad():
        raw = nano.forward_raw(x)
        undecoded = nano(x, decode=False)
    assert [tuple(r.shape) for r in raw] == [(1, 85, 52, 52), (1, 85, 26, 26), (1, 85, 13, 13)]
    # Anchor 52*52 + 26*3 + 5 is level 1 (stride 16), row 3, column 5.
    idx = 52 * 52 + 26 * 3 + 5
    torch.testing.assert_close(undecoded[0, idx, :4], raw[1][0, :4, 3, 5])
    torch.testing.assert_close(undecoded[0, idx, 4:], raw[1][0, 4:, 3, 5].sigmoid())
    assert nano.strides == (8, 16, 32) and nano.num_classes == 80


def test_head_is_stateless(nano):
    before = dict(vars(nano.head))
    with torch.no_grad():
        nano(torch.zeros(1, 3, 64, 64))
        nano(torch.zeros(2, 3, 96, 64))
    assert dict(vars(nano.head)).keys() == before.keys()
    assert not hasattr(nano.head, "hw") and not hasattr(nano.head, "grids")


def test_train_mode_same_output_form():
    model = build_model("yolox-nano", num_classes=3).train()
    out = model(torch.rand(2, 3, 64, 64) * 255)
    assert out.shape == (2, 64 + 16 + 4, 8)
    assert out.requires_grad and out[..., 4:].min() >= 0 and out[..., 4:].max() <= 1


def test_fuse_preserves_outputs(nano_pth, dog_input_416):
    model = build_model("yolox-nano").eval()
    model.load_state_dict(torch.load(nano_pth, map_location="cpu", weights_only=True)["model"])
    # Non-trivial BN statistics so the folding is really exercised.
    gen = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.01)
            m.running_var.copy_(1 + torch.rand(m.num_features, generator=gen) * 0.1)
    x = torch.from_numpy(dog_input_416)
    with torch.no_grad():
        before = model(x, decode=False)
        assert model.fuse() is model and model.is_fused
        after = model(x, decode=False)
    assert not any(k.endswith("running_mean") for k in model.state_dict())
    assert (after[..., 4:] - before[..., 4:]).abs().max() < 1e-4
    assert ((after[..., :4] - before[..., :4]).abs() / before[..., :4].abs().clamp(min=1)).max() < 1e-4


def test_bad_input_shape(nano):
    with pytest.raises(ValueError, match=r"multiples of 32, got \[1, 3, 100, 64\]"):
        nano(torch.zeros(1, 3, 100, 64))
