"""The mp4 sink draws a count stage's lines, zones, running totals and the track ids: PyAV decodes the
file and finds the line's amber and the zone's blue along their geometry, the totals and `#id` labels
where `draw.annotate_counts` / `annotate` put them, and the plain background elsewhere."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from streamyolox.analytics.events import Counts, LineCount, ZoneCount
from streamyolox.detections import Detections, FrameMeta
from streamyolox.draw import annotate, annotate_counts
from streamyolox.draw.annotate import LINE_COLOR, ZONE_COLOR
from streamyolox.stages.mp4_sink import Mp4Sink
from streamyolox.stages.packet import Packet
from streamyolox.stages.testing import run_stage

W, H, N = 640, 480, 12
LINE = ((320.0, 40.0), (320.0, 440.0))
ZONE = ((420.0, 300.0), (600.0, 300.0), (600.0, 460.0), (420.0, 460.0))
BACKGROUND = 90


def _counts(i: int) -> Counts:
    return Counts(lines={"door": LineCount(LINE, count_in=i // 4, count_out=1)},
                  zones={"bay": ZoneCount(ZONE, enter=1, exit=0, occupancy={"person": 1})})


def _dets(with_ids: bool = True) -> Detections:
    return Detections([[80, 120, 200, 400], [460, 330, 540, 450]], [0.9, 0.8], [0, 0], [7, 12] if with_ids else None)


def _packets() -> list[Packet]:
    return [Packet(FrameMeta("cam", i, i / 30, 0.0, W, H), np.full((H, W, 3), BACKGROUND, np.uint8),
                   detections=_dets(), counts=_counts(i)) for i in range(N)]


def _decoded(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="bgr24").astype(np.int16) for f in container.decode(video=0)]


def _near(pixels: np.ndarray, color: tuple[int, int, int], within: int = 60) -> float:
    """Share of `pixels` (ndarray[K, 3]) within `within` (sum over channels) of `color`."""
    return float((np.abs(pixels - np.array(color)).sum(axis=1) < within).mean())


def test_lines_zones_counts_and_track_ids_are_in_the_video(tmp_path: Path) -> None:
    run_stage(Mp4Sink, _packets(), {"path": str(tmp_path / "c.mp4"), "crf": 10})
    frames = _decoded(tmp_path / "c.mp4")
    assert len(frames) == N
    last = frames[-1]
    # the line: amber on its column x = 320 (rows away from the arrow and its label), none a few px off
    column = last[60:180, 320:322].reshape(-1, 3)
    assert _near(column, LINE_COLOR) > 0.9
    assert _near(last[60:180, 300:314].reshape(-1, 3), LINE_COLOR) == 0
    # the zone: blue along its right edge x = 600, the background inside it away from labels and boxes
    # (a thinner line than the counting line's: 4:2:0 chroma blends it with the grey, (202, 164, 54) here)
    edge = last[380:440, 600:601].reshape(-1, 3)
    assert _near(edge, ZONE_COLOR, within=160) > 0.9 and _near(edge, (BACKGROUND,) * 3, within=160) == 0
    assert np.abs(last[440:450, 560:590] - BACKGROUND).max() < 12
    # the totals and the `#7` labels: the frame is the sink's own rendering up to codec noise, and the
    # rendering without track ids (or with other totals) is measurably further from it
    source = np.full((H, W, 3), BACKGROUND, np.uint8)
    expected = annotate_counts(annotate(source, _dets()), _counts(N - 1)).astype(np.int16)
    no_ids = annotate_counts(annotate(source, _dets(with_ids=False)), _counts(N - 1)).astype(np.int16)
    other_totals = annotate_counts(annotate(source, _dets()), _counts(0)).astype(np.int16)
    for wrong in (no_ids, other_totals):
        differ = (np.abs(expected - wrong).sum(axis=2) > 60)
        assert differ.sum() > 30  # the two renderings differ in the label
        err_right = np.abs(last - expected)[differ].mean()
        err_wrong = np.abs(last - wrong)[differ].mean()
        print(f"label pixels: |video - expected| {err_right:.1f}, |video - wrong rendering| {err_wrong:.1f}")
        assert err_right < 25 and err_wrong > 2 * err_right
