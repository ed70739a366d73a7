"""yolox-nano inference on CUDA against the CPU, and the whole GPU chain against the CPU chain."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tests.gpu.conftest import nano_weights, need, test_image

pytestmark = pytest.mark.gpu


def _nano(device: str) -> tuple[Any, bool]:
    import torch

    from streamyolox.model import build_model

    model = build_model("yolox-nano").eval()
    path = nano_weights()
    if path is not None:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state.get("model", state), strict=True)
    else:
        torch.manual_seed(0)  # no weights on this machine: random init still checks CPU/GPU parity
    return model.fuse().to(device), path is not None


def test_cuda_matches_cpu_fp32() -> None:
    need("torch")
    import torch

    from streamyolox.ops import letterbox_ref

    cpu, _ = _nano("cpu")
    gpu, _ = _nano("cuda")
    x = torch.from_numpy(letterbox_ref(test_image(), (416, 416))[0])[None]
    tf32 = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False  # strict fp32 for the comparison
    try:
        with torch.no_grad():
            ref = cpu(x).numpy()
            got = gpu(x.cuda()).cpu().numpy()
    finally:
        torch.backends.cudnn.allow_tf32 = tf32
    np.testing.assert_allclose(got[..., 4:], ref[..., 4:], atol=1e-4)
    np.testing.assert_allclose(got[..., :4], ref[..., :4], rtol=1e-4, atol=1e-2)


def test_gpu_chain_matches_cpu_chain() -> None:
    need("torch")
    need("cupy")
    need("numba")
    import torch

    from streamyolox.ops import letterbox, letterbox_gpu, postprocess, postprocess_gpu

    model, real = _nano("cuda")
    img = test_image()
    x_cpu, r = letterbox(img, (416, 416))
    x_gpu, r_gpu = letterbox_gpu(img, (416, 416))
    assert r == r_gpu
    with torch.no_grad():
        pred_gpu = model(torch.as_tensor(x_gpu, device="cuda")[None])[0]
        pred_cpu = model(torch.from_numpy(x_cpu)[None].cuda())[0].cpu().numpy()
    thr = 0.25 if real else 0.01
    got = postprocess_gpu(pred_gpu, r, thr)
    want = postprocess(pred_cpu, r, thr)
    assert got.names() == want.names()
    np.testing.assert_allclose(got.scores, want.scores, atol=1e-3)
    np.testing.assert_allclose(got.xyxy, want.xyxy, atol=0.5)
    if real and nano_weights() is not None and img.shape == (576, 768, 3):
        assert {"dog", "bicycle", "car"} <= set(got.names())
