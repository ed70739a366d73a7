"""`count` stage: line crossings and zone enters/exits of tracked objects -> `Packet.events`, `Packet.counts`.

Needs a `track` stage upstream (confirmed track ids; -1 = unconfirmed, ignored). Geometry is in frame
pixels; one set for every stream, or per stream under `streams` (a stream not named there uses the
top-level one). Time (dwell, cooldown, timeout) is stream time: the PTS, or the capture clock without one.

Example YAML::

    count:
      kind: count
      inputs: [track]
      lines: {door: [[640, 0], [640, 720]]}     # left -> right is `in`
      zones: {bay: [[100, 400], [500, 400], [500, 700], [100, 700]]}
      streams:
        cam2: {lines: {door: [[0, 360], [1280, 360]]}}

A track the tracker removes (lost past `track_buffer`; the track stage lists it in
`packet.extra["removed_tracks"]`) exits its zones on that frame. When the input ends, each stream with
tracks still inside a zone gets one last packet without a frame (`meta.extra["end_of_stream"]`) that
carries their zone_exit events (dwell to their last observation inside), so enters and exits pair up.

Not for `replicas`: a stream's frames must all reach one counter, in order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from streamyolox.analytics.counter import CountRules, StreamCounter
from streamyolox.analytics.events import END_OF_STREAM, NAME_PATTERN, Event
from streamyolox.analytics.hysteresis import Hysteresis
from streamyolox.analytics.lines import Line
from streamyolox.analytics.zones import Zone
from streamyolox.config_fields import check_ranges, ranged
from streamyolox.detections import FrameMeta
from streamyolox.graph.options import build_dataclass
from streamyolox.stages.base import Stage, StageConfig
from streamyolox.stages.packet import Packet
from streamyolox.stages.track import REMOVED_TRACKS

Points = list[tuple[float, float]]
AnchorName = Literal["bottom_center", "center"]


@dataclass
class StreamOverrides:
    """One stream's own values (each unset one comes from the stage's top level)."""

    lines: dict[str, Points] | None = None
    zones: dict[str, Points] | None = None
    anchor: AnchorName | None = None
    min_distance: float | None = ranged(None, ge=0)
    min_frames: int | None = ranged(None, ge=1)
    cooldown_s: float | None = ranged(None, ge=0)

    def __post_init__(self) -> None:
        check_ranges(self)


def _point(value: Any, path: str) -> tuple[float, float]:
    ok = (isinstance(value, (list, tuple)) and len(value) == 2
          and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value))
    if not ok:
        raise ValueError(f"{path}: expected a point [x, y] of finite numbers, got {value!r}")
    return float(value[0]), float(value[1])


def _geometry(lines: dict[str, Any], zones: dict[str, Any], path: str) -> tuple[tuple[Line, ...], tuple[Zone, ...]]:
    """Lines and zones from plain YAML values; ValueError naming `path.lines.NAME` on a bad one."""
    for kind, names in (("lines", lines), ("zones", zones)):
        for name in names:
            if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
                raise ValueError(f"{path}{kind}: name {name!r}: use letters, digits, '_', '.', '-'")
    if set(lines) & set(zones):
        raise ValueError(f"{path}zones: {sorted(set(lines) & set(zones))[0]!r} names both a line and a zone")
    out_lines = []
    for name, pts in lines.items():
        where = f"{path}lines.{name}"
        if not isinstance(pts, (list, tuple)) or len(pts) != 2:
            raise ValueError(f"{where}: expected 2 points [[x1, y1], [x2, y2]], got {pts!r}")
        a, b = (_point(p, f"{where}[{i}]") for i, p in enumerate(pts))
        try:
            out_lines.append(Line(name, a, b))
        except ValueError as exc:  # the same point twice
            raise ValueError(f"{path}{exc}") from None
    out_zones = []
    for name, pts in zones.items():
        where = f"{path}zones.{name}"
        if not isinstance(pts, (list, tuple)) or len(pts) < 3:
            raise ValueError(f"{where}: expected a polygon of >= 3 points [[x, y], ...], got {pts!r}")
        polygon = tuple(_point(p, f"{where}[{i}]") for i, p in enumerate(pts))
        try:
            out_zones.append(Zone(name, polygon))
        except ValueError as exc:  # no area
            raise ValueError(f"{path}{exc}") from None
    return tuple(out_lines), tuple(out_zones)


@dataclass
class CountConfig(StageConfig):
    """Options of the `count` stage.

    lines: {name: [[x1, y1], [x2, y2]]}; `in` = from the side where (B - A) x (P - A) > 0 to < 0.
    zones: {name: [[x, y], ...]} (>= 3 points). anchor: the box point that moves: bottom_center | center.
    min_distance (px) / min_frames: how far and for how many observations an anchor must be on a new side
        (or inside / outside a zone) before it counts. cooldown_s: one count per track and direction per
        this long. track_timeout_s: a track not seen for this long is forgotten (an exit from its zones).
    classes: count only detections of these class names (default: all).
    streams: {stream id: {lines, zones, anchor, min_distance, min_frames, cooldown_s}} per-stream values.
    """

    lines: dict[str, Points] = field(default_factory=dict)
    zones: dict[str, Points] = field(default_factory=dict)
    anchor: AnchorName = "bottom_center"
    min_distance: float = ranged(5.0, ge=0)
    min_frames: int = ranged(2, ge=1)
    cooldown_s: float = ranged(1.0, ge=0)
    track_timeout_s: float = ranged(5.0, gt=0)
    classes: list[str] | None = None
    streams: dict[str, StreamOverrides] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.streams = {sid: v if isinstance(v, StreamOverrides) else build_dataclass(
            StreamOverrides, v, f"streams.{sid}") for sid, v in self.streams.items()}
        rules = [self.rules_for(None), *(self.rules_for(sid) for sid in self.streams)]
        if not any(r.lines or r.zones for r in rules):
            raise ValueError("lines: give at least one line or zone (lines: {door: [[x1, y1], [x2, y2]]})")
        if self.classes is not None and not self.classes:
            raise ValueError("classes: expected a non-empty list of class names, or null for all")

    def rules_for(self, stream: str | None) -> CountRules:
        """The resolved rules of a stream (the top-level ones for None or a stream not in `streams`)."""
        over = self.streams.get(stream) if stream is not None else None
        path = f"streams.{stream}." if over is not None else ""
        value = {f.name: getattr(self, f.name) for f in fields(StreamOverrides)}
        if over is not None:
            value.update({k: v for k, v in vars(over).items() if v is not None})
        lines, zones = _geometry(value["lines"], value["zones"], path)
        if value["anchor"] not in ("bottom_center", "center"):
            raise ValueError(f"{path}anchor: expected 'bottom_center' or 'center', got {value['anchor']!r}")
        hysteresis = Hysteresis(value["min_distance"], value["min_frames"])  # ranges checked above
        return CountRules(lines=lines, zones=zones, anchor=value["anchor"], hysteresis=hysteresis,
                          cooldown_s=value["cooldown_s"], track_timeout_s=self.track_timeout_s,
                          classes=None if self.classes is None else frozenset(self.classes))


class CountStage(Stage):
    """Counts line crossings and zone visits per stream; attaches `events` and `counts` to each packet."""

    kind = "count"
    replicable = False
    Config = CountConfig
    description = "line crossings and zone enter/exit/dwell of tracked objects -> events, counts"

    def open(self) -> None:
        if self.ctx.replicas > 1:
            raise ValueError("count: replicas: every frame of a stream must reach one counter (use 1)")
        self.counters: dict[str, StreamCounter] = {}
        self.last_meta: dict[str, FrameMeta] = {}  # per stream, for its end-of-stream packet

    def process(self, packet: Packet) -> list[Packet]:
        meta = packet.meta
        counter = self.counters.get(meta.stream)
        if counter is None:
            counter = self.counters[meta.stream] = StreamCounter(meta.stream, self.config.rules_for(meta.stream))
        detections = packet.detections
        if detections is None or detections.track_ids is None:
            raise ValueError(f"count {self.ctx.stage_id!r}: packet has no track ids (place it after a track stage)")
        t = meta.pts if meta.pts is not None else meta.time
        removed = packet.extra.get(REMOVED_TRACKS, ())
        events = counter.update(meta.frame, t, detections, wall=meta.time, pts=meta.pts, removed=removed)
        packet.events = [*packet.events, *events]
        packet.counts = counter.counts()
        self.last_meta[meta.stream] = meta
        self._tally(events)
        return [packet]

    def _tally(self, events: list[Event]) -> None:
        for e in events:
            self.ctx.count(e.kind)

    def close(self) -> list[Packet]:
        """The input ended: per stream with tracks still inside a zone, one packet without a frame that
        carries their exits (`meta.extra["end_of_stream"]`), so every zone_enter has its zone_exit."""
        out = []
        for stream, counter in getattr(self, "counters", {}).items():
            events = counter.finish()
            if not events:
                continue
            last = self.last_meta[stream]
            meta = FrameMeta(stream, last.frame, last.pts, last.time, last.width, last.height,
                             {END_OF_STREAM: True})
            out.append(Packet(meta, events=events, counts=counter.counts()))
            self._tally(events)
        return out
