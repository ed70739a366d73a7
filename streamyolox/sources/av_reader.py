"""One PyAV (FFmpeg) connection to a file, network stream or camera, decoded to BGR frames.

FFmpeg decodes with its own threads (``thread_type="AUTO"``). A read that hangs (server gone without a TCP
reset) is broken by PyAV's interrupt callback: `av.open(..., timeout=(open, read))` aborts any single
blocking call after that many seconds, and the FFmpeg socket options (``timeout``/``rw_timeout``, in
microseconds) do the same at the protocol level. For live sources the read timeout is capped at
`stall_timeout_s`, and the stall check runs on every packet the demuxer returns: a stream that keeps
sending packets but no video frame, and a hung read whose timeout libavformat turns into one last
flushed packet (rather than an error), are both reported as ``stalled`` once no frame came for
`stall_timeout_s`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import av
import av.error
import numpy as np

from streamyolox.sources.spec import SourceError, SourceSpec

if TYPE_CHECKING:
    from streamyolox.ops.yuv import Yuv420


class StreamLost(SourceError):
    """A live connection stopped delivering; the caller may reconnect.

    `cause` is ``"ended"`` (the server closed the stream), ``"stalled"`` (no frame for `stall_timeout_s`)
    or ``"error"`` (reset, refused, read timeout).
    """

    def __init__(self, message: str, cause: str = "error") -> None:
        super().__init__(message)
        self.cause = cause


class CorruptInput(SourceError):
    """Undecodable data, with the frame index where it broke (raised when `on_corrupt` is ``stop``)."""

    def __init__(self, message: str, frame: int) -> None:
        super().__init__(message)
        self.frame = frame


class SourceRejected(SourceError):
    """The server refused the request itself (bad path, credentials: RTSP/HTTP 400, 401, 403, 404).

    Likely a configuration error, yet the server may serve the path later (a media server answers 404
    until its publisher connects), so a live source retries it like any failure, per `max_retries`."""


class SourceUnsupported(SourceError):
    """FFmpeg cannot read the URL at all (no such protocol or demuxer in this build): never retried."""


_REJECTED = (av.error.HTTPBadRequestError, av.error.HTTPUnauthorizedError, av.error.HTTPForbiddenError,
             av.error.HTTPNotFoundError)
_UNSUPPORTED = (av.error.ProtocolNotFoundError, av.error.DemuxerNotFoundError)


@dataclass
class AvOptions:
    """How to open and read a PyAV source (a subset of the `decode` stage options)."""

    transport: str = "tcp"
    open_timeout_s: float = 10.0
    read_timeout_s: float = 5.0
    stall_timeout_s: float = 5.0
    threads: int = 0
    on_corrupt: str = "skip"
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    pixel_format: str = "bgr24"  # or "yuv420p": frames that are 4:2:0 keep their planes (`RawFrame.yuv`)


@dataclass
class RawFrame:
    """A decoded frame, PTS in seconds, capture wall clock (s): `image` (ndarray[H, W, 3] uint8, BGR), or
    with ``pixel_format="yuv420p"`` `yuv`, the decoder's planes, and `image` None."""

    image: np.ndarray | None
    pts: float | None
    time: float
    yuv: Yuv420 | None = None

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) in pixels."""
        if self.yuv is not None:
            return self.yuv.height, self.yuv.width
        assert self.image is not None
        return int(self.image.shape[0]), int(self.image.shape[1])


# AVColorSpace codes (libavutil/pixfmt.h) -> the matrix swscale applies; UNSPECIFIED (2) is BT.601 there
_COLORSPACES = {1: "bt709", 2: "bt601", 5: "bt601", 6: "bt601", 9: "bt2020"}
_JPEG_RANGE = 2  # AVCOL_RANGE_JPEG


def yuv420_planes(frame: av.VideoFrame) -> Yuv420 | None:
    """The frame's planes, without a copy (they keep the frame alive), or None for a pixel format or colour
    matrix other than 8-bit 4:2:0 with BT.601, BT.709 or BT.2020 (those frames go through swscale to BGR)."""
    # imported here, not at the top: the runner imports this module (through the decode stage's config),
    # and importing streamyolox.ops loads cv2 (~37 MB of RSS) that it never uses
    from streamyolox.ops.yuv import Yuv420

    colorspace = _COLORSPACES.get(int(frame.colorspace))
    if frame.format.name not in ("yuv420p", "yuvj420p") or colorspace is None:
        return None
    h, w = frame.height, frame.width
    planes = []
    for i, plane in enumerate(frame.planes):
        rows, cols = (h, w) if i == 0 else ((h + 1) // 2, (w + 1) // 2)
        planes.append(np.frombuffer(memoryview(plane), np.uint8).reshape(-1, plane.line_size)[:rows, :cols])
    full = frame.format.name == "yuvj420p" or int(frame.color_range) == _JPEG_RANGE
    return Yuv420(planes[0], planes[1], planes[2], colorspace, full)


def _us(seconds: float) -> str:
    return str(max(1, int(seconds * 1_000_000)))


def container_options(spec: SourceSpec, opts: AvOptions) -> dict[str, str]:
    """FFmpeg options for `spec` (all values strings, as libavformat wants them)."""
    if spec.kind == "rtsp":
        # `timeout` is the RTSP socket I/O timeout in FFmpeg >= 5 (it was `stimeout` before).
        return {"rtsp_transport": opts.transport, "timeout": _us(opts.read_timeout_s)}
    if spec.kind == "http":
        return {"timeout": _us(opts.read_timeout_s), "rw_timeout": _us(opts.read_timeout_s)}
    if spec.kind == "stream":
        return {"rw_timeout": _us(opts.read_timeout_s)}
    if spec.kind == "webcam":
        out: dict[str, str] = {}
        if opts.width and opts.height:
            out["video_size"] = f"{opts.width}x{opts.height}"
        if opts.fps:
            out["framerate"] = f"{opts.fps:g}"
        return out
    return {}


def _error_line(exc: BaseException) -> str:
    """One line from a PyAV/OS error (PyAV messages may carry the filename and a trailing newline)."""
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return " ".join(str(text).split())


class AvReader:
    """Open `spec` once and iterate its video frames.

    Args:
        spec: the classified source (not ``images``).
        opts: timeouts, threads, corrupt-data policy, camera size/fps.
        log: where corrupt data and truncation are reported.
        on_corrupt_frame: called with (frame index, message) for each undecodable packet that is skipped.
    """

    def __init__(self, spec: SourceSpec, opts: AvOptions, log: logging.Logger,
                 on_corrupt_frame: Callable[[int, str], None] | None = None) -> None:
        self.spec = spec
        self.opts = opts
        self.log = log
        self.on_corrupt_frame = on_corrupt_frame
        self.container: Any = None
        self.packets = 0  # video packets sent to the decoder: the frame index where corruption is reported
        self.corrupt_frames: list[int] = []

    def open(self) -> None:
        """Connect / open; raises `SourceError` with one line naming the URL."""
        read_timeout = self.opts.read_timeout_s
        if self.spec.live:
            read_timeout = min(read_timeout, self.opts.stall_timeout_s)
        started = time.monotonic()
        try:
            self.container = av.open(self.spec.target, mode="r", format=self.spec.av_format,
                                     options=container_options(self.spec, self.opts),
                                     timeout=(self.opts.open_timeout_s, read_timeout))
        except (av.error.FFmpegError, OSError) as exc:
            error = (SourceRejected if isinstance(exc, _REJECTED)
                     else SourceUnsupported if isinstance(exc, _UNSUPPORTED) else SourceError)
            raise error(self._open_error(exc, time.monotonic() - started)) from exc
        if not self.container.streams.video:
            self.close()
            raise SourceError(f"source {self.spec.url!r} has no video stream")
        stream = self.container.streams.video[0]
        stream.thread_type = "AUTO"
        stream.codec_context.thread_count = self.opts.threads

    def _open_error(self, exc: BaseException, elapsed: float) -> str:
        reason = _error_line(exc)
        # The interrupt callback surfaces as ExitError, or as whatever error the protocol makes of it.
        if isinstance(exc, av.error.ExitError) or elapsed >= self.opts.open_timeout_s:
            reason = f"no answer within open_timeout_s={self.opts.open_timeout_s:g}"
        if self.spec.kind == "webcam" and isinstance(exc, (FileNotFoundError, av.error.FileNotFoundError)):
            return f"no camera at {self.spec.target} ({self.spec.url}): {reason}"
        return f"cannot open source {self.spec.url!r}: {reason}"

    @property
    def expected_frames(self) -> int:
        """Frame count the container declares (0 when unknown, e.g. live)."""
        if self.container is None:
            return 0
        return int(self.container.streams.video[0].frames or 0)

    @property
    def finite(self) -> bool:
        """Media with an end: files, and HTTP resources with a duration (an MP4, an HLS VOD playlist).

        Their EOF ends the stream; a live stream's EOF (camera, live HLS) is a loss to reconnect from.
        """
        if not self.spec.live:
            return True
        return self.spec.kind == "http" and self.container is not None and self.container.duration is not None

    def frames(self) -> Iterator[RawFrame]:
        """Decode frames in order until EOF.

        Raises:
            StreamLost: a live source's connection failed, timed out, stalled or ended (`finite` media end
                normally instead).
            CorruptInput: undecodable data and `on_corrupt` is ``stop``.
            SourceError: a file's demuxer failed (named with the frame index).
        """
        stream = self.container.streams.video[0]
        # Time spent waiting on FFmpeg since the last frame; the time a frame spends with the consumer
        # (back-pressure) is not a stall, so the clock restarts when the consumer hands control back.
        waiting_since = time.monotonic()
        try:
            for packet in self.container.demux():
                # Checked before the packet is decoded: when a hung read times out, libavformat flushes
                # its H.264 parser and returns the frame it held instead of the error (seen with RTSP over
                # TCP), so a frozen server still yields one frame per read timeout. That frame is the
                # stale tail of a connection that delivered nothing for the whole read timeout.
                if self.spec.live and time.monotonic() - waiting_since >= self.opts.stall_timeout_s:
                    raise StreamLost(f"{self.spec.url}: no frame for stall_timeout_s="
                                     f"{self.opts.stall_timeout_s:g}", "stalled")
                if packet.stream is stream:
                    for frame in self._decode(packet):
                        yield frame
                        waiting_since = time.monotonic()
        except (av.error.FFmpegError, OSError) as exc:
            error = self._read_error(exc)
            if error is not None:
                raise error from exc
            return
        if self.spec.live and not self.finite:
            raise StreamLost(f"{self.spec.url}: stream ended", "ended")
        self._check_complete()

    def _decode(self, packet: Any) -> Iterator[RawFrame]:
        index = self.packets
        if packet.size:
            self.packets += 1
        if packet.is_corrupt:
            # A packet the demuxer knows is damaged (e.g. cut short): never decode it, so a frame-threaded
            # decoder does not also lose the good frames it still holds.
            self._corrupt(index, "packet flagged corrupt (truncated file?)")
            return
        try:
            decoded = packet.decode()
        except av.error.InvalidDataError as exc:
            self._corrupt(index, _error_line(exc))
            return
        for frame in decoded:
            pts = None if frame.time is None else float(frame.time)
            yuv = yuv420_planes(frame) if self.opts.pixel_format == "yuv420p" else None
            if yuv is not None:
                yield RawFrame(None, pts, time.time(), yuv)
            else:
                yield RawFrame(np.ascontiguousarray(frame.to_ndarray(format="bgr24")), pts, time.time())

    def _corrupt(self, index: int, reason: str) -> None:
        if index in self.corrupt_frames:
            return  # one report per broken frame (decoder and demuxer may both complain)
        self.corrupt_frames.append(index)
        message = f"{self.spec.url}: corrupt data at frame {index}: {reason}"
        if self.opts.on_corrupt == "stop":
            raise CorruptInput(message, index)
        self.log.warning("%s (skipped, on_corrupt=skip)", message)
        if self.on_corrupt_frame is not None:
            self.on_corrupt_frame(index, reason)

    def _read_error(self, exc: BaseException) -> SourceError | None:
        """The error to raise for a failed read, or None when a file just ends there (logged)."""
        reason = _error_line(exc)
        if isinstance(exc, av.error.ExitError):
            reason = f"no data for read_timeout_s={self.opts.read_timeout_s:g} / stall_timeout_s={self.opts.stall_timeout_s:g}"
        if self.spec.live:
            return StreamLost(f"{self.spec.url}: {reason}")
        if self.opts.on_corrupt == "stop":
            return CorruptInput(f"{self.spec.url}: read failed at frame {self.packets}: {reason}", self.packets)
        self._corrupt(self.packets, f"read failed: {reason} (the file ends here)")
        return None

    def _check_complete(self) -> None:
        expected = self.expected_frames
        if expected and self.packets < expected and not self.corrupt_frames:
            self._corrupt(self.packets, f"file ended after {self.packets} of {expected} frames (truncated?)")

    def close(self) -> None:
        if self.container is not None:
            try:
                self.container.close()
            finally:
                self.container = None
