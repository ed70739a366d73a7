"""letterbox_ref follows the official preproc; letterbox (fast) equals it bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from streamyolox.ops import letterbox, letterbox_ref
from streamyolox.ops.letterbox import letterbox_geometry

SHAPES = [(576, 768), (1080, 1920), (720, 1280), (480, 640), (1330, 1330), (100, 37), (37, 100), (7, 5)]
SIZES = [(416, 416), (640, 640), (384, 640)]


def _bilinear_half_pixel(img: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Independent float bilinear with half-pixel centres and edge clamping (cv2's INTER_LINEAR model)."""
    h, w = img.shape[:2]

    def taps(n_out: int, n_in: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        src = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
        i0 = np.floor(src).astype(int)
        frac = src - i0
        frac[i0 < 0], i0[i0 < 0] = 0.0, 0
        over = i0 >= n_in - 1
        frac[over], i0[over] = 0.0, n_in - 1
        return i0, np.minimum(i0 + 1, n_in - 1), frac

    y0, y1, fy = taps(out_h, h)
    x0, x1, fx = taps(out_w, w)
    f = img.astype(np.float64)
    top = f[y0][:, x0] * (1 - fx)[None, :, None] + f[y0][:, x1] * fx[None, :, None]
    bot = f[y1][:, x0] * (1 - fx)[None, :, None] + f[y1][:, x1] * fx[None, :, None]
    return top * (1 - fy)[:, None, None] + bot * fy[:, None, None]


@pytest.fixture(scope="module")
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("size", SIZES)
def test_reference_contract(shape: tuple[int, int], size: tuple[int, int], rng: np.random.Generator) -> None:
    img = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    out, r = letterbox_ref(img, size)
    assert out.shape == (3, *size) and out.dtype == np.float32
    assert r == min(size[0] / shape[0], size[1] / shape[1])
    rh, rw = int(shape[0] * r), int(shape[1] * r)
    assert (out[:, rh:, :] == 114).all() and (out[:, :, rw:] == 114).all()
    # The resized block is BGR (not RGB), CHW, 0-255 and bilinear with half-pixel centres.
    expected = _bilinear_half_pixel(img, rh, rw).transpose(2, 0, 1)
    diff = np.abs(out[:, :rh, :rw] - expected)
    assert diff.max() <= 1.0 + 1e-6 and diff.mean() < 0.5


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("size", SIZES)
def test_fast_equals_reference(shape: tuple[int, int], size: tuple[int, int], rng: np.random.Generator) -> None:
    img = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    ref, r_ref = letterbox_ref(img, size)
    fast, r = letterbox(img, size)
    assert r == r_ref and fast.dtype == np.float32
    np.testing.assert_array_equal(fast, ref)
    as_u8, _ = letterbox(img, size, dtype=np.uint8)
    assert as_u8.dtype == np.uint8
    np.testing.assert_array_equal(as_u8.astype(np.float32), ref)


def test_out_buffer_reused_across_sizes(rng: np.random.Generator) -> None:
    out = np.full((3, 416, 416), -7.0, np.float32)  # stale content must never leak through
    for shape in [(1080, 1920), (1330, 1330), (100, 37), (576, 768)]:
        img = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
        got, _ = letterbox(img, (416, 416), out=out)
        assert got is out
        np.testing.assert_array_equal(out, letterbox_ref(img, (416, 416))[0])


def test_real_image(dog_image: np.ndarray) -> None:
    ref, r = letterbox_ref(dog_image, (416, 416))
    assert r == pytest.approx(416 / 768)
    assert letterbox_geometry(576, 768, (416, 416))[1:] == (312, 416)
    np.testing.assert_array_equal(letterbox(dog_image, (416, 416))[0], ref)


@pytest.mark.parametrize(
    "bad",
    [np.zeros((10, 10), np.uint8), np.zeros((10, 10, 4), np.uint8), np.zeros((10, 10, 3), np.float32),
     np.zeros((0, 10, 3), np.uint8)],
)
def test_bad_input(bad: np.ndarray) -> None:
    with pytest.raises(ValueError, match="letterbox"):
        letterbox(bad, (416, 416))
    with pytest.raises(ValueError, match="letterbox"):
        letterbox_ref(bad, (416, 416))


def test_bad_out() -> None:
    img = np.zeros((10, 10, 3), np.uint8)
    with pytest.raises(ValueError, match="out must be"):
        letterbox(img, (416, 416), out=np.empty((3, 416, 415), np.float32))
    with pytest.raises(ValueError, match="dtype"):
        letterbox(img, (416, 416), dtype=np.float64)
