"""Video sources for the `decode` stage: files, RTSP, HTTP/HLS, webcams and image folders (PyAV/FFmpeg).

The names below load their module on first use (PEP 562): validating a pipeline reads `spec` and the
decode stage's options, and importing PyAV for that cost the runner 0.05-0.09 s on the path to the first
frame (`python -X importtime`, 2-core AMD EPYC); the stage processes import PyAV themselves.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

_MODULES = {
    "av_reader": ("AvOptions", "AvReader", "CorruptInput", "RawFrame", "SourceRejected", "SourceUnsupported",
                  "StreamLost"),
    "reconnect": ("RetryPolicy", "SourceHooks", "reconnecting_frames"),
    "sampling": ("FrameSampler", "Pacer"),
    "spec": ("SourceError", "SourceSpec", "parse_source"),
}
_WHERE = {name: module for module, names in _MODULES.items() for name in names}

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


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'streamyolox.sources' has no attribute {name!r}")
    return getattr(importlib.import_module(f"streamyolox.sources.{module}"), name)
