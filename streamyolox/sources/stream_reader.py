"""The frames of ONE stream of a `decode` stage, in its reader thread: file, image folder or live source.

`stream_frames` yields `(frame index, RawFrame, meta extra)` per decoded frame, sub-sampled ones included
(the sampler runs after, so the index shows the gaps): files in order (looped with a continuing PTS and
index with `loop`, paced with `realtime`), image folders, and live sources across reconnects
(`reconnecting_frames`). Counters go through `hooks.count` / `hooks.set_value`, which the caller routes to
the stage context in the stage's own thread (`Mailbox`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from typing import Any

from streamyolox.sources.av_reader import AvOptions, AvReader, RawFrame
from streamyolox.sources.images import read_images
from streamyolox.sources.reconnect import RetryPolicy, SourceHooks, reconnecting_frames, sleep_unless_stopped
from streamyolox.sources.sampling import Pacer
from streamyolox.sources.spec import SourceSpec
from streamyolox.sources.streams import StreamOptions

Frames = Generator[tuple[int, RawFrame, dict[str, Any]], None, None]


def av_options(opts: StreamOptions) -> AvOptions:
    return AvOptions(opts.transport, opts.open_timeout_s, opts.read_timeout_s, opts.stall_timeout_s,
                     opts.threads, opts.on_corrupt, opts.width, opts.height, opts.fps, opts.pixel_format)


def retry_policy(opts: StreamOptions) -> RetryPolicy:
    return RetryPolicy(opts.reconnect, opts.max_retries, opts.backoff_initial_s, opts.backoff_max_s)


def new_reader(spec: SourceSpec, opts: StreamOptions, hooks: SourceHooks) -> AvReader:
    return AvReader(spec, av_options(opts), hooks.log, lambda i, r: hooks.count("corrupt_frames", 1))


def stream_frames(spec: SourceSpec, opts: StreamOptions, hooks: SourceHooks,
                  reconnects: Callable[[], int], first: AvReader | None = None) -> Frames:
    """Every frame of the stream (see the module doc). `reconnects()` is the stream's reconnect count,
    written in each live frame's extra: downstream a change marks a new connection (the track stage
    resets the stream's tracks). `live` marks them too: a restarted source that resumes its files after
    what its consumers have must not skip them (`streamyolox.graph.transport`). `first`: a connection the
    stage opened already (to fail fast)."""
    if spec.kind == "images":
        yield from _image_frames(spec, opts, hooks)
    elif spec.live:
        frames = reconnecting_frames(spec, av_options(opts), retry_policy(opts), hooks, first)
        try:
            for index, raw in enumerate(frames):
                yield index, raw, {"reconnects": reconnects(), "live": True}
        finally:
            frames.close()  # closes the connection now, in this thread (not at garbage collection)
    else:
        yield from _file_frames(spec, opts, hooks, first)


def _file_frames(spec: SourceSpec, opts: StreamOptions, hooks: SourceHooks, first: AvReader | None) -> Frames:
    """A file's frames in order; with `loop`, again and again with a continuing PTS and index."""
    pacer = Pacer(lambda s: sleep_unless_stopped(s, hooks.should_stop)) if opts.realtime else None
    index, offset, last_pts, step = 0, 0.0, None, 0.0
    pass_start: float | None = None  # PTS the next pass starts at (None: the file's own)
    reader = first
    while not hooks.should_stop():
        pass_index = index
        reader = reader or new_reader(spec, opts, hooks)
        try:
            if reader.container is None:
                reader.open()
            for raw in reader.frames():
                if raw.pts is not None:
                    offset = pass_start - raw.pts if pass_start is not None else offset
                    pass_start = None
                    raw.pts += offset
                    step = raw.pts - last_pts if last_pts is not None and raw.pts > last_pts else step
                    last_pts = raw.pts
                if pacer is not None and not pacer.wait(raw.pts):
                    return
                # not live: an edge never drops it (graph/inbox.py); a realtime file is played like a camera
                yield index, raw, {} if opts.realtime else {"live": False}
                index += 1
        finally:
            reader.close()
            reader = None
        if not opts.loop or index == pass_index:
            return
        hooks.count("loops", 1)
        # The next pass continues the PTS one frame after this pass's last one.
        pass_start = None if last_pts is None else last_pts + step


def _image_frames(spec: SourceSpec, opts: StreamOptions, hooks: SourceHooks) -> Frames:
    n = len(spec.images)
    cycle = 0
    while not hooks.should_stop():
        kept = 0
        for i, path, image in read_images(spec.images, opts.on_corrupt, hooks.log,
                                          lambda i, p: hooks.count("corrupt_frames", 1)):
            kept += 1
            yield cycle * n + i, RawFrame(image, None, time.time()), {"path": path}
        if not opts.loop or kept == 0:
            return
        cycle += 1
