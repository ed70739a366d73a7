"""Video sources for the `decode` stage: files, RTSP, HTTP/HLS, webcams and image folders (PyAV/FFmpeg)."""

from streamyolox.sources.av_reader import (
    AvOptions,
    AvReader,
    CorruptInput,
    RawFrame,
    SourceRejected,
    SourceUnsupported,
    StreamLost,
)
from streamyolox.sources.reconnect import RetryPolicy, SourceHooks, reconnecting_frames
from streamyolox.sources.sampling import FrameSampler, Pacer
from streamyolox.sources.spec import SourceError, SourceSpec, parse_source

__all__ = [
    "AvOptions",
    "AvReader",
    "CorruptInput",
    "FrameSampler",
    "Pacer",
    "RawFrame",
    "RetryPolicy",
    "SourceError",
    "SourceHooks",
    "SourceRejected",
    "SourceSpec",
    "SourceUnsupported",
    "StreamLost",
    "parse_source",
    "reconnecting_frames",
]
