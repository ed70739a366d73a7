"""annotate_counts(): lines with an arrow to the `in` side and their totals, zone outlines with occupancy;
the mp4 sink draws them into the file (checked on PyAV's decode of it)."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from streamyolox.analytics.events import Counts, LineCount, ZoneCount
from streamyolox.detections import Detections, FrameMeta
from streamyolox.draw.annotate import LINE_COLOR, ZONE_COLOR, annotate_counts
from streamyolox.stages.mp4_sink import Mp4Sink
from streamyolox.stages.packet import Packet
from streamyolox.stages.testing import run_stage

H, W = 720, 1280
ZONE = ((100.0, 400.0), (400.0, 400.0), (400.0, 650.0), (100.0, 650.0))


def counts(points: tuple = ((640.0, 0.0), (640.0, 720.0))) -> Counts:
    return Counts(lines={"door": LineCount(points, 3, 1)},
                  zones={"bay": ZoneCount(ZONE, 2, 1, {"person": 1})})


def colored(img: np.ndarray, color: tuple[int, int, int], tol: int = 0) -> np.ndarray:
    return (np.abs(img.astype(int) - np.array(color)) <= tol).all(axis=2)


def test_line_arrow_points_to_the_in_side_and_zone_is_outlined() -> None:
    frame = np.zeros((H, W, 3), np.uint8)
    out = annotate_counts(frame, counts())
    assert not frame.any()  # copy by default
    line = colored(out, LINE_COLOR)
    assert line[50:300, 638:643].any(axis=1).all()  # the line itself, all along
    # left of the line nothing amber: the arrow and the `door in 3 out 1` label are on the right (`in` side)
    assert not line[:, :630].any() and line[:, 660:].any()
    zone = colored(out, ZONE_COLOR)
    assert zone[450:600, 98:103].any(axis=1).all() and zone[400:650, 398:403].any(axis=1).all()
    assert zone[350:398, 100:400].any()  # its label box above the top edge
    assert not zone[410:640, 110:390].any()  # outline only: the inside stays as it was

    flipped = colored(annotate_counts(frame, counts(((640.0, 720.0), (640.0, 0.0)))), LINE_COLOR)
    assert not flipped[:, 650:].any() and flipped[:, :620].any()  # drawn the other way: `in` is leftwards
    assert annotate_counts(frame, None).sum() == 0


def test_mp4_sink_draws_lines_zones_and_totals(tmp_path: Path) -> None:
    path = tmp_path / "counts.mp4"
    packets = [Packet(FrameMeta("cam", i, i / 30, 0.0, W, H), np.full((H, W, 3), 40, np.uint8),
                      detections=Detections([[700, 300, 760, 420]], [0.9], [0], [5]), counts=counts())
               for i in range(6)]
    run_stage(Mp4Sink, packets, {"path": str(path), "fps": 30})
    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]
    assert len(frames) == 6
    last = frames[-1]
    assert colored(last[50:300, 636:645], LINE_COLOR, tol=40).any(axis=1).all()
    assert colored(last[450:600, 96:105], ZONE_COLOR, tol=40).any(axis=1).all()
    assert colored(last[:, :600], LINE_COLOR, tol=40).sum() == 0
