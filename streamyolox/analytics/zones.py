"""Zones: polygons that tracks enter and exit, with dwell time and occupancy per class.

A track is inside once its anchor has been at least `min_distance` px inside the polygon for `min_frames`
observations, outside again after the same outside (every track starts outside, so one that appears in
the zone enters it). Supervision's PolygonZone only counts boxes per frame: no enter/exit, no dwell.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import cv2
import numpy as np

from streamyolox.analytics.events import Point
from streamyolox.analytics.hysteresis import Hysteresis, Settle

Transition = Literal["enter", "exit"]


@dataclass(frozen=True)
class Zone:
    """A polygon in frame pixels (at least 3 points, non-zero area)."""

    name: str
    polygon: tuple[Point, ...]
    _contour: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.polygon) < 3:
            raise ValueError(f"zones.{self.name}: expected a polygon of >= 3 points, got {len(self.polygon)}")
        contour = np.asarray(self.polygon, np.float32).reshape(-1, 1, 2)
        if cv2.contourArea(contour) <= 0:
            raise ValueError(f"zones.{self.name}: the polygon has no area (points on one line?)")
        object.__setattr__(self, "_contour", contour)

    def signed_distance(self, p: Point) -> float:
        """Distance of p from the polygon's outline: > 0 inside, < 0 outside."""
        return float(cv2.pointPolygonTest(self._contour, (float(p[0]), float(p[1])), True))


@dataclass
class _ZoneTrack:
    settle: Settle = field(default_factory=lambda: Settle(side=-1))
    entered_t: float = 0.0
    last_inside_t: float = 0.0


class ZoneCounter:
    """One zone's transitions for every track of one stream."""

    def __init__(self, zone: Zone, rule: Hysteresis) -> None:
        self.zone, self.rule = zone, rule
        self.tracks: dict[int, _ZoneTrack] = {}
        self.enter = 0
        self.exit = 0

    def observe(self, track_id: int, cur: Point, t: float) -> tuple[Transition, float | None] | None:
        """Feed an anchor at stream time `t`; returns ("enter", None) or ("exit", dwell_s) when this
        observation confirms a transition."""
        st = self.tracks.setdefault(track_id, _ZoneTrack())
        changed = st.settle.update(self.zone.signed_distance(cur), self.rule)
        if st.settle.side > 0:
            st.last_inside_t = t
        if changed > 0:
            st.entered_t = t
            self.enter += 1
            return "enter", None
        if changed < 0:
            self.exit += 1
            return "exit", t - st.entered_t
        return None

    def forget(self, track_id: int) -> float | None:
        """Drop a track's state; returns its dwell (to its last observation inside) when it was inside:
        the track left unseen, which is an exit."""
        st = self.tracks.pop(track_id, None)
        if st is None or st.settle.side <= 0:
            return None
        self.exit += 1
        return st.last_inside_t - st.entered_t

    def occupancy(self, class_of: Callable[[int], str]) -> dict[str, int]:
        """Tracks inside now, per class name (`class_of(track_id)`)."""
        return dict(Counter(class_of(tid) for tid, st in self.tracks.items() if st.settle.side > 0))
