"""`pixel_format: yuv420p` at the reader: the decoder's planes with the colour matrix and range swscale would
use, checked against PyAV's own BGR conversion (swscale) of the same frames."""

from __future__ import annotations

import logging
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from streamyolox.ops import letterbox, letterbox_yuv420
from streamyolox.ops.yuv import yuv420_to_bgr_ref
from streamyolox.sources import AvReader, parse_source
from streamyolox.sources.av_reader import AvOptions, RawFrame

LOG = logging.getLogger("test")


def encode(path: Path, picture: np.ndarray, pix_fmt: str, colorspace: int, color_range: int, n: int = 4,
           codec: str = "libx264") -> Path:
    """A clip of `n` shifted copies of `picture`, tagged with an AVColorSpace and AVColorRange code."""
    h, w = picture.shape[:2]
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=30)
        stream.width, stream.height, stream.pix_fmt = w, h, pix_fmt
        stream.codec_context.colorspace = colorspace
        stream.codec_context.color_range = color_range
        for k in range(n):
            frame = av.VideoFrame.from_ndarray(np.roll(picture, 9 * k, axis=1).copy(), format="bgr24")
            for packet in stream.encode(frame.reformat(format=pix_fmt)):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def read(path: Path, pixel_format: str) -> list[RawFrame]:
    reader = AvReader(parse_source(str(path)), AvOptions(pixel_format=pixel_format), LOG)
    reader.open()
    try:
        return list(reader.frames())  # every frame kept after the decoder moved on, then closed
    finally:
        reader.close()


@pytest.fixture(scope="module")
def picture(street_720p: Path) -> np.ndarray:
    image = cv2.imread(str(street_720p.parent / "street.jpg"))
    assert image is not None
    return np.ascontiguousarray(image[200:680, 300:940])  # 480 x 640: people, cars, saturated colours


@pytest.mark.parametrize(("pix_fmt", "colorspace", "color_range", "matrix", "full"), [
    ("yuv420p", 2, 0, "bt601", False),   # untagged: swscale's default, BT.601 video range
    ("yuv420p", 1, 1, "bt709", False),
    ("yuv420p", 9, 1, "bt2020", False),
    ("yuv420p", 6, 2, "bt601", True),    # tagged JPEG range
    ("yuvj420p", 2, 2, "bt601", True),
])
def test_planes_convert_as_swscale_does(tmp_path: Path, picture: np.ndarray, pix_fmt: str, colorspace: int,
                                        color_range: int, matrix: str, full: bool) -> None:
    """Measured (AMD EPYC, PyAV 18.1): at most 3 apart from swscale per value with the frame's own matrix
    (2 full range), 8-17 with another; the bounds leave room for swscale's other SIMD paths on other CPUs."""
    clip = encode(tmp_path / "c.mp4", picture, pix_fmt, colorspace, color_range)
    planes, bgr = read(clip, "yuv420p"), read(clip, "bgr24")
    assert len(planes) == len(bgr) == 4
    for p, b in zip(planes, bgr):
        assert p.image is None and p.yuv is not None and b.yuv is None and b.image is not None
        assert (p.yuv.colorspace, p.yuv.full_range) == (matrix, full)
        assert p.size == b.size == (480, 640) and p.pts == b.pts
        diff = np.abs(yuv420_to_bgr_ref(p.yuv).astype(np.int32) - b.image.astype(np.int32))
        assert diff.max() <= 5 and diff.mean() < 1.5, (diff.max(), diff.mean())
    wrong = "bt709" if matrix != "bt709" else "bt601"
    other = dict(p.yuv.__dict__, colorspace=wrong)
    off = np.abs(yuv420_to_bgr_ref(type(p.yuv)(**other)).astype(np.int32) - b.image.astype(np.int32))
    assert off.max() > 6  # the check above can tell matrices apart


@pytest.mark.parametrize("pix_fmt", ["yuv444p", "yuv422p"])
def test_other_formats_come_as_bgr(tmp_path: Path, picture: np.ndarray, pix_fmt: str) -> None:
    clip = encode(tmp_path / "c.mp4", picture, pix_fmt, 2, 0, n=2)
    frames, bgr = read(clip, "yuv420p"), read(clip, "bgr24")
    assert [f.yuv for f in frames] == [None, None]
    for f, b in zip(frames, bgr):
        assert f.image is not None and b.image is not None
        np.testing.assert_array_equal(f.image, b.image)


def test_odd_sized_frames(tmp_path: Path, picture: np.ndarray) -> None:
    """An odd size (FFV1 stores it as is; libx264 refuses it): chroma planes of the rounded-up size, padded
    rows (line size 640) cut off. swscale takes its general scaler there, which blends chroma (up to 35
    from the 2x2-block reference at colour edges), so the model inputs are compared: measured mean 0.32,
    at most 10."""
    clip = encode(tmp_path / "c.mkv", np.ascontiguousarray(picture[:479, :639]), "yuv420p", 2, 0, n=2, codec="ffv1")
    for f, b in zip(read(clip, "yuv420p"), read(clip, "bgr24")):
        assert f.yuv is not None and f.size == (479, 639) and f.yuv.u.shape == f.yuv.v.shape == (240, 320)
        assert b.image is not None
        got, ratio = letterbox_yuv420(f.yuv, (416, 416), dtype=np.uint8)
        want, want_ratio = letterbox(b.image, (416, 416), dtype=np.uint8)
        diff = np.abs(got.astype(np.int32) - want.astype(np.int32))
        assert ratio == want_ratio and diff.mean() < 1.0 and diff.max() <= 40, (diff.max(), diff.mean())
