"""Weights imported from the official BN-folded ONNX export reproduce onnxruntime on that file."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from streamyolox.model import build_model, decode_outputs
from streamyolox.weights import WeightsError, load_model, load_onnx_weights

HW = [(52, 52), (26, 26), (13, 13)]


def max_errors(out: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    """(max abs error on obj/cls, max error of decoded boxes relative to the reference box's w/h)."""
    decoded = [decode_outputs(torch.from_numpy(a), HW, (8, 16, 32)).numpy()[..., :4] for a in (out, ref)]
    scale = np.concatenate([decoded[1][..., 2:4]] * 2, axis=-1)
    return float(np.abs(out[..., 4:] - ref[..., 4:]).max()), float(
        (np.abs(decoded[0] - decoded[1]) / scale).max()
    )


def test_onnx_import_matches_onnxruntime(nano_onnx, nano_pth, dog_input_416):
    expected = ort.InferenceSession(str(nano_onnx), providers=["CPUExecutionProvider"]).run(
        ["output"], {"images": dog_input_416}
    )[0]
    loaded = load_model(nano_onnx)
    assert loaded.name == "yolox-nano" and loaded.input_size == (416, 416) and loaded.model.is_fused
    x = torch.from_numpy(dog_input_416)
    with torch.no_grad():
        out = loaded.model(x, decode=False).numpy()
        from_pth = load_model(nano_pth).model(x, decode=False).numpy()
    score_err, box_err = max_errors(out, expected)
    assert score_err < 1e-4 and box_err < 1e-4
    assert max(max_errors(out, from_pth)) < 1e-5  # both official forms hold the same weights
    assert (out[..., 4:5] * out[..., 5:]).max() > 0.5


def test_onnx_wrong_architecture(nano_onnx):
    with pytest.raises(
        WeightsError, match=r"yolox_nano.onnx: ONNX is for width 0.25, model yolox-tiny expects width 0.375"
    ):
        load_onnx_weights(build_model("yolox-tiny"), nano_onnx)
    with pytest.raises(WeightsError, match="has 80 classes, model has 3"):
        load_model(nano_onnx, num_classes=3)


def test_onnx_conv_count_mismatch(nano_onnx):
    # Same width and depthwise as nano but deeper: the first conv agrees, the counts do not.
    with pytest.raises(WeightsError, match="ONNX has 113 convolutions, model custom has 149"):
        load_onnx_weights(build_model("yolox-nano", depth=0.67), nano_onnx)


def test_not_an_onnx_file(tmp_path):
    bad = tmp_path / "model.onnx"
    bad.write_text("not a protobuf")
    with pytest.raises(WeightsError) as exc:
        load_model(bad)
    assert "model.onnx: not a readable ONNX model" in str(exc.value) and "\n" not in str(exc.value)


def test_onnx_that_is_not_yolox(tmp_path):
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.zeros((8, 3, 3, 3), np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["images", "w"], ["output"], pads=[1, 1, 1, 1])],
        "classifier",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 32, 32])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 8, 32, 32])],
        [weight],
    )
    path = tmp_path / "classifier.onnx"
    onnx.save(helper.make_model(graph), str(path))
    with pytest.raises(WeightsError, match=r"classifier\.onnx: not a YOLOX export"):
        load_model(path)
