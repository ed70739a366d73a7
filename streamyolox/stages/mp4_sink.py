"""`mp4` sink: the annotated stream as a video file through PyAV (H.264 by default).

Same size and frame rate as the source, timestamps from the source PTS. `close()` flushes the encoder and
writes the index, so a run stopped by SIGINT/SIGTERM leaves a playable file; `fragmented: true` writes
self-contained fragments (one per keyframe), so even a killed process leaves a file that plays up to the
last complete fragment.

One file per stream with `{stream}` in `path`, at the size of its first frame (without it, the first
stream's only: several streams at start are refused before it, a stream added later is skipped and
counted in `frames_skipped`). A later frame of another size (a camera that
switches resolution, a reconnect to another profile, concatenated clips) is scaled into that size with its
aspect ratio kept (black bars), with one warning per new size. Output timestamps follow the source PTS
within a run of frames; where the PTS goes back or jumps ahead by more than `MAX_PTS_GAP_S` (a source
whose clock restarts at 0 after a reconnect, concatenated files), the next frame is placed one frame
period after the previous one and the source spacing resumes from there, so the file's timestamps only
increase and every frame keeps its duration.

A sink restarted by `restart: on-failure` never rewrites what it wrote before: its N-th incarnation
continues in `name.partN.mp4` beside `name.mp4` (named in a warning and in the stage's `part` metric);
`fragmented: true` keeps the killed incarnation's file playable up to its last fragment (a killed
non-fragmented file has no index). A fresh run removes the `name.partN.mp4` an earlier run left.
Except when a file stream starts over: a restarted sink whose first frame of a (non-live) stream is its
frame 0 gets the whole stream again (its source re-reads the file from the start, as after the loss of
a Ray node with the whole shard), so it rewrites `name.mp4` and removes the parts: every frame once.
"""

from __future__ import annotations

import dataclasses
import glob
import logging
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, ClassVar, cast

import av
import cv2
import numpy as np
from av.video.codeccontext import VideoCodecContext
from av.video.stream import VideoStream

from streamyolox.analytics.events import is_end_of_stream
from streamyolox.config_fields import OptionError, output_path, ranged
from streamyolox.draw import annotate, annotate_counts
from streamyolox.stages.base import Stage, StageConfig
from streamyolox.stages.packet import Packet
from streamyolox.stages.stream_paths import parse_path

# Tried in order after the requested codec when it is missing or will not open here.
FALLBACK_CODECS: tuple[str, ...] = ("libx264", "libopenh264", "h264", "mpeg4")
# Codec options that only the x264/x265 family understands.
_X26X = ("libx264", "libx265", "libx264rgb")
_FRAG_FLAGS = "frag_keyframe+empty_moov+default_base_moof"
# Output ticks per frame: fine enough to keep PTS jitter, exact for constant-rate sources.
_TICKS_PER_FRAME = 1000
# A forward PTS jump beyond this is a discontinuity, not a pause to reproduce (FFmpeg's own
# dts_delta_threshold is 10 s too).
MAX_PTS_GAP_S = 10.0


@dataclass
class Mp4Config(StageConfig):
    """Options of the `mp4` sink.

    path: output file; `{stream}` in it gives one file per stream (required with several streams).
    codec: encoder (falls back to another available one with a warning).
    crf / preset: x264/x265 quality and speed; `bitrate` (bit/s) is used by other encoders.
    pix_fmt: encoder pixel format (yuv420p plays everywhere).
    fps: constant output frame rate, source PTS ignored (default: the source's timing, at the rate of
        FrameMeta.extra["fps"] or else measured from the first two PTS).
    fragmented: fragmented MP4 (a killed process still leaves a playable file).
    keyframe_interval_s: seconds between keyframes (= fragment length when fragmented).
    draw: draw the detections (with a `count` stage upstream also its lines, zones and totals; False:
        re-encode the frames as they are).
    """

    path: str = output_path("out.mp4")
    codec: str = "libx264"
    crf: int = ranged(23, ge=0, le=51)  # x264's scale for 8-bit video
    preset: str = "veryfast"
    bitrate: int = ranged(4_000_000, ge=1)
    pix_fmt: str = "yuv420p"
    fps: float | None = ranged(None, gt=0)
    fragmented: bool = False
    keyframe_interval_s: float = ranged(2.0, gt=0)
    draw: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.path.strip() or self.path == "-":
            raise OptionError("path", f"expected a file name, got {self.path!r}")
        parse_path("path", self.path)


def pick_codec(requested: str, pix_fmt: str) -> str:
    """First encoder of `requested` + FALLBACK_CODECS that opens on this machine; raises if none does."""
    errors = []
    for name in dict.fromkeys((requested, *FALLBACK_CODECS)):
        try:
            cc = cast(VideoCodecContext, av.CodecContext.create(name, "w"))  # a video encoder by name
            cc.width, cc.height, cc.pix_fmt = 64, 64, pix_fmt
            cc.time_base, cc.framerate = Fraction(1, 30), Fraction(30)
            cc.open()
            return name
        except Exception as exc:  # missing codec, no hardware, unsupported pix_fmt: try the next one
            errors.append(f"{name}: {exc}")
    raise RuntimeError(f"mp4 sink: no usable video encoder ({'; '.join(errors)})")


def continuation(path: Path, restarts: int) -> Path:
    """The file a sink restarted `restarts` times writes: `path` itself at first, then `name.partN.mp4`
    (N = the restart count), so what the earlier incarnation wrote stays as it was."""
    return path if restarts == 0 else path.with_name(f"{path.stem}.part{restarts}{path.suffix}")


def stale_parts(path: Path) -> list[Path]:
    """Continuations (`name.partN.mp4`) an earlier run left beside `path`."""
    pattern = re.compile(re.escape(path.stem) + r"\.part[0-9]+" + re.escape(path.suffix))
    return sorted(p for p in path.parent.glob(f"{glob.escape(path.stem)}.part*") if pattern.fullmatch(p.name))


def _letterbox(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """`image` scaled to fit `width` x `height` with its aspect ratio, centred on black."""
    h, w = image.shape[:2]
    scale = min(width / w, height / h)
    size = (max(1, min(width, round(w * scale))), max(1, min(height, round(h * scale))))
    resized = cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    left, top = (width - size[0]) // 2, (height - size[1]) // 2
    return cv2.copyMakeBorder(resized, top, height - size[1] - top, left, width - size[0] - left,
                              cv2.BORDER_CONSTANT, value=(0, 0, 0))


class Mp4Writer:
    """One output file: opens the container on the first frame, maps source PTS to output ticks."""

    def __init__(self, path: Path, config: Mp4Config, codec: str, fps: Fraction, log: logging.Logger,
                 size: tuple[int, int]) -> None:
        self.path, self.config, self.log = path, config, log
        self.width, self.height = size
        self.fps = fps
        self.time_base = 1 / (fps * _TICKS_PER_FRAME)
        self.frames = 0
        self._anchor: tuple[float, int] | None = None  # (source PTS, output ticks) the current run starts at
        self._last_ticks = -_TICKS_PER_FRAME  # so the first frame is at 0
        self._warned_sizes: set[tuple[int, int]] = set()
        path.parent.mkdir(parents=True, exist_ok=True)
        # flush_packets: each fragment reaches the disk at once, not when the 32 KiB I/O buffer fills.
        options = {"movflags": _FRAG_FLAGS, "flush_packets": "1"} if config.fragmented else {}
        self.container = av.open(str(path), "w", format="mp4", options=options)
        try:
            # add_stream of a video codec gives a VideoStream (PyAV's stubs return the union of kinds)
            self.stream = cast(VideoStream, self.container.add_stream(codec, rate=fps))
            self.stream.width, self.stream.height = self._even(self.width), self._even(self.height)
            self.stream.pix_fmt = config.pix_fmt
            self.stream.codec_context.time_base = self.time_base
            self.stream.codec_context.gop_size = max(1, round(float(fps) * config.keyframe_interval_s))
            if codec in _X26X:
                self.stream.options = {"crf": str(config.crf), "preset": config.preset}
            else:
                self.stream.codec_context.bit_rate = config.bitrate
        except Exception:
            self.container.close()
            raise

    def _even(self, n: int) -> int:
        return n + (n % 2) if self.config.pix_fmt.startswith(("yuv420", "yuvj420", "nv12")) else n

    def _ticks(self, pts: float | None) -> int:
        """Output PTS in ticks, strictly increasing: one frame period after the previous frame when the
        `fps` option is set, the source has no PTS, or the PTS breaks (see the module doc); else the source
        spacing since the start of the current run."""
        next_frame = self._last_ticks + _TICKS_PER_FRAME
        ticks = next_frame
        if pts is not None and not self.config.fps:
            if self._anchor is not None:
                ticks = self._anchor[1] + round((pts - self._anchor[0]) / self.time_base)
            if self._anchor is None or not 0 < ticks - self._last_ticks <= MAX_PTS_GAP_S / self.time_base:
                self._anchor, ticks = (pts, next_frame), next_frame
        self._last_ticks = ticks
        return ticks

    def _fit(self, image: np.ndarray) -> np.ndarray:
        """Scale a frame whose size changed mid-stream into the file's size; pad odd sizes for 4:2:0."""
        h, w = image.shape[:2]
        if (w, h) != (self.width, self.height):
            if (w, h) not in self._warned_sizes and len(self._warned_sizes) < 16:  # bounded: a few sizes
                self._warned_sizes.add((w, h))
                self.log.warning("mp4 sink %s: frame size changed from %dx%d to %dx%d; scaling it into "
                                 "%dx%d (aspect ratio kept, black bars)", self.path, self.width, self.height,
                                 w, h, self.width, self.height)
            image = _letterbox(image, self.width, self.height)
        pad_w, pad_h = self.stream.width - self.width, self.stream.height - self.height
        if pad_w or pad_h:
            image = cv2.copyMakeBorder(image, 0, pad_h, 0, pad_w, cv2.BORDER_REPLICATE)
        return image

    def write(self, image: np.ndarray, pts: float | None) -> None:
        """Encode one BGR frame (ndarray[H, W, 3] uint8) at source time `pts` (s)."""
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(self._fit(image)), format="bgr24")
        frame.pts, frame.time_base = self._ticks(pts), self.time_base
        for pkt in self.stream.encode(frame):
            self.container.mux(pkt)
        self.frames += 1

    def close(self) -> None:
        """Flush the encoder's delayed frames and write the index; the file is complete afterwards."""
        try:
            for pkt in self.stream.encode(None):
                self.container.mux(pkt)
        finally:
            self.container.close()


class Mp4Sink(Stage):
    """Writes each frame, annotated with its detections, to an MP4 file (one per stream with `{stream}`)."""

    kind: ClassVar[str] = "mp4"
    Config: ClassVar[type[StageConfig]] = Mp4Config
    is_sink: ClassVar[bool] = True
    description: ClassVar[str] = ("annotated video file (H.264 MP4 through PyAV); one file per stream at its first "
                                  "frame's size (other sizes scaled in, aspect kept), timestamps kept increasing "
                                  "across PTS resets")

    def __init__(self, config: Any, ctx: Any) -> None:
        super().__init__(config, ctx)
        self.codec = config.codec
        self.writers: dict[str, Mp4Writer] = {}
        self._pending: dict[str, list[Packet]] = {}
        self._template = parse_path("mp4.path", config.path)
        self._warned: set[str] = set()

    def open(self) -> None:
        cfg: Mp4Config = self.config
        self.codec = pick_codec(cfg.codec, cfg.pix_fmt)
        if self.codec != cfg.codec:
            self.ctx.log.warning("mp4 sink: encoder %r is not available here; using %r", cfg.codec, self.codec)

    def _path_for(self, stream: str, again: bool = False) -> Path:
        """`again`: the stream starts over, so its file is written anew rather than continued."""
        template = parse_path("mp4.path", self.config.path)
        return continuation(Path(template.render(stream)), 0 if again else self.ctx.restarts)

    def _foreign(self, stream: str) -> bool:
        """Without `{stream}` the file is the first stream's: another stream's frames (one added while the
        pipeline runs; the pre-start checks refuse several streams at start) are skipped, counted in
        `frames_skipped` and warned about once, rather than ending the run."""
        if self._template.templated:
            return False
        owner = next(iter(self.writers), None) or next(iter(self._pending), None)
        if owner is None or owner == stream:
            return False
        self.ctx.count("frames_skipped")
        if stream not in self._warned and len(self._warned) < 16:  # bounded: a few names in the log
            self._warned.add(stream)
            self.ctx.log.warning("mp4 sink: path %r has no {stream}: it holds stream %r only; the frames of "
                                 "stream %r are skipped (counted in frames_skipped)", self.config.path, owner,
                                 stream)
        return True

    def _fps(self, packets: list[Packet], final: bool) -> Fraction | None:
        """Frame rate from the option, the source's metadata, or the first two PTS (None: wait for more)."""
        if self.config.fps:
            return Fraction(self.config.fps).limit_denominator(1001)
        meta = packets[0].meta
        if meta.extra.get("fps"):
            return Fraction(meta.extra["fps"]).limit_denominator(1001)
        if len(packets) >= 2 and meta.pts is not None and packets[1].meta.pts is not None:
            delta = packets[1].meta.pts - meta.pts
            if delta > 0:
                return Fraction(1 / delta).limit_denominator(1001)
        if final or len(packets) >= 2:
            self.ctx.log.warning("mp4 sink: source frame rate unknown; writing 30 fps (set option fps)")
            return Fraction(30)
        return None

    def _start(self, stream: str, packets: list[Packet], final: bool = False) -> bool:
        fps = self._fps(packets, final)
        if fps is None:
            return False
        frame = packets[0].frame
        assert frame is not None
        # a restarted sink given a file stream's frame 0 first gets the whole stream again (see the module doc)
        meta = packets[0].meta
        again = bool(self.ctx.restarts) and meta.frame == 0 and not meta.extra.get("live")
        path = self._path_for(stream, again)
        size = (frame.shape[1], frame.shape[0])
        self._announce(path, again)
        self.writers[stream] = Mp4Writer(path, self.config, self.codec, fps, self.ctx.log, size)
        self.ctx.log.info("mp4 sink: writing %s (%s, %dx%d, %s fps)", path, self.codec, *size, fps)
        return True

    def _announce(self, path: Path, again: bool = False) -> None:
        """A fresh run (or a stream that starts over: `again`) removes the continuations of an earlier one
        (they belong to the file it replaces); a restarted one says where it continues."""
        restarts = self.ctx.restarts
        if again:
            self.ctx.log.warning("mp4 sink: restarted (%d) and the stream starts over from its first frame: "
                                 "writing %s anew", restarts, path)
        elif restarts:
            self.ctx.set_value("part", restarts)
            self.ctx.log.warning("mp4 sink: restarted (%d): continuing in %s; the frames written before the "
                                 "restart stay in the earlier file(s)", restarts, path)
            return
        for old in stale_parts(path):
            old.unlink(missing_ok=True)
            self.ctx.log.info("mp4 sink: removed %s, a continuation left by an earlier run", old)

    def _write(self, packet: Packet) -> None:
        image = packet.frame
        assert image is not None
        if self.config.draw:
            image = annotate_counts(annotate(image, packet.detections), packet.counts, copy=False)
        self.writers[packet.meta.stream].write(image, packet.meta.pts)
        self.ctx.count("frames_written")

    def process(self, packet: Packet) -> list[Packet]:
        if is_end_of_stream(packet.meta.extra):  # a count stage's last events: nothing to draw
            return []
        if packet.frame is None:
            raise ValueError(f"mp4 sink {self.ctx.stage_id!r}: packet has no frame (place it downstream of decode)")
        stream = packet.meta.stream
        if stream not in self.writers:
            if self._foreign(stream):
                return []
            pending = self._pending.setdefault(stream, [])
            # a copy: the frame is a view of a shared-memory slot that the runtime reuses once process()
            # returns (an uncopied first frame came out as a later frame of the stream)
            pending.append(dataclasses.replace(packet, frame=packet.frame.copy()))
            if not self._start(stream, pending):
                return []
            for p in self._pending.pop(stream):
                self._write(p)
            return []
        self._write(packet)
        return []

    def close(self) -> list[Packet]:
        errors = []
        for stream, pending in list(self._pending.items()):
            if self._start(stream, pending, final=True):
                for p in self._pending.pop(stream):
                    self._write(p)
        for stream, writer in self.writers.items():
            try:
                writer.close()
                self.ctx.log.info("mp4 sink: closed %s (%d frames)", writer.path, writer.frames)
            except Exception as exc:  # close the other files before reporting
                errors.append(f"{writer.path} ({stream}): {exc}")
        self.writers.clear()
        if errors:
            raise RuntimeError(f"mp4 sink: could not finish {'; '.join(errors)}")
        return []
