"""`letterbox_yuv420` against the plain path (whole-frame reference conversion, then `letterbox_ref`), and the
colour matrices against the standards' forward equations."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from streamyolox.ops import Yuv420, letterbox, letterbox_ref, letterbox_yuv420
from streamyolox.ops.letterbox import PAD_VALUE, letterbox_geometry
from streamyolox.ops.yuv import MATRICES, bgr_matrix, yuv420_to_bgr_ref


def forward(bgr: np.ndarray, colorspace: str, full_range: bool) -> np.ndarray:
    """[Y, U, V] of BGR pixels (float), the standard's RGB -> Y'CbCr equations (the inverse of what is tested)."""
    kr, kb = MATRICES[colorspace]
    b, g, r = bgr[..., 0], bgr[..., 1], bgr[..., 2]
    y = kr * r + (1 - kr - kb) * g + kb * b
    u = (b - y) / (2 * (1 - kb))
    v = (r - y) / (2 * (1 - kr))
    if full_range:
        return np.stack([y, u + 128, v + 128], -1)
    return np.stack([16 + y * 219 / 255, 128 + u * 224 / 255, 128 + v * 224 / 255], -1)


@pytest.mark.parametrize("colorspace", sorted(MATRICES))
@pytest.mark.parametrize("full_range", [False, True])
def test_matrix_inverts_the_standard(colorspace: str, full_range: bool) -> None:
    rng = np.random.default_rng(3)
    bgr = np.concatenate([rng.uniform(0, 255, (500, 3)), np.eye(3) * 255, np.zeros((1, 3)), np.full((1, 3), 255)])
    yuv = forward(bgr, colorspace, full_range)
    m = bgr_matrix(colorspace, full_range).astype(np.float64)
    back = yuv @ m[:, :3].T + m[:, 3]
    np.testing.assert_allclose(back, bgr, atol=1e-3)  # float32 coefficients
    if not full_range:  # video range: black at Y 16, white at Y 235
        assert forward(np.zeros(3), colorspace, False)[0] == pytest.approx(16)
        assert forward(np.full(3, 255.0), colorspace, False)[0] == pytest.approx(235)


def test_yuv420_checks_its_planes() -> None:
    y, c = np.zeros((5, 7), np.uint8), np.zeros((3, 4), np.uint8)
    assert Yuv420(y, c, c).height == 5 and Yuv420(y, c, c).width == 7  # odd sizes round the chroma up
    with pytest.raises(ValueError, match=r"needs chroma planes of \(3, 4\)"):
        Yuv420(y, np.zeros((2, 3), np.uint8), np.zeros((2, 3), np.uint8))
    with pytest.raises(ValueError, match="2-D uint8 planes"):
        Yuv420(y.astype(np.float32), c, c)
    with pytest.raises(ValueError, match="colorspace must be one of"):
        Yuv420(y, c, c, colorspace="smpte240m")


def _street_frames(path: Path, n: int) -> list[Yuv420]:
    out = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            i420 = frame.to_ndarray(format="yuv420p")  # one (H * 3 / 2, W) array: Y, then U, then V
            h, w = frame.height, frame.width
            u = i420[h:h + h // 4].reshape(h // 2, w // 2)
            v = i420[h + h // 4:].reshape(h // 2, w // 2)
            out.append(Yuv420(i420[:h].copy(), u.copy(), v.copy()))
            if len(out) == n:
                return out
    return out


def _compare(yuv: Yuv420, size: tuple[int, int]) -> np.ndarray:
    """|letterbox_yuv420 - letterbox_ref(reference BGR)| over the image region; checks the padding and ratio."""
    got, ratio = letterbox_yuv420(yuv, size, dtype=np.uint8)
    want, want_ratio = letterbox_ref(yuv420_to_bgr_ref(yuv), size)
    assert ratio == want_ratio
    _, rh, rw = letterbox_geometry(yuv.height, yuv.width, size)
    pad = np.ones(got.shape, bool)
    pad[:, :rh, :rw] = False
    assert (got[pad] == PAD_VALUE).all() and (want[pad] == PAD_VALUE).all()
    return np.abs(got[:, :rh, :rw].astype(np.int32) - want[:, :rh, :rw].astype(np.int32))


def test_street_frames_close_to_the_plain_path(street_720p: Path) -> None:
    """Measured on these 20 frames (AMD EPYC, opencv 5.1): mean 0.35-0.36 a frame, at most 24 (at colour
    edges, where the whole-frame path holds each chroma sample over a 2x2 block and the resize blends it),
    0.4% of the values off by more than 2."""
    diffs = [_compare(yuv, (416, 416)) for yuv in _street_frames(street_720p, 20)]
    mean = float(np.mean([d.mean() for d in diffs]))
    assert 0.1 < mean < 0.6, mean  # not equal (it rounds once, not twice) and never far
    assert max(int(d.max()) for d in diffs) <= 40
    assert float(np.mean([(d > 2).mean() for d in diffs])) < 0.02


@pytest.mark.parametrize("colorspace", sorted(MATRICES))
@pytest.mark.parametrize("shape", [(359, 641), (480, 640), (1080, 810)])
def test_odd_and_tall_frames_and_every_matrix(colorspace: str, shape: tuple[int, int]) -> None:
    """Smooth synthetic content (gradients): rounding is the difference (at most 4 on even sizes), and on an
    odd width or height the chroma plane's last sample covers one luma pixel, not two, so resizing the plane
    skews it by up to half a chroma pixel at the far edge (at most 6 here: odd sizes are rare in video)."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    y = (16 + 219 * (0.5 + 0.5 * np.sin(xx / 40) * np.cos(yy / 55))).astype(np.uint8)
    ch, cw = (h + 1) // 2, (w + 1) // 2
    cy, cx = np.mgrid[0:ch, 0:cw].astype(np.float64)
    u = (128 + 60 * np.sin(cx / 30)).astype(np.uint8)
    v = (128 + 60 * np.cos(cy / 25)).astype(np.uint8)
    for full_range in (False, True):
        d = _compare(Yuv420(y, u, v, colorspace, full_range), (416, 416))
        # measured at most 4 and 6; one more for a CPU whose cv2.transform rounds differently (FMA)
        assert d.mean() < 0.8 and d.max() <= (5 if h % 2 == w % 2 == 0 else 7), (d.mean(), d.max())


def test_dtype_and_out_as_letterbox(street_720p: Path) -> None:
    yuv = _street_frames(street_720p, 1)[0]
    as_float, ratio = letterbox_yuv420(yuv, (320, 416))
    assert as_float.dtype == np.float32 and as_float.shape == (3, 320, 416)
    out = np.zeros((3, 320, 416), np.uint8)
    same, ratio2 = letterbox_yuv420(yuv, (320, 416), out=out, dtype=np.uint8)
    assert same is out and ratio2 == ratio == letterbox(np.zeros((720, 1280, 3), np.uint8), (320, 416))[1]
    np.testing.assert_array_equal(as_float, out.astype(np.float32))
    with pytest.raises(ValueError, match="out must be"):
        letterbox_yuv420(yuv, (416, 416), out=out, dtype=np.uint8)
