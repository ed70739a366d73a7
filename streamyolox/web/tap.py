"""The camera wall's tap: in the process of the most downstream stage with detections, JPEGs of the
streams someone watches, sent to the runner.

The stage thread only looks at `watching` (a dict swapped whole by the runner's `watch` command) and, for
a watched stream whose next frame is due (`fps` cap), copies the frame and keeps the latest one per stream.
A thread of its own draws the boxes, labels, track ids, lines and zones, scales to the asked width and
JPEG-encodes; the result goes out on a PUSH socket with a small high-water mark, and is dropped when that
is full: the tap never holds the pipeline back. Nobody watching: nothing is copied or encoded.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, replace
from typing import Any

import cv2
import numpy as np
import zmq

from streamyolox.analytics.events import Counts
from streamyolox.detections import Detections, FrameMeta
from streamyolox.draw import annotate, annotate_counts, put_label
from streamyolox.draw.annotate import DrawStyle
from streamyolox.stages.packet import Packet
from streamyolox.web.wall import MAX_WATCHED, Watch

SEND_HWM = 4  # JPEGs queued towards the runner before the tap drops
JPEG_QUALITY = 75


@dataclass
class _Shot:
    meta: FrameMeta
    frame: np.ndarray | None
    detections: Detections | None
    counts: Counts | None
    watch: Watch


def placeholder(width: int, text: str) -> np.ndarray:
    """A dark frame saying why there is no picture (e.g. no frames reach the tapped stage)."""
    img = np.full((width * 9 // 16, width, 3), 40, np.uint8)
    style = DrawStyle.for_frame(*img.shape[:2])
    put_label(img, text, (8, img.shape[0] // 2), (0, 0, 200), style)
    return img


def _scaled(counts: Counts | None, scale: float) -> Counts | None:
    """The lines and zones in the pixels of a frame scaled by `scale` (their totals unchanged)."""
    if counts is None or scale == 1.0:
        return counts
    lines = {k: replace(c, points=((c.points[0][0] * scale, c.points[0][1] * scale),
                                   (c.points[1][0] * scale, c.points[1][1] * scale)))
             for k, c in counts.lines.items()}
    zones = {k: replace(z, polygon=tuple((x * scale, y * scale) for x, y in z.polygon))
             for k, z in counts.zones.items()}
    return replace(counts, lines=lines, zones=zones)


def render(shot: _Shot, stage: str) -> np.ndarray:
    """The frame scaled to the watched width, then boxes, labels, track ids, lines and zones drawn at that
    size (drawn before scaling, thin boxes would fade away on a small tile)."""
    if shot.frame is None:
        return placeholder(shot.watch.width, f"no frames reach stage {stage!r}")
    h, w = shot.frame.shape[:2]
    scale = min(1.0, shot.watch.width / w)
    img = shot.frame if scale == 1.0 else cv2.resize(
        shot.frame, (shot.watch.width, max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    dets = shot.detections
    if dets is not None and len(dets) and scale != 1.0:
        dets = Detections(dets.xyxy * scale, dets.scores, dets.class_ids, dets.track_ids, dets.class_names)
    img = annotate(img, dets, copy=False)
    return annotate_counts(img, _scaled(shot.counts, scale), copy=False)


class Tap:
    """Watched streams -> JPEGs on a bounded PUSH socket. `offer` runs in the stage thread; `watch` and
    `stats` in the command thread; the encoding in a thread of its own."""

    def __init__(self, zctx: zmq.Context, address: str, stage_id: str) -> None:
        self.stage_id = stage_id
        self.sock = zctx.socket(zmq.PUSH)
        self.sock.setsockopt(zmq.SNDHWM, SEND_HWM)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(address)
        self.watching: dict[str, Watch] = {}
        self.next_at: dict[str, float] = {}
        self.latest: dict[str, _Shot] = {}
        self.cond = threading.Condition()
        self.counts = {"taken": 0, "encoded": 0, "sent": 0, "dropped": 0, "no_frame": 0}
        self.stopped = False
        self.thread = threading.Thread(target=self._run, name="wall-tap", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        with self.cond:
            self.stopped = True
            self.cond.notify_all()
        if self.thread.is_alive():
            self.thread.join(2)
        else:
            self.sock.close(linger=0)

    # -- commands (from the runner) ------------------------------------------------------------------
    def watch(self, streams: dict[str, dict[str, Any]]) -> dict[str, Any]:
        """Replace the set of watched streams: {stream: {"width": 640, "fps": 10}}."""
        if len(streams) > MAX_WATCHED:
            raise ValueError(f"at most {MAX_WATCHED} streams can be watched at once, got {len(streams)}")
        watching = {sid: Watch(**opts) for sid, opts in streams.items()}
        with self.cond:
            self.watching = watching
            for gone in set(self.latest) - set(watching):
                del self.latest[gone]
            for gone in set(self.next_at) - set(watching):
                del self.next_at[gone]
        return self.stats()

    def stats(self) -> dict[str, Any]:
        return {"stage": self.stage_id, "watching": sorted(self.watching), **self.counts}

    # -- stage thread --------------------------------------------------------------------------------
    def offer(self, packets: list[Packet]) -> None:
        watching = self.watching
        if not watching:
            return
        now = time.monotonic()
        for p in packets:
            watch = watching.get(p.meta.stream)
            if watch is None or now < self.next_at.get(p.meta.stream, 0.0):
                continue
            self.next_at[p.meta.stream] = now + 1.0 / watch.fps
            # a copy: the frame is a view into a shared-memory slot that is handed back after this stage
            frame = None if p.frame is None else np.array(p.frame, copy=True)
            shot = _Shot(p.meta, frame, p.detections, p.counts, watch)
            with self.cond:
                self.latest[p.meta.stream] = shot
                self.counts["taken"] += 1
                self.cond.notify()

    # -- encoder thread ------------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            while True:
                with self.cond:
                    while not self.latest and not self.stopped:
                        self.cond.wait(0.5)
                    if self.stopped:
                        return
                    shots, self.latest = self.latest, {}
                for stream, shot in shots.items():
                    self._send(stream, shot)
        finally:
            self.sock.close(linger=0)

    def _send(self, stream: str, shot: _Shot) -> None:
        ok, buf = cv2.imencode(".jpg", render(shot, self.stage_id), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:
            return
        self.counts["encoded"] += 1
        self.counts["no_frame"] += shot.frame is None
        header = {"stream": stream, "frame": shot.meta.frame, "time": shot.meta.time, "stage": self.stage_id,
                  "has_frame": shot.frame is not None}
        try:
            self.sock.send_multipart([stream.encode(), json.dumps(header).encode(), buf.tobytes()], zmq.NOBLOCK)
            self.counts["sent"] += 1
        except zmq.Again:  # the runner is behind: this picture is skipped, the next one is newer anyway
            self.counts["dropped"] += 1
