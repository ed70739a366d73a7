"""Line crossings: a track crosses a line when the step between its anchors in consecutive observations
intersects the line segment, and the anchor then settles on the other side (hysteresis).

Direction: with A, B the line's points in image coordinates (y down), `in` goes from the side where
(B - A) x (P - A) > 0 to the side where it is < 0, `out` the reverse; for A = (640, 0), B = (640, 720),
moving left to right is `in`. What this avoids (supervision's LineZone, field notes): counting from a raw
side history (flicker and jitter count; a fast mover that jumps over the line between frames, or a box
that straddles the line, is missed), state kept forever, several counts of one pass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from streamyolox.analytics.events import Point
from streamyolox.analytics.hysteresis import Hysteresis, Settle

Direction = Literal["in", "out"]


def _cross(o: Point, a: Point, b: Point) -> float:
    """(a - o) x (b - o): > 0 when b is on the positive side of o -> a (image coordinates)."""
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


def _on_segment(p: Point, a: Point, b: Point) -> bool:
    """p, known collinear with a-b, lies within the segment's bounding box."""
    return min(a[0], b[0]) <= p[0] <= max(a[0], b[0]) and min(a[1], b[1]) <= p[1] <= max(a[1], b[1])


def segments_intersect(p: Point, q: Point, a: Point, b: Point) -> bool:
    """Whether segments p-q and a-b share a point (touching counts).

    Written out rather than pulling in shapely for one predicate: the standard orientation test.
    """
    d1, d2 = _cross(a, b, p), _cross(a, b, q)
    d3, d4 = _cross(p, q, a), _cross(p, q, b)
    if ((d1 > 0 > d2) or (d1 < 0 < d2)) and ((d3 > 0 > d4) or (d3 < 0 < d4)):
        return True
    return ((d1 == 0 and _on_segment(p, a, b)) or (d2 == 0 and _on_segment(q, a, b))
            or (d3 == 0 and _on_segment(a, p, q)) or (d4 == 0 and _on_segment(b, p, q)))


@dataclass(frozen=True)
class Line:
    """A counting line from `a` to `b` in frame pixels (two distinct points)."""

    name: str
    a: Point
    b: Point

    def __post_init__(self) -> None:
        if self.a == self.b:
            raise ValueError(f"lines.{self.name}: expected 2 distinct points, got {list(self.a)} twice")

    def signed_distance(self, p: Point) -> float:
        """Distance of p from the line (infinite), > 0 on the side `in` starts from."""
        return _cross(self.a, self.b, p) / math.dist(self.a, self.b)

    def intersects(self, p: Point, q: Point) -> bool:
        return segments_intersect(p, q, self.a, self.b)


@dataclass
class _LineTrack:
    settle: Settle = field(default_factory=Settle)
    # A step since the anchor was last settled touched the segment: settling on the other side is then a
    # crossing; walking round the end of the line is not.
    crossed: bool = False
    last_counted: dict[str, float] = field(default_factory=dict)  # direction -> stream time


class LineCounter:
    """One line's crossings for every track of one stream; `forget` a track to drop its state."""

    def __init__(self, line: Line, rule: Hysteresis, cooldown_s: float) -> None:
        self.line, self.rule, self.cooldown_s = line, rule, cooldown_s
        self.tracks: dict[int, _LineTrack] = {}
        self.count_in = 0
        self.count_out = 0

    def observe(self, track_id: int, prev: Point | None, cur: Point, t: float) -> Direction | None:
        """Feed track `track_id`'s anchor `cur` (previous observation `prev`) at stream time `t` (s);
        returns the direction of a crossing confirmed by this observation, if any."""
        st = self.tracks.setdefault(track_id, _LineTrack())
        if prev is not None and self.line.intersects(prev, cur):
            st.crossed = True
        d = self.line.signed_distance(cur)
        old = st.settle.side
        new = st.settle.update(d, self.rule)
        if new == 0:
            if old != 0 and self.rule.side_of(d) == old:  # back home: an excursion is not a crossing
                st.crossed = False
            return None
        crossed, st.crossed = st.crossed, False
        if old == 0 or not crossed:  # first settling (origin unknown), or round the end of the line
            return None
        direction: Direction = "in" if old > 0 else "out"
        last = st.last_counted.get(direction)
        if last is not None and t - last < self.cooldown_s:
            return None
        st.last_counted[direction] = t
        if direction == "in":
            self.count_in += 1
        else:
            self.count_out += 1
        return direction

    def forget(self, track_id: int) -> None:
        self.tracks.pop(track_id, None)
