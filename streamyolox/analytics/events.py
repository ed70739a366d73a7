"""`Event` and `Counts`: what the `count` stage attaches to a packet and every sink writes or publishes.

An event is one line crossing or one zone enter/exit of one track. Its JSON form::

    {"event_id": "cam1:line_in:door:7:123", "kind": "line_in", "line": "door", "stream": "cam1",
     "frame": 123, "time": 1767225600.5, "pts": 4.1, "track_id": 7, "class_name": "person"}

(`"zone"` instead of `"line"` for zone events; zone exits add `"dwell_s"`). `event_id` is derived from the
stream, kind, line/zone, track id and frame only, so replaying the same input gives the same ids and a
consumer that receives an event twice (MQTT QoS 1 redelivery) drops the copy. `Counts` holds a stream's
running totals and the geometry they refer to (so a sink can draw lines and zones without their config).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

EventKind = Literal["line_in", "line_out", "zone_enter", "zone_exit"]
EVENT_KINDS: tuple[str, ...] = get_args(EventKind)
Point = tuple[float, float]

# Line and zone names appear in event ids (`:`-separated) and topics: keep them to one plain token.
NAME_PATTERN = re.compile(r"[A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class Event:
    """One crossing or zone transition of one confirmed track.

    Args:
        kind: line_in | line_out | zone_enter | zone_exit.
        name: the line's or zone's name (written as `"line"` or `"zone"` by `to_json`).
        stream, frame, time, pts: the frame on which the transition was confirmed (`time`: wall clock, s).
        track_id: the tracker's id (never -1: unconfirmed detections are not counted).
        class_name: the class the track was seen as most often so far.
        dwell_s: zone exits only: stream seconds between the confirmed enter and the confirmed exit.
    """

    kind: EventKind
    name: str
    stream: str
    frame: int
    time: float
    track_id: int
    class_name: str
    pts: float | None = None
    dwell_s: float | None = None

    @property
    def event_id(self) -> str:
        # The kind is one of four fixed words and name/track/frame hold no ':', so reading from the right
        # recovers every part: distinct events never share an id, even for a stream id containing ':'.
        return f"{self.stream}:{self.kind}:{self.name}:{self.track_id}:{self.frame}"

    @property
    def target(self) -> Literal["line", "zone"]:
        return "line" if self.kind.startswith("line") else "zone"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "event_id": self.event_id,
            "kind": self.kind,
            self.target: self.name,
            "stream": self.stream,
            "frame": self.frame,
            "time": self.time,
            "pts": self.pts,
            "track_id": self.track_id,
            "class_name": self.class_name,
        }
        if self.dwell_s is not None:
            out["dwell_s"] = round(self.dwell_s, 4)
        return out

    @classmethod
    def from_json(cls, item: dict[str, Any]) -> Event:
        """Inverse of `to_json` (a consumer's view; `event_id` is recomputed, not trusted)."""
        kind = item["kind"]
        if kind not in EVENT_KINDS:
            raise ValueError(f"event kind: expected one of {', '.join(EVENT_KINDS)}, got {kind!r}")
        name = item["line"] if kind.startswith("line") else item["zone"]
        return cls(kind=kind, name=name, stream=item["stream"], frame=int(item["frame"]),
                   time=float(item["time"]), track_id=int(item["track_id"]), class_name=item["class_name"],
                   pts=item.get("pts"), dwell_s=item.get("dwell_s"))


@dataclass
class LineCount:
    """Running totals of one line, with its end points (frame pixels) for drawing."""

    points: tuple[Point, Point]
    count_in: int = 0
    count_out: int = 0

    def to_json(self) -> dict[str, int]:
        return {"in": self.count_in, "out": self.count_out}


@dataclass
class ZoneCount:
    """Running totals of one zone: enters, exits, tracks inside now per class; polygon for drawing."""

    polygon: tuple[Point, ...]
    enter: int = 0
    exit: int = 0
    occupancy: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"enter": self.enter, "exit": self.exit, "occupancy": dict(sorted(self.occupancy.items()))}


@dataclass
class Counts:
    """A stream's running totals after a frame: `{"door": {"in": 3, "out": 1}, "bay": {"enter": 2,
    "exit": 1, "occupancy": {"person": 1}}}` in JSON (line and zone names never collide)."""

    lines: dict[str, LineCount] = field(default_factory=dict)
    zones: dict[str, ZoneCount] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {name: c.to_json() for name, c in self.lines.items()}
        out.update((name, z.to_json()) for name, z in self.zones.items())
        return out


# FrameMeta.extra key of the packet a `count` stage sends per stream when it closes: no frame, no
# detections, the zone exits of the tracks still inside and the final counts. Sinks write or publish its
# events (the json sink marks its line `"end_of_stream": true`) and have no frame to draw.
END_OF_STREAM = "end_of_stream"


def is_end_of_stream(extra: dict[str, Any]) -> bool:
    """True for the `meta.extra` of a count stage's end-of-stream packet."""
    return bool(extra.get(END_OF_STREAM))


def add_analytics(record: dict[str, Any], events: Sequence[Event], counts: Counts | None) -> dict[str, Any]:
    """Add `"events"` and `"counts"` to a frame record (the json, zmq and mqtt sinks' payload) when a
    `count` stage ran upstream (`counts` set) or events are attached; returns `record`."""
    if counts is not None or events:
        record["events"] = [e.to_json() for e in events]
    if counts is not None:
        record["counts"] = counts.to_json()
    return record
