"""A restarted mp4 sink whose file stream starts over (its first frame is frame 0: the source reads the file
again from the start, as after the loss of a Ray node) writes `name.mp4` anew and removes the parts, so the
stream's frames are in its file once; one that gets a later frame first (the source went on) or a live
stream continues in `name.partN.mp4`, keeping what was written. Frame counts as PyAV decodes the files."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from streamyolox.detections import FrameMeta
from streamyolox.stages.mp4_sink import Mp4Sink
from streamyolox.stages.packet import Packet
from streamyolox.stages.testing import make_stage


def _write(tmp_path: Path, restarts: int, frames: range, live: bool = False) -> None:
    sink = make_stage(Mp4Sink, {"path": str(tmp_path / "{stream}.mp4"), "draw": False, "fps": 30.0})
    sink.ctx.restarts = restarts
    sink.open()
    for i in frames:
        image = np.full((48, 64, 3), i * 8, np.uint8)
        sink.process(Packet(FrameMeta(stream="cam", frame=i, time=i / 30, extra={"live": True} if live else {}),
                            frame=image))
    sink.close()


def _count(path: Path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


def test_a_stream_that_starts_over_is_written_anew(tmp_path: Path) -> None:
    _write(tmp_path, 0, range(12))  # the first incarnation got frames 0-11 into cam.mp4
    _write(tmp_path, 1, range(5, 20))  # restarted, the source went on: a continuation
    assert (_count(tmp_path / "cam.mp4"), _count(tmp_path / "cam.part1.mp4")) == (12, 15)
    _write(tmp_path, 2, range(20))  # restarted again, and the whole stream comes again from frame 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cam.mp4"]
    assert _count(tmp_path / "cam.mp4") == 20


def test_a_live_stream_from_frame_0_still_continues(tmp_path: Path) -> None:
    _write(tmp_path, 0, range(8), live=True)
    _write(tmp_path, 1, range(6), live=True)  # a live stream's numbering starts again with its connection
    assert (_count(tmp_path / "cam.mp4"), _count(tmp_path / "cam.part1.mp4")) == (8, 6)
