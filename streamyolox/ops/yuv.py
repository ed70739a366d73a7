"""Frames in the decoder's own planar YUV 4:2:0, and their conversion to BGR.

Why keep the planes: converting each decoded 720p frame to BGR with FFmpeg's swscale and then letterboxing
the BGR frame cost 2.1 core-ms a frame on the 2-core AMD EPYC (2026-12-07, decoding interleaved as in the
decode stage), against 0.6 for resizing the three planes to the model input and converting only those
pixels (`streamyolox.ops.letterbox.letterbox_yuv420`); decoding itself was 2.0-2.5 core-ms.

The conversion is the one swscale applies to the frame's tags (checked against PyAV's ``to_ndarray`` in
tests/sources/test_yuv_frames.py): the colour matrix of its colorspace (BT.601 when unspecified) and its
range (video range, Y 16-235 and chroma 16-240, unless tagged JPEG / full range).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

# Luma weights (Kr, Kb) of each colour matrix: ITU-R BT.601, BT.709, BT.2020 (non-constant luminance).
MATRICES = {"bt601": (0.299, 0.114), "bt709": (0.2126, 0.0722), "bt2020": (0.2627, 0.0593)}


@dataclass(frozen=True)
class Yuv420:
    """One frame as planar YUV 4:2:0 (FFmpeg's ``yuv420p`` / ``yuvj420p``).

    Attributes:
        y (ndarray[H, W] uint8): luma.
        u, v (ndarray[(H + 1) // 2, (W + 1) // 2] uint8): chroma (Cb, Cr), one sample per 2x2 luma block.
        colorspace: the colour matrix, a key of `MATRICES`.
        full_range: JPEG range (0-255) rather than video range (Y 16-235, chroma 16-240).
    """

    y: np.ndarray
    u: np.ndarray
    v: np.ndarray
    colorspace: str = "bt601"
    full_range: bool = False

    def __post_init__(self) -> None:
        if self.colorspace not in MATRICES:
            raise ValueError(f"Yuv420: colorspace must be one of {sorted(MATRICES)}, got {self.colorspace!r}")
        planes = (self.y, self.u, self.v)
        if any(not isinstance(p, np.ndarray) or p.ndim != 2 or p.dtype != np.uint8 for p in planes):
            raise ValueError("Yuv420: expected three 2-D uint8 planes, got "
                             + ", ".join(f"{getattr(p, 'shape', None)} {getattr(p, 'dtype', type(p).__name__)}"
                                         for p in planes))
        h, w = self.y.shape
        chroma = ((h + 1) // 2, (w + 1) // 2)
        if h == 0 or w == 0 or self.u.shape != chroma or self.v.shape != chroma:
            raise ValueError(f"Yuv420: luma {self.y.shape} needs chroma planes of {chroma}, "
                             f"got {self.u.shape} and {self.v.shape}")

    @property
    def height(self) -> int:
        return int(self.y.shape[0])

    @property
    def width(self) -> int:
        return int(self.y.shape[1])


@cache
def bgr_matrix(colorspace: str, full_range: bool) -> np.ndarray:
    """The affine map ``[B, G, R] = M @ [Y, U, V, 1]`` (ndarray[3, 4] float32) of a colour matrix and range."""
    kr, kb = MATRICES[colorspace]
    kg = 1.0 - kr - kb
    y_scale, c_scale, y_zero = (1.0, 1.0, 0.0) if full_range else (255 / 219, 255 / 224, 16.0)
    rows = (
        (y_scale, c_scale * 2 * (1 - kb), 0.0),  # B
        (y_scale, -c_scale * 2 * (1 - kb) * kb / kg, -c_scale * 2 * (1 - kr) * kr / kg),  # G
        (y_scale, 0.0, c_scale * 2 * (1 - kr)),  # R
    )
    m = np.zeros((3, 4), np.float64)
    for i, (a, b, c) in enumerate(rows):
        m[i, :3] = a, b, c
        m[i, 3] = -(a * y_zero + (b + c) * 128.0)
    out = m.astype(np.float32)
    out.flags.writeable = False  # shared by every caller (cached)
    return out


def yuv420_to_bgr_ref(yuv: Yuv420) -> np.ndarray:
    """Reference conversion of a whole frame, in float64: each chroma sample covers its 2x2 luma block,
    the matrix of `bgr_matrix` per pixel, rounded and clipped.

    Returns:
        ndarray[H, W, 3] uint8, BGR.
    """
    h, w = yuv.height, yuv.width
    u = np.repeat(np.repeat(yuv.u, 2, axis=0), 2, axis=1)[:h, :w]
    v = np.repeat(np.repeat(yuv.v, 2, axis=0), 2, axis=1)[:h, :w]
    m = bgr_matrix(yuv.colorspace, yuv.full_range).astype(np.float64)
    bgr = np.stack([yuv.y, u, v], axis=-1).astype(np.float64) @ m[:, :3].T + m[:, 3]
    return np.clip(np.rint(bgr), 0, 255).astype(np.uint8)
