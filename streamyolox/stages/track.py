"""`track` stage: ByteTrack over the detections of each stream -> `Detections.track_ids`.

One `ByteTracker` per stream (`packet.meta.stream`), so streams fanned into one stage never mix tracks,
and each stream's ids count 1, 2, 3, ... on their own: a track is named by (stream, track_id), as every
JSON record carries its stream. `track_ids` is int64 with -1 for a detection that is not (yet) part of a
confirmed track; the JSON form writes it as ``"track_id": null``.

A stream's tracks are cleared (its ids keep counting up, never reused) when:

- its source reconnected: `decode` writes the reconnects so far in ``meta.extra["reconnects"]`` for live
  sources, and a change means a new connection, where objects may have moved;
- its frame index goes back (its source restarted from the beginning);
- it sent no frame for `idle_reset_s` seconds of capture time (checked on every packet, for every stream
  of the stage): the runtime tells a stage only when all its inputs ended, not when one stream did, so this
  is what bounds the state of a stream that went quiet. A stream's tracker is then just its id counter.

The lost-track buffer is `track_buffer` frames at 30 fps, scaled by the stream's frame rate as in the
official code: `frame_rate` when set, else ``meta.extra["fps"]`` when the source gives it, else measured
as 1 / the median PTS step over the stream's first frames (30 until then). The rate is that of the frames
reaching this stage, so `stride`/`max_fps` sub-sampling shortens the buffer in frames, not in seconds.

Not for `replicas` (a stream's frames must reach one tracker, in order). With `restart: on-failure`, a
restarted stage starts its ids at ``restarts * 10**9 + 1``: the ids of the earlier run are not reused.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from streamyolox.analytics.bytetrack import ByteTracker, ByteTrackOptions
from streamyolox.config_fields import ranged
from streamyolox.detections import FrameMeta
from streamyolox.stages.base import Stage, StageConfig
from streamyolox.stages.packet import Packet

DEFAULT_FRAME_RATE = 30.0
RATE_SAMPLES = 8  # PTS steps whose median gives a stream's frame rate
RESTART_ID_BLOCK = 10**9  # ids of restart k start at k * RESTART_ID_BLOCK + 1
# packet.extra key: confirmed track ids of the packet's stream removed on this frame (lost past the
# buffer, or cleared by a reset), so a downstream `count` ends their zone visits then
REMOVED_TRACKS = "removed_tracks"


@dataclass
class TrackConfig(ByteTrackOptions, StageConfig):
    """ByteTrack's options (track_thresh 0.5, low_thresh 0.1, match_thresh 0.8, track_buffer 30 frames at
    30 fps, min_hits 2, det_thresh track_thresh + 0.1, fuse_score, class_aware, confirm_first_frame,
    classes) and: frame_rate (None: from the stream); class_vote: confirmed detections report their
    track's most frequent class; idle_reset_s: clear a stream's tracks after this long without a frame
    (None: never)."""

    frame_rate: float | None = ranged(None, gt=0)
    class_vote: bool = False
    idle_reset_s: float | None = ranged(60.0, gt=0)

    # no __post_init__ of its own: ByteTrackOptions.__post_init__ checks every declared range, these too


@dataclass
class _Stream:
    """One stream's tracker and what the stage remembers to notice resets and measure the frame rate."""

    tracker: ByteTracker
    frame: int
    time: float
    reconnects: object
    rate_known: bool
    last_pts: float | None = None
    steps: list[float] = field(default_factory=list)
    removed: list[int] = field(default_factory=list)  # confirmed ids a reset dropped, told with the next frame


class TrackStage(Stage):
    """ByteTrack per stream; sets `Detections.track_ids` (-1 where not confirmed)."""

    kind = "track"
    replicable = False
    Config = TrackConfig
    description = "ByteTrack per stream -> Detections.track_ids (-1 / null: not confirmed)"

    def open(self) -> None:
        if self.ctx.replicas > 1:
            raise ValueError(f"track: cannot run as {self.ctx.replicas} replicas (a stream's frames must reach "
                             f"one tracker in order); remove 'replicas'")
        self._streams: dict[str, _Stream] = {}

    def process(self, packet: Packet) -> list[Packet]:
        cfg: TrackConfig = self.config
        dets, meta = packet.detections, packet.meta
        if dets is None:
            raise ValueError(f"track: frame {meta.frame} of stream {meta.stream!r} has no detections "
                             f"(is an nms stage upstream?)")
        self._expire_idle(meta.time)
        stream = self._stream_for(meta)
        self._measure_rate(stream, meta)
        result = stream.tracker.update(dets.xyxy, dets.scores, dets.class_ids)
        dets.track_ids = result.ids
        removed = [*stream.removed, *result.removed]
        if removed:  # the tracks given up on this frame: the count stage ends their zone visits
            packet.extra[REMOVED_TRACKS] = removed
            stream.removed = []
        if cfg.class_vote:
            dets.class_ids = result.classes
        self.ctx.set_value("tracks", sum(len(s.tracker.tracks) for s in self._streams.values()))
        return [packet]

    def _new_tracker(self, meta: FrameMeta) -> ByteTracker:
        cfg: TrackConfig = self.config
        rate = cfg.frame_rate or meta.extra.get("fps") or DEFAULT_FRAME_RATE
        return ByteTracker(cfg, float(rate), first_id=self.ctx.restarts * RESTART_ID_BLOCK + 1)

    def _stream_for(self, meta: FrameMeta) -> _Stream:
        """The packet's stream state, its tracks cleared first if the stream restarted or reconnected."""
        reconnects = meta.extra.get("reconnects")
        stream = self._streams.get(meta.stream)
        if stream is None:
            known = bool(self.config.frame_rate or meta.extra.get("fps"))
            stream = _Stream(self._new_tracker(meta), meta.frame, meta.time, reconnects, known)
            self._streams[meta.stream] = stream
            return stream
        if reconnects != stream.reconnects or meta.frame <= stream.frame:
            self._reset(stream, "reconnect" if reconnects != stream.reconnects else "restart")
        stream.frame, stream.time, stream.reconnects = meta.frame, meta.time, reconnects
        return stream

    def _reset(self, stream: _Stream, why: str) -> None:
        stream.removed.extend(stream.tracker.reset())
        stream.last_pts = None
        self.ctx.count("track_resets")
        self.ctx.log.info("track: tracks of a stream cleared (%s)", why)

    def _expire_idle(self, now: float) -> None:
        """Clear the tracks of streams that sent nothing for `idle_reset_s` (their id counters stay)."""
        limit = self.config.idle_reset_s
        if limit is None:
            return
        for stream in self._streams.values():
            if stream.tracker.tracks and now - stream.time > limit:
                self._reset(stream, f"no frame for {now - stream.time:.0f} s")

    def _measure_rate(self, stream: _Stream, meta: FrameMeta) -> None:
        """Until the rate is known: collect PTS steps; the median of RATE_SAMPLES of them sets it."""
        if stream.rate_known or meta.pts is None:
            return
        if stream.last_pts is not None and meta.pts > stream.last_pts:
            stream.steps.append(meta.pts - stream.last_pts)
        stream.last_pts = meta.pts
        if len(stream.steps) >= RATE_SAMPLES:
            stream.tracker.frame_rate = 1.0 / float(np.median(stream.steps))
            stream.rate_known = True
            self.ctx.log.info("track: stream %r at %.2f fps: lost tracks kept %d frames", meta.stream,
                              stream.tracker.frame_rate, stream.tracker.max_lost)
