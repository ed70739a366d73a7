"""Sub-sampling and pacing at the source: `stride`, `max_fps`, and real-time playback of files."""

from __future__ import annotations

import time
from collections.abc import Callable


class FrameSampler:
    """Keep every `stride`-th frame, then at most `max_fps` frames per second of stream time.

    Stream time is the PTS when there is one (deterministic for files), the wall clock otherwise. A PTS
    that goes backwards (a reconnected live stream restarts its clock; a looped file) restarts the schedule.
    """

    def __init__(self, stride: int = 1, max_fps: float | None = None) -> None:
        self.stride = stride
        self.period = 1.0 / max_fps if max_fps else 0.0
        self.seen = 0
        self.next_t: float | None = None
        self.last_t: float | None = None

    def keep(self, pts: float | None, wall: float) -> bool:
        """Whether the next decoded frame (PTS `pts` s, captured at `wall` s) goes downstream."""
        index = self.seen
        self.seen += 1
        if index % self.stride:
            return False
        if not self.period:
            return True
        t = wall if pts is None else pts
        if self.next_t is None or (self.last_t is not None and t < self.last_t):
            self.next_t = t
        self.last_t = t
        if t < self.next_t - 1e-3:
            return False
        # Stay on the grid while frames are regular; after a gap, restart from this frame (no burst).
        self.next_t = self.next_t + self.period if t - self.next_t < self.period else t + self.period
        return True


class Pacer:
    """Sleep so frames leave at their PTS rate (a file played like a live camera, `realtime: true`)."""

    def __init__(self, sleep: Callable[[float], bool]) -> None:
        self.sleep = sleep  # returns False when the stage must stop
        self.origin: tuple[float, float] | None = None  # (pts, monotonic) of the schedule start

    def wait(self, pts: float | None) -> bool:
        """Wait until `pts` is due; returns False when stopped meanwhile."""
        if pts is None:
            return True
        now = time.monotonic()
        if self.origin is None or pts < self.origin[0]:
            self.origin = (pts, now)
            return True
        delay = self.origin[1] + (pts - self.origin[0]) - now
        if delay > 1.0:  # a PTS jump (discontinuity): restart the schedule rather than stall
            self.origin = (pts, now)
            return True
        return delay <= 0 or self.sleep(delay)
