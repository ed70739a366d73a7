"""Stream options of a multi-stream `decode` source: ids, per-stream settings, `streams:` and `streams_file:`.

A `decode` stage reads one `url` or many `streams` (stream id -> url, or -> a mapping of that stream's
options). The per-stream options are `StreamSettings` (transport, timeouts, reconnect, sampling, ...); the
stage-level values are the defaults of every stream::

    source:
      kind: decode
      max_fps: 15                      # the default of every stream
      streams:
        door: rtsp://10.0.0.5/stream1
        yard: {url: rtsp://10.0.0.6/stream1, max_fps: 5}
      streams_file: cams.yaml          # more of the same shape (id -> url | mapping)

Errors name the option path (`streams.yard.max_fps: expected a number > 0, got -1`); the pipeline loader
prefixes `stages.<id>.`. `parse_stream` is also what the HTTP API uses to check a stream added live.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from streamyolox.config_fields import OptionError, check_ranges, ranged
from streamyolox.graph.options import SpecError, build_dataclass, unknown_key_error

# Stream ids end up in file names, MQTT/ZMQ topics and URLs.
STREAM_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")
# FFmpeg threads of each stream of a multi-stream source left at `threads: 0`: enough for a live camera in
# real time (a core decodes 720p H.264 at several hundred frames/s), without FFmpeg's cores + 1 per stream
STREAM_AUTO_THREADS = 2


class StreamExists(Exception):
    """`add_stream` with an id that is taken (a stream with that id is still running)."""


def check_stream_id(stream_id: object, option: str = "streams") -> str:
    """`stream_id` when valid, else `OptionError` (`streams: invalid stream id 'a b' (...)`)."""
    if not isinstance(stream_id, str) or not STREAM_ID.fullmatch(stream_id):
        raise OptionError(option, f"invalid stream id {stream_id!r} (expected 1 to 64 of A-Z a-z 0-9 _ . -)")
    return stream_id


def _check(ok: bool, option: str, expected: str, value: Any) -> None:
    if not ok:
        raise OptionError(option, f"expected {expected}, got {value!r}")


@dataclass
class StreamSettings:
    """The options each stream of a `decode` stage may set for itself (the stage's are the defaults).

    Attributes:
        url: a file, ``rtsp://``, ``http(s)://`` (HLS ``.m3u8`` too), ``webcam:N`` / ``/dev/videoN``,
            an image folder or a glob (``frames/*.jpg``).
        transport: RTSP transport, ``tcp`` or ``udp``.
        open_timeout_s: give up connecting / opening after this long.
        read_timeout_s: abort a read that blocks this long (broken by FFmpeg's interrupt callback).
        stall_timeout_s: a live source that delivers no frame this long is reconnected.
        reconnect: reconnect live sources that stop delivering (else a lost stream ends).
        max_retries: consecutive failed reconnect attempts before giving up; None retries forever.
        backoff_initial_s, backoff_max_s: exponential backoff (with jitter) between attempts.
        max_fps: pass at most this many frames per second of stream time (None: all).
        stride: pass every `stride`-th decoded frame.
        loop: replay a file or image folder forever (soaks, demos).
        realtime: play a file at its native frame rate, like a camera.
        on_corrupt: ``skip`` (report the frame and go on) or ``stop`` (fail naming the frame).
        width, height, fps: capture size and rate asked of a webcam.
        threads: FFmpeg decoding threads per stream (0: FFmpeg picks for a single `url`, at most
            `STREAM_AUTO_THREADS` for each of many `streams`: FFmpeg's own pick is one per core plus one,
            and each frame thread holds a frame of its own, ~1.4 MB at 720p, on every stream).
    """

    url: str | None = None
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
        if self.url is not None:
            _check(isinstance(self.url, str) and bool(self.url.strip()), "url", "a non-empty string", self.url)
        _check(self.transport in ("tcp", "udp"), "transport", "'tcp' or 'udp'", self.transport)
        _check(self.on_corrupt in ("skip", "stop"), "on_corrupt", "'skip' or 'stop'", self.on_corrupt)
        check_ranges(self)
        if (self.width is None) != (self.height is None):
            raise OptionError("height" if self.height is None else "width",
                              f"set width and height together, got width {self.width}, height {self.height}")
        if self.backoff_max_s < self.backoff_initial_s:
            raise OptionError("backoff_max_s", f"expected at least backoff_initial_s ({self.backoff_initial_s:g}), "
                              f"got {self.backoff_max_s:g}")


SETTINGS = tuple(f.name for f in dataclasses.fields(StreamSettings))


@dataclass(kw_only=True)
class StreamOptions(StreamSettings):
    """One stream of a `decode` stage: its id and its settings (defaults filled in from the stage), and the
    stage's `pixel_format` as resolved for its readers (``bgr24`` or ``yuv420p``; not a per-stream option)."""

    id: str
    url: str
    pixel_format: Literal["bgr24", "yuv420p"] = "bgr24"

    def __post_init__(self) -> None:
        _check(isinstance(self.url, str) and bool(self.url.strip()), "url", "a non-empty string", self.url)
        super().__post_init__()


def parse_stream(stream_id: str, value: str | dict[str, Any], defaults: StreamSettings) -> StreamOptions:
    """The options of stream `stream_id` given as a url or a mapping, the stage's settings as defaults.

    Raises ValueError (`SpecError`) with one line `streams.<id>.<option>: why`."""
    path = f"streams.{stream_id}"
    try:
        check_stream_id(stream_id)
    except OptionError as exc:
        raise SpecError(str(exc)) from None
    if isinstance(value, str):
        value = {"url": value}
    if not isinstance(value, dict):
        raise SpecError(f"{path}: expected a url or a mapping of decode options, got {value!r}")
    for key in value:
        if key not in SETTINGS:
            raise unknown_key_error(path, key, SETTINGS)
    merged = {name: getattr(defaults, name) for name in SETTINGS if name != "url"}
    merged.update(value)
    if "url" not in value:
        raise SpecError(f"{path}: missing required option 'url'")
    # the stage's choice; "auto" left unresolved (a stage run without the runtime) is the documented BGR
    pixel_format = "yuv420p" if getattr(defaults, "pixel_format", None) == "yuv420p" else "bgr24"
    options: StreamOptions = build_dataclass(StreamOptions, {**merged, "id": stream_id, "pixel_format": pixel_format},
                                             path)
    return options


def read_streams_file(path: str) -> dict[str, Any]:
    """The streams of a `streams_file` (id -> url | mapping, or that mapping under a `streams:` key).

    Raises `OptionError` on `streams_file` with one line naming the file (and line:column for bad YAML)."""
    try:
        text = Path(path).expanduser().read_text(encoding="utf-8")
    except FileNotFoundError:
        raise OptionError("streams_file", f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise OptionError("streams_file", f"{path}: cannot read: {exc}") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else path
        raise OptionError("streams_file", f"{where}: invalid YAML: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise OptionError("streams_file", f"{path}: invalid YAML: {exc}") from None
    if isinstance(doc, dict) and set(doc) == {"streams"}:
        doc = doc["streams"]
    if not isinstance(doc, dict) or not doc:
        raise OptionError("streams_file", f"{path}: expected a mapping of stream id -> url or options, got {doc!r}")
    return doc


def collect_streams(inline: dict[str, Any] | None, streams_file: str | None,
                    defaults: StreamSettings) -> tuple[dict[str, Any], dict[str, StreamOptions]]:
    """(raw values, parsed options) of every stream of `streams:` and `streams_file:` (ids unique)."""
    raw: dict[str, Any] = dict(inline or {})
    parsed: dict[str, StreamOptions] = {}
    for stream_id, value in raw.items():
        if not isinstance(stream_id, str) or not STREAM_ID.fullmatch(stream_id):
            check_stream_id(stream_id)
        parsed[stream_id] = parse_stream(stream_id, value, defaults)
    if streams_file is not None:
        for stream_id, value in read_streams_file(streams_file).items():
            try:
                check_stream_id(stream_id)
                if stream_id in raw:
                    raise SpecError(f"streams.{stream_id}: given in streams and in the streams file")
                parsed[stream_id] = parse_stream(stream_id, value, defaults)
            except ValueError as exc:
                raise OptionError("streams_file", f"{streams_file}: {exc}") from None
            raw[stream_id] = value
    return raw, parsed  # none is fine: the source waits for streams added live (POST /streams)


def split_streams(stream_ids: list[str], n: int) -> list[list[str]]:
    """`stream_ids` dealt round robin into `n` groups (the streams of each of `processes: n`)."""
    return [stream_ids[i::n] for i in range(n)]
