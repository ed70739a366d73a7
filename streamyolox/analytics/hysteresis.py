"""`Settle`: the hysteresis shared by lines and zones.

A track's anchor is on side +1 or -1 of a line (or inside/outside a zone) only once it has stayed at least
`min_distance` px from the boundary for `min_frames` consecutive observations; anything closer is the
boundary band, which never changes the settled side. So a box jittering on a line, or flickering at a zone
edge, counts nothing (supervision counted every flip of a raw side: field notes, #2598).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Hysteresis:
    """min_distance: px from the boundary that count as being on a side; min_frames: consecutive
    observations there before the side is settled."""

    min_distance: float = 5.0
    min_frames: int = 2

    def __post_init__(self) -> None:
        if not self.min_distance >= 0:
            raise ValueError(f"min_distance: expected a number >= 0, got {self.min_distance}")
        if self.min_frames < 1:
            raise ValueError(f"min_frames: expected an int >= 1, got {self.min_frames}")

    def side_of(self, signed_distance: float) -> int:
        """+1 / -1 beyond the band on that side, 0 inside the band."""
        if signed_distance > 0 and signed_distance >= self.min_distance:
            return 1
        if signed_distance < 0 and -signed_distance >= self.min_distance:
            return -1
        return 0


@dataclass
class Settle:
    """The settled side of one track against one boundary: +1, -1, or 0 (not settled yet)."""

    side: int = 0
    _candidate: int = 0
    _streak: int = 0

    def update(self, signed_distance: float, rule: Hysteresis) -> int:
        """Feed one observation; returns the new side when it just changed (settled), else 0."""
        s = rule.side_of(signed_distance)
        if s == 0 or s == self.side:  # back in the band or home: a move to the other side starts over
            self._candidate, self._streak = 0, 0
            return 0
        self._streak = self._streak + 1 if s == self._candidate else 1
        self._candidate = s
        if self._streak < rule.min_frames:
            return 0
        self.side, self._candidate, self._streak = s, 0, 0
        return s
