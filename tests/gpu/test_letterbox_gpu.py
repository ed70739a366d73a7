"""letterbox_gpu (CuPy kernel) against letterbox_ref on the device."""

from __future__ import annotations

import numpy as np
import pytest

from streamyolox.ops import letterbox_ref
from tests.gpu.conftest import need, test_image

pytestmark = pytest.mark.gpu


def _check(got: np.ndarray, ref: np.ndarray, downscale: bool) -> None:
    """Within one grey level, mean < 0.05. (Downscales equal cv2 exactly where the kernel follows this cv2
    build's arithmetic; tests/ops/test_letterbox_kernel.py pins that on CPU, so here only the tolerance.)"""
    diff = np.abs(got - ref)
    exact = float((diff == 0).mean())
    assert diff.max() <= 1.0 and diff.mean() < 0.05, (float(diff.max()), float(diff.mean()), exact)
    if downscale:
        assert exact > 0.99, exact


@pytest.mark.parametrize("shape", [(1080, 1920), (720, 1280), (576, 768), (1330, 1330), (333, 517),
                                   (100, 37), (7, 5)])
@pytest.mark.parametrize("size", [(416, 416), (640, 640), (384, 640)])
def test_parity_host_input(shape: tuple[int, int], size: tuple[int, int]) -> None:
    need("cupy")
    from streamyolox.ops import letterbox_gpu

    img = np.random.default_rng(shape[1]).integers(0, 256, (*shape, 3), dtype=np.uint8)
    out, r = letterbox_gpu(img, size)
    ref, r_ref = letterbox_ref(img, size)
    assert r == r_ref and out.shape == (3, *size) and out.dtype == np.float32
    _check(out.get(), ref, r <= 1)


def test_device_inputs_and_out_slot() -> None:
    need("cupy")
    need("torch")
    import cupy as cp
    import torch

    from streamyolox.ops import letterbox_gpu

    img = test_image()
    ref, _ = letterbox_ref(img, (416, 416))
    # A pitched CuPy view (rows padded), a torch tensor, and writing into one slot of a torch batch.
    pitched = cp.zeros((img.shape[0], img.shape[1] + 64, 3), cp.uint8)[:, : img.shape[1]]
    pitched[:] = cp.asarray(img)
    _check(letterbox_gpu(pitched, (416, 416))[0].get(), ref, True)
    timg = torch.from_numpy(img).cuda()
    batch = torch.zeros((2, 3, 416, 416), device="cuda")
    out, _ = letterbox_gpu(timg, (416, 416), out=batch[1])
    assert out.data.ptr == batch[1].data_ptr()  # written in place, no copy
    torch.cuda.synchronize()
    _check(batch[1].cpu().numpy(), ref, True)
    assert float(batch[0].abs().max()) == 0.0
    with pytest.raises(ValueError, match="letterbox_gpu"):
        letterbox_gpu(img[:, :, 0], (416, 416))
