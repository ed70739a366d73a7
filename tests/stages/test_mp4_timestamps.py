"""mp4 sink across source discontinuities: a clip whose second half has another resolution and a PTS that
restarts (two MPEG-TS encodes joined byte for byte, decoded by the `decode` stage), and PTS resets, gaps
and missing PTS fed directly. PyAV decodes the file: frame count, strictly increasing PTS, ~1/fps each."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import av
import numpy as np
import pytest

from streamyolox.detections import FrameMeta
from streamyolox.stages.decode import DecodeStage
from streamyolox.stages.mp4_sink import MAX_PTS_GAP_S, Mp4Sink
from streamyolox.stages.packet import Packet
from streamyolox.stages.testing import run_stage
from tests.stages.test_mp4_sink import decode

FPS = 30
RED, GREEN = (0, 0, 200), (0, 200, 0)  # BGR


def encode_ts(path: Path, size: tuple[int, int], n: int, color: tuple[int, int, int]) -> None:
    """`n` frames of `color` with a white bar moving across, H.264 in MPEG-TS (PTS from the muxer's start)."""
    w, h = size
    with av.open(str(path), "w", format="mpegts") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for i in range(n):
            image = np.full((h, w, 3), color, np.uint8)
            image[:, (7 * i) % (w - 20):(7 * i) % (w - 20) + 20] = 255
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


@pytest.fixture(scope="module")
def joined_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """45 frames 640x360 (red) then 45 frames 480x360 (green) whose PTS starts over: like `cat a.ts b.ts`."""
    root = tmp_path_factory.mktemp("joined")
    encode_ts(root / "a.ts", (640, 360), 45, RED)
    encode_ts(root / "b.ts", (480, 360), 45, GREEN)
    clip = root / "ab.ts"
    clip.write_bytes((root / "a.ts").read_bytes() + (root / "b.ts").read_bytes())
    return clip


def assert_steady(times: list[float], n: int) -> None:
    steps = np.diff(times)
    assert len(times) == n
    assert (steps > 0).all(), "output PTS must strictly increase"
    np.testing.assert_allclose(steps, 1 / FPS, atol=1e-3)


def test_resolution_change_with_restarting_pts(joined_clip: Path, tmp_path: Path,
                                               caplog: pytest.LogCaptureFixture) -> None:
    packets = run_stage(DecodeStage, options={"url": str(joined_clip)})
    sizes = [(p.meta.width, p.meta.height) for p in packets]
    pts = [p.meta.pts for p in packets]
    # The source really does both: 45 + 45 frames, a size change and a PTS that goes back at frame 45.
    assert sizes == [(640, 360)] * 45 + [(480, 360)] * 45
    assert pts[45] < pts[44] - 1.0
    out = tmp_path / "joined.mp4"
    with caplog.at_level(logging.WARNING):
        run_stage(Mp4Sink, packets, {"path": str(out), "draw": False})
    frames, times, info = decode(out)
    assert_steady(times, 90)
    assert info["size"] == (640, 360)  # one file at the first size
    warned = [r.getMessage() for r in caplog.records if "frame size changed" in r.getMessage()]
    assert len(warned) == 1 and "480x360" in warned[0], warned
    # The second half is scaled into 640x360 with its 4:3 aspect kept: 480x360 centred, 80 px black bars.
    for frame in frames[50::10]:
        bars = np.concatenate([frame[:, :76], frame[:, -76:]], axis=1)
        assert bars.max() < 30, "side bars should be black"
        centre = frame[150:210, 84:556].reshape(-1, 3).astype(int)
        colour = np.median(centre, axis=0)
        assert colour[1] > 150 and colour[0] < 50 and colour[2] < 50, colour  # green, not stretched red
    assert np.median(frames[20][150:210, 100:540].reshape(-1, 3), axis=0)[2] > 150  # first half still red


def meta_packets(pts: list[float | None]) -> list[Packet]:
    image = np.full((120, 160, 3), 90, np.uint8)
    return [Packet(FrameMeta("cam", i, t, time.time(), 160, 120, {"fps": FPS}), image) for i, t in enumerate(pts)]


def test_pts_resets_jumps_and_gaps(tmp_path: Path) -> None:
    """No PTS on the first frame (RTSP), a reset to 0 (reconnect), a jump past MAX_PTS_GAP_S (clock step):
    each frame keeps one frame period; an in-range gap (dropped frames) keeps the source's spacing."""
    run = [i / FPS for i in range(10)]
    pts = [None, *run, *run, *[100 + 2 * MAX_PTS_GAP_S + t for t in run]]
    out = tmp_path / "resets.mp4"
    run_stage(Mp4Sink, meta_packets(pts), {"path": str(out), "draw": False})
    assert_steady(decode(out)[1], 31)
    gap = [i / FPS for i in range(5)] + [(i + 10) / FPS for i in range(5)]  # 10 frames dropped upstream
    run_stage(Mp4Sink, meta_packets(gap), {"path": str(tmp_path / "gap.mp4"), "draw": False})
    steps = np.diff(decode(tmp_path / "gap.mp4")[1])
    np.testing.assert_allclose(steps, [1 / FPS] * 4 + [6 / FPS] + [1 / FPS] * 4, atol=1e-3)
