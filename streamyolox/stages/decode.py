"""The `decode` source stage: any video source to BGR frames, one `Packet` per frame.

Files give every frame in order; live sources (RTSP, HTTP/HLS, webcams) reconnect with backoff when
they stop delivering; `stride` / `max_fps` sub-sample at the source. Each packet's `meta` carries the
stream id, the frame index (decoded frames since start, sub-sampled ones included, so gaps show),
the PTS in seconds and the wall-clock capture time.

Example YAML::

    source:
      kind: decode
      url: rtsp://10.0.0.5:554/stream1
      transport: tcp
      stall_timeout_s: 5
      max_fps: 10
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from streamyolox.config_fields import OptionError, ranged
from streamyolox.detections import FrameMeta
from streamyolox.sources import (
    AvOptions,
    AvReader,
    FrameSampler,
    Pacer,
    RawFrame,
    RetryPolicy,
    SourceError,
    SourceHooks,
    SourceSpec,
    parse_source,
    reconnecting_frames,
)
from streamyolox.sources.background import BackgroundIterator, Mailbox
from streamyolox.sources.images import read_images
from streamyolox.sources.reconnect import sleep_unless_stopped
from streamyolox.stages.base import Stage, StageConfig
from streamyolox.stages.packet import Packet


def _check(ok: bool, option: str, expected: str, value: Any) -> None:
    if not ok:
        raise ValueError(f"decode.{option}: expected {expected}, got {value!r}")


@dataclass
class DecodeConfig(StageConfig):
    """Options of the `decode` stage.

    Attributes:
        url: a file, ``rtsp://``, ``http(s)://`` (HLS ``.m3u8`` too), ``webcam:N`` / ``/dev/videoN``,
            an image folder or a glob (``frames/*.jpg``).
        stream: stream id written on every frame (default: the stage id).
        transport: RTSP transport, ``tcp`` or ``udp``.
        open_timeout_s: give up connecting / opening after this long.
        read_timeout_s: abort a read that blocks this long (broken by FFmpeg's interrupt callback).
        stall_timeout_s: a live source that delivers no frame this long is reconnected.
        reconnect: reconnect live sources that stop delivering (else a lost stream ends the run).
        max_retries: consecutive failed reconnect attempts before giving up; None retries forever.
        backoff_initial_s, backoff_max_s: exponential backoff (with jitter) between attempts.
        max_fps: pass at most this many frames per second of stream time (None: all).
        stride: pass every `stride`-th decoded frame.
        loop: replay a file or image folder forever (soaks, demos).
        realtime: play a file at its native frame rate, like a camera.
        on_corrupt: ``skip`` (report the frame and go on) or ``stop`` (fail naming the frame).
        width, height, fps: capture size and rate asked of a webcam.
        threads: FFmpeg decoding threads (0: FFmpeg picks).
    """

    url: str
    stream: str | None = None
    transport: Literal["tcp", "udp"] = "tcp"
    open_timeout_s: float = ranged(10.0, gt=0)
    read_timeout_s: float = ranged(5.0, gt=0)
    stall_timeout_s: float = ranged(5.0, gt=0)
    reconnect: bool = True
    max_retries: int | None = ranged(None, ge=0)
    backoff_initial_s: float = ranged(0.5, gt=0)
    backoff_max_s: float = ranged(10.0, gt=0)
    max_fps: float | None = ranged(None, gt=0)
    stride: int = ranged(1, ge=1)
    loop: bool = False
    realtime: bool = False
    on_corrupt: Literal["skip", "stop"] = "skip"
    width: int | None = ranged(None, ge=1)
    height: int | None = ranged(None, ge=1)
    fps: float | None = ranged(None, gt=0)
    threads: int = ranged(0, ge=0)

    def __post_init__(self) -> None:
        _check(isinstance(self.url, str) and bool(self.url.strip()), "url", "a non-empty string", self.url)
        _check(self.transport in ("tcp", "udp"), "transport", "'tcp' or 'udp'", self.transport)
        _check(self.on_corrupt in ("skip", "stop"), "on_corrupt", "'skip' or 'stop'", self.on_corrupt)
        super().__post_init__()
        if (self.width is None) != (self.height is None):
            raise OptionError("height" if self.height is None else "width",
                              f"set width and height together, got width {self.width}, height {self.height}")
        if self.backoff_max_s < self.backoff_initial_s:
            raise OptionError("backoff_max_s", f"expected at least backoff_initial_s ({self.backoff_initial_s:g}), "
                              f"got {self.backoff_max_s:g}")


class DecodeStage(Stage):
    """Source stage: decodes `url` and yields one packet per (kept) frame."""

    kind = "decode"
    Config = DecodeConfig
    is_source = True
    description = "video source (file, RTSP, HTTP/HLS, webcam, image folder) -> BGR frames"

    def open(self) -> None:
        cfg: DecodeConfig = self.config
        self.stream_id = cfg.stream or self.ctx.stage_id
        self.spec: SourceSpec = parse_source(cfg.url)
        self.av_opts = AvOptions(cfg.transport, cfg.open_timeout_s, cfg.read_timeout_s, cfg.stall_timeout_s,
                                 cfg.threads, cfg.on_corrupt, cfg.width, cfg.height, cfg.fps)
        self._reader: AvReader | None = None
        self._frames: Iterator[Packet] | None = None
        if self.spec.kind == "webcam" and self.spec.av_format == "v4l2" and not os.path.exists(self.spec.target):
            raise SourceError(f"no camera: {self.spec.target} does not exist (url {cfg.url!r})")
        if self.spec.kind == "file" or (self.spec.live and not cfg.reconnect):
            self._reader = self._new_reader()
            self._reader.open()  # fail fast: missing codec, bad header, unreachable with reconnect off

    def _new_reader(self) -> AvReader:
        return AvReader(self.spec, self.av_opts, self.ctx.log, lambda i, r: self.ctx.count("corrupt_frames"))

    def _stopped(self) -> bool:
        return self.ctx.should_stop()

    def generate(self) -> Iterator[Packet]:
        cfg: DecodeConfig = self.config
        sampler = FrameSampler(cfg.stride, cfg.max_fps)
        self._frames = self._packets(sampler)
        yield from self._frames

    def _packets(self, sampler: FrameSampler) -> Iterator[Packet]:
        for index, raw, extra in self._raw_frames():
            self.ctx.count("decoded")
            if not sampler.keep(raw.pts, raw.time):
                self.ctx.count("skipped")
                continue
            height, width = raw.image.shape[:2]
            meta = FrameMeta(self.stream_id, index, raw.pts, raw.time, width, height, extra)
            yield Packet(meta=meta, frame=raw.image)
            if self._stopped():
                return

    def _raw_frames(self) -> Iterator[tuple[int, RawFrame, dict[str, Any]]]:
        """(frame index, frame, meta extra) from whichever kind of source."""
        if self.spec.kind == "images":
            yield from self._image_frames()
            return
        if self.spec.live:
            first, self._reader = self._reader, None  # owned by the reconnect loop from now on
            policy, mailbox = self._retry_policy(), Mailbox()
            frames: BackgroundIterator[RawFrame] = BackgroundIterator(
                lambda stopped: reconnecting_frames(self.spec, self.av_opts, policy,
                                                    self._hooks(stopped, mailbox), first),
                self._stopped, name=f"{self.stream_id}-reader", mailbox=mailbox)
            for index, raw in enumerate(frames):
                # Reconnects so far (the mailbox is drained before each frame): downstream, a change marks
                # a new connection, e.g. the track stage resets the stream's tracks.
                yield index, raw, {"reconnects": int(self.ctx.counters.get("reconnects", 0))}
            return
        yield from self._file_frames()

    def _retry_policy(self) -> RetryPolicy:
        cfg: DecodeConfig = self.config
        return RetryPolicy(cfg.reconnect, cfg.max_retries, cfg.backoff_initial_s, cfg.backoff_max_s)

    def _hooks(self, stopped: Callable[[], bool], mailbox: Mailbox) -> SourceHooks:
        """Hooks for the reader thread: counters reach the context through `mailbox`, in this thread."""
        return SourceHooks(self.ctx.log, lambda name, n: mailbox.post(self.ctx.count, name, n),
                           lambda name, v: mailbox.post(self.ctx.set_value, name, v), stopped)

    def _file_frames(self) -> Iterator[tuple[int, RawFrame, dict[str, Any]]]:
        """A file's frames in order; with `loop`, again and again with a continuing PTS and index."""
        cfg: DecodeConfig = self.config
        pacer = Pacer(lambda s: sleep_unless_stopped(s, self._stopped)) if cfg.realtime else None
        index, offset, last_pts, step = 0, 0.0, None, 0.0
        pass_start: float | None = None  # PTS the next pass starts at (None: the file's own)
        while not self._stopped():
            pass_index = index
            reader, self._reader = self._reader or self._new_reader(), None
            if reader.container is None:
                reader.open()
            self._reader = reader
            try:
                for raw in reader.frames():
                    if raw.pts is not None:
                        offset = pass_start - raw.pts if pass_start is not None else offset
                        pass_start = None
                        raw.pts += offset
                        step = raw.pts - last_pts if last_pts is not None and raw.pts > last_pts else step
                        last_pts = raw.pts
                    if pacer is not None and not pacer.wait(raw.pts):
                        return
                    yield index, raw, {}
                    index += 1
            finally:
                reader.close()
                self._reader = None
            if not cfg.loop or index == pass_index:
                return
            self.ctx.count("loops")
            # The next pass continues the PTS one frame after this pass's last one.
            pass_start = None if last_pts is None else last_pts + step

    def _image_frames(self) -> Iterator[tuple[int, RawFrame, dict[str, Any]]]:
        cfg: DecodeConfig = self.config
        n = len(self.spec.images)
        cycle = 0
        while not self._stopped():
            kept = 0
            for i, path, image in read_images(self.spec.images, cfg.on_corrupt, self.ctx.log,
                                              lambda i, p: self.ctx.count("corrupt_frames")):
                kept += 1
                yield cycle * n + i, RawFrame(image, None, time.time()), {"path": path}
            if not cfg.loop or kept == 0:
                return
            cycle += 1

    def close(self) -> list[Packet]:
        if self._frames is not None:
            self._frames.close()  # runs the readers' `finally` blocks now, not at garbage collection
            self._frames = None
        if getattr(self, "_reader", None) is not None:
            self._reader.close()
            self._reader = None
        return []
