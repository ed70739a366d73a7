"""`StreamCounter`: lines and zones of one stream fed with one frame's tracked detections at a time.

Rules it enforces (each one a bug in supervision, field notes): only confirmed tracks count (track id -1 =
unconfirmed, ignored: never one shared object); a track's class is the class it was seen as most often
(first seen wins a tie); a track's state is deleted once it has not been seen for `track_timeout_s` of
stream time, so state stays bounded (a track that vanishes inside a zone exits it then); a track the
tracker removes (lost past its buffer) exits its zones on that frame; when the stream ends, every track
still inside exits (`finish`), so enters and exits pair up.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from streamyolox.analytics.events import Counts, Event, EventKind, LineCount, Point, ZoneCount
from streamyolox.analytics.hysteresis import Hysteresis
from streamyolox.analytics.lines import Line, LineCounter
from streamyolox.analytics.zones import Zone, ZoneCounter
from streamyolox.detections import Detections

Anchor = Literal["bottom_center", "center"]


@dataclass(frozen=True)
class CountRules:
    """What one stream counts: its lines and zones, the anchor point of a box, the hysteresis, the
    cooldown between two counts of one track in one direction, and how long an unseen track is kept."""

    lines: tuple[Line, ...] = ()
    zones: tuple[Zone, ...] = ()
    anchor: Anchor = "bottom_center"
    hysteresis: Hysteresis = field(default_factory=Hysteresis)
    cooldown_s: float = 1.0
    track_timeout_s: float = 5.0
    classes: frozenset[str] | None = None  # count only detections of these classes (None: all)


def anchors(xyxy: np.ndarray, anchor: Anchor) -> np.ndarray:
    """ndarray[N, 2] float64 anchor points of boxes ndarray[N, 4] (x1, y1, x2, y2)."""
    boxes = np.asarray(xyxy, np.float64).reshape(-1, 4)
    x = (boxes[:, 0] + boxes[:, 2]) / 2
    y = boxes[:, 3] if anchor == "bottom_center" else (boxes[:, 1] + boxes[:, 3]) / 2
    return np.stack([x, y], axis=1)


@dataclass
class _Track:
    anchor: Point
    last_t: float
    votes: Counter[str] = field(default_factory=Counter)

    def class_name(self) -> str:
        return self.votes.most_common(1)[0][0]


@dataclass
class _FrameEvents:
    """The events of one frame, as they are confirmed."""

    stream: str
    frame: int
    wall: float
    pts: float | None
    events: list[Event] = field(default_factory=list)

    def add(self, kind: EventKind, name: str, track_id: int, cls: str, dwell: float | None = None) -> None:
        self.events.append(Event(kind=kind, name=name, stream=self.stream, frame=self.frame, time=self.wall,
                                 track_id=track_id, class_name=cls, pts=self.pts, dwell_s=dwell))


class StreamCounter:
    """All lines and zones of one stream; `update` once per frame, in frame order."""

    def __init__(self, stream: str, rules: CountRules) -> None:
        self.stream, self.rules = stream, rules
        self.lines = [LineCounter(line, rules.hysteresis, rules.cooldown_s) for line in rules.lines]
        self.zones = [ZoneCounter(zone, rules.hysteresis) for zone in rules.zones]
        self.tracks: dict[int, _Track] = {}
        self._last_t: float | None = None
        self._last_frame = _FrameEvents(stream, 0, 0.0, None)  # where end-of-stream events are placed

    def update(self, frame: int, t: float, detections: Detections, wall: float = 0.0,
               pts: float | None = None, removed: Sequence[int] = ()) -> list[Event]:
        """Feed one frame (stream time `t` s: PTS, or the wall clock without one); returns its events.

        `detections.track_ids` must be set (a tracker upstream); ids < 0 are ignored. `removed`: ids the
        tracker gave up on this frame: their zone visits end here (an exit), before this frame's tracks.
        """
        if detections.track_ids is None:
            raise ValueError("detections have no track ids: put a track stage before count")
        out = _FrameEvents(self.stream, frame, wall, pts)
        if self._last_t is not None and t < self._last_t:  # the stream restarted (a looped file, new PTS)
            self._forget([*self.tracks], out)
        self._last_t = t
        self._last_frame = _FrameEvents(self.stream, frame, wall, pts)
        self._forget([tid for tid in removed if tid in self.tracks], out)
        for tid, point, cls in self._observations(detections):
            track = self.tracks.get(tid)
            if track is None:
                track = self.tracks[tid] = _Track(point, t)
                prev = None
            else:
                prev, track.anchor, track.last_t = track.anchor, point, t
            track.votes[cls] += 1
            name = track.class_name()
            for lc in self.lines:
                direction = lc.observe(tid, prev, point, t)
                if direction is not None:
                    out.add("line_in" if direction == "in" else "line_out", lc.line.name, tid, name)
            for zc in self.zones:
                change = zc.observe(tid, point, t)
                if change is not None:
                    out.add("zone_enter" if change[0] == "enter" else "zone_exit", zc.zone.name, tid, name,
                            change[1])
        stale = [tid for tid, tr in self.tracks.items() if t - tr.last_t > self.rules.track_timeout_s]
        self._forget(stale, out)
        return out.events

    def _observations(self, detections: Detections) -> list[tuple[int, Point, str]]:
        """(track id, anchor, class name) of each confirmed track, once per id (its best-scoring box)."""
        assert detections.track_ids is not None
        names = detections.names()
        points = anchors(detections.xyxy, self.rules.anchor)
        seen: set[int] = set()
        out = []
        for i in np.argsort(-detections.scores, kind="stable"):
            tid = int(detections.track_ids[i])
            if tid < 0 or tid in seen or not np.isfinite(points[i]).all():
                continue
            if self.rules.classes is not None and names[i] not in self.rules.classes:
                continue
            seen.add(tid)
            out.append((tid, (float(points[i][0]), float(points[i][1])), names[i]))
        return out

    def _forget(self, track_ids: list[int], out: _FrameEvents) -> None:
        for tid in track_ids:
            track = self.tracks.pop(tid)
            for lc in self.lines:
                lc.forget(tid)
            for zc in self.zones:
                dwell = zc.forget(tid)
                if dwell is not None:
                    out.add("zone_exit", zc.zone.name, tid, track.class_name(), dwell)

    def finish(self) -> list[Event]:
        """The stream ended: every track still inside a zone exits it, on the stream's last frame (so
        each enter has its exit); the state is cleared."""
        out = self._last_frame
        out.events = []
        self._forget([*self.tracks], out)
        self._last_t = None
        return out.events

    def counts(self) -> Counts:
        """A snapshot of the running totals (new objects: safe to attach to a packet)."""
        def class_of(tid: int) -> str:
            return self.tracks[tid].class_name()

        return Counts(
            lines={lc.line.name: LineCount((lc.line.a, lc.line.b), lc.count_in, lc.count_out)
                   for lc in self.lines},
            zones={zc.zone.name: ZoneCount(zc.zone.polygon, zc.enter, zc.exit, zc.occupancy(class_of))
                   for zc in self.zones},
        )
