"""The `decode` source stage: any video source to BGR frames, one `Packet` per frame; one stream or many.

Files give every frame in order; live sources (RTSP, HTTP/HLS, webcams) reconnect with backoff when
they stop delivering; `stride` / `max_fps` sub-sample at the source. Each packet's `meta` carries the
stream id, the frame index (decoded frames of that stream since start, sub-sampled ones included, so gaps
show), the PTS in seconds and the wall-clock capture time.

`url` reads one stream (id: `stream`, default the stage id). `streams` (and `streams_file`) read many in
this one process, a reader thread per stream, merged round robin (`streamyolox.sources.stream_set`): each
stream has its own reconnect state and stats, a stream that fails for good is reported `down` and the
others go on; the stage ends when every stream has. `processes: N` spreads the streams over N processes
(`source#0` .. `source#N-1`, `streamyolox.graph.replicas.expand`). While the pipeline runs, streams can be
added and removed (`add_stream`, `remove_stream`, `streams_status`: the HTTP API calls them).

Example YAML::

    source:
      kind: decode
      transport: tcp
      stall_timeout_s: 5
      max_fps: 10                       # every stream's default
      streams:
        door: rtsp://10.0.0.5:554/stream1
        yard: {url: rtsp://10.0.0.6:554/stream1, max_fps: 5}
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from streamyolox.config_fields import RESOLVED_KEY, OptionError, ranged
from streamyolox.sources.spec import SourceError, SourceSpec, parse_source
from streamyolox.sources.streams import (
    STREAM_AUTO_THREADS,
    StreamOptions,
    StreamSettings,
    check_stream_id,
    collect_streams,
    parse_stream,
    split_streams,
)
from streamyolox.stages.base import Stage, StageConfig
from streamyolox.stages.packet import Packet


@dataclass
class DecodeConfig(StreamSettings, StageConfig):
    """Options of the `decode` stage: the per-stream options of `StreamSettings` (url, transport,
    timeouts, reconnect, max_retries, backoff, max_fps, stride, loop, realtime, on_corrupt, width/height/fps,
    threads) - the defaults of every stream - and:

    Attributes:
        url: one stream (exclusive with `streams` / `streams_file`).
        stream: the stream id of `url` (default: the stage id).
        streams: stream id -> url, or -> a mapping of that stream's options.
        streams_file: a YAML file of more streams, of the same shape.
        processes: spread the streams over this many processes (at most one per stream).
        pixel_format: what the stage hands on. ``bgr24``: every frame converted to BGR by FFmpeg's swscale
            (`packet.frame`, the pixels the official YOLOX pipeline sees). ``yuv420p``: 4:2:0 frames keep the
            decoder's planes (`packet.yuv`) and the letterbox converts only the model input (2.1 -> 0.6
            core-ms a 720p frame; pixels within 0.64 on average of the BGR path's, `letterbox_yuv420`);
            every consumer must be a CPU letterbox that drops the frame. ``auto``: the runtime picks yuv420p
            when that holds and the letterbox runs in this process (`streamyolox.graph.placement`), else
            bgr24 (so does the stage run on its own).
    """

    stream: str | None = None
    streams: dict[str, str | dict[str, Any]] | None = None
    streams_file: str | None = None
    processes: int = ranged(1, ge=1)
    pixel_format: Literal["auto", "bgr24", "yuv420p"] = "auto"
    # Filled in by __post_init__: every stream of `streams` + `streams_file`, raw and parsed.
    raw_streams: dict[str, Any] = dataclasses.field(init=False, repr=False, default_factory=dict,
                                                    metadata={RESOLVED_KEY: True})
    stream_options: dict[str, StreamOptions] = dataclasses.field(init=False, repr=False, default_factory=dict,
                                                                 metadata={RESOLVED_KEY: True})

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.pixel_format not in ("auto", "bgr24", "yuv420p"):
            raise OptionError("pixel_format", f"expected auto, bgr24 or yuv420p, got {self.pixel_format!r}")
        many = self.streams is not None or self.streams_file is not None
        if self.url is None and not many:
            raise OptionError("url", "set url (one stream) or streams (stream id -> url)")
        if self.url is not None and many:
            raise OptionError("streams" if self.streams is not None else "streams_file",
                              f"cannot be combined with url ({self.url!r}); set url: null "
                              "(--set stages.<id>.url=null)")
        if self.stream is not None:
            if many:
                raise OptionError("stream", "names the stream of url; with streams the ids are the mapping keys")
            check_stream_id(self.stream, "stream")
        if many:
            self.raw_streams, self.stream_options = collect_streams(self.streams, self.streams_file, self)
        if self.processes > 1 and not many:
            raise OptionError("processes", "spreads the streams of `streams` over processes; set streams")
        if self.processes > max(1, len(self.stream_options)):
            raise OptionError("processes", f"expected at most the number of streams "
                              f"({len(self.stream_options)}), got {self.processes}")

    def for_process(self, index: int, n: int) -> DecodeConfig:
        """The options of process `index` of `processes: n`: its share of the streams (dealt round robin)."""
        ids = split_streams(list(self.raw_streams), n)[index]
        return dataclasses.replace(self, streams={k: self.raw_streams[k] for k in ids}, streams_file=None,
                                   processes=1)


class DecodeStage(Stage):
    """Source stage: decodes `url` (or every stream of `streams`) and yields one packet per kept frame."""

    kind = "decode"
    Config = DecodeConfig
    is_source = True
    description = "video sources (files, RTSP, HTTP/HLS, webcams, image folders; one or many) -> BGR frames"

    def open(self) -> None:
        # here, not at the top: validating a pipeline loads this module for its Config, without PyAV
        # (streamyolox/sources/__init__.py); the forkserver has them loaded before any stage opens
        from streamyolox.sources.stream_set import StreamSet

        cfg: DecodeConfig = self.config
        # late-bound: the context's hooks may be replaced after open (tests do)
        self.streams = StreamSet(lambda: self.ctx.should_stop(), self.ctx.log,
                                 lambda name, n: self.ctx.count(name, n), lambda name, v: self.ctx.set_value(name, v))
        if cfg.url is None:
            for opts in cfg.stream_options.values():
                self._add(opts)
            if not cfg.stream_options:
                self.ctx.log.warning("source %r has no streams yet: it waits for streams added with POST /streams "
                                     "(run with --http PORT), or set some: --set stages.%s.streams.ID=URL",
                                     self.ctx.stage_id, self.ctx.stage_id.partition("#")[0])
            return
        self.stream_id = cfg.stream or self.ctx.stage_id
        opts = parse_stream(self.stream_id, cfg.url, cfg)
        spec = source_spec(opts)
        first = None
        if spec.kind == "file" or (spec.live and not opts.reconnect):
            from streamyolox.sources.av_reader import AvReader
            from streamyolox.sources.stream_reader import av_options

            # fail fast: missing codec, bad header, unreachable with reconnect off
            first = AvReader(spec, av_options(opts), self.ctx.log,
                             lambda i, r: self.streams.mailbox.post(self.ctx.count, "corrupt_frames", 1))
            first.open()
        # One url keeps its old behaviour: its reader waits for the pipeline, the edges' policy decides.
        self.streams.add(opts, spec, keep_newest=False, first=first)

    def generate(self) -> Iterator[Packet]:
        self.streams.start()
        while (packet := self.streams.next()) is not None:
            yield packet
            if self.ctx.should_stop():
                return
        failed = self.streams.failures()
        if failed and self.streams.all_failed():
            if len(failed) == 1 and failed[0].failure is not None:
                raise failed[0].failure  # one stream: its own error (CorruptInput names the frame)
            raise SourceError(f"all {len(failed)} streams failed: "
                              + "; ".join(f"{s.opts.id}: {s.error}" for s in failed[:3]))

    # -- live control (the worker's command thread calls these while generate() runs) ----------------
    def add_stream(self, stream_id: str, options: str | dict[str, Any]) -> dict[str, Any]:
        """Start reading a new stream; raises `StreamExists` for a taken id, ValueError for a bad option."""
        opts = parse_stream(stream_id, options, self.config)
        try:
            return self._add(opts)
        except SourceError as exc:
            raise ValueError(str(exc)) from None

    def _add(self, opts: StreamOptions) -> dict[str, Any]:
        """One of many streams: live ones keep their newest frames; FFmpeg's auto threads are capped."""
        spec = source_spec(opts, f"streams.{opts.id}.url: ")
        if opts.threads == 0:
            opts = dataclasses.replace(opts, threads=STREAM_AUTO_THREADS)
        return self.streams.add(opts, spec, keep_newest=is_live(spec, opts))

    def remove_stream(self, stream_id: str) -> dict[str, Any]:
        """Stop reading a stream (KeyError if unknown); the frames it emitted already keep flowing."""
        return self.streams.remove(stream_id)

    def streams_status(self) -> list[dict[str, Any]]:
        """Per stream: id, url, state, live, frames (emitted), decoded, skipped, dropped, reconnects,
        error (last, or None), last_frame (index of the last frame emitted)."""
        return self.streams.status()

    def close(self) -> list[Packet]:
        if getattr(self, "streams", None) is not None:
            self.streams.close()  # stops every reader; each closes its own connection
        return []


def source_spec(opts: StreamOptions, where: str = "") -> SourceSpec:
    """`opts.url` classified; SourceError (one line, prefixed with `where`) for a missing file or camera."""
    try:
        spec = parse_source(opts.url)
    except SourceError as exc:
        raise SourceError(f"{where}{exc}") from None
    if spec.kind == "webcam" and spec.av_format == "v4l2" and not os.path.exists(spec.target):
        raise SourceError(f"{where}no camera: {spec.target} does not exist (url {opts.url!r})")
    return spec


def is_live(spec: SourceSpec, opts: StreamSettings) -> bool:
    """A stream that runs in real time (a live source, or a file played `realtime`): among many streams it
    keeps its newest frames rather than wait for the pipeline."""
    return spec.live or opts.realtime
