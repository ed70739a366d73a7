"""Which sources are live, decided once at plan time, and what follows for the edges and for restarts.

`drop_oldest` exists to keep frame age bounded behind a source that will not wait (a camera, a stream).
Behind a file it only throws frames away: the reader is faster than the detector, so a file into
`rtsp_to_json.yaml` wrote 2 of 300 frames. So an edge drops only while one of the sources upstream of it
is live; an edge fed by files alone blocks (back-pressure: nothing lost), and the run says so once.

- `decode` sources: live per `streamyolox.sources.spec.parse_source` (RTSP, HTTP, streams, webcams), or a
  file with `realtime: true` (played like a camera). Files and image folders are not live.
- any other source kind: its own business, taken as live (the policy applies as written).
- a `decode` with `streams:` may mix files and live streams on its one output. An edge-level
  `drop_oldest` there would evict whichever frame is oldest in the queue, often a file's (the file reader
  is the one that keeps the queue full), so the edges of such a source block like a file's, and freshness
  is kept per stream inside the source instead: each live stream keeps only its newest frames in its own
  buffer and counts what it drops (`streamyolox.sources.stream_set`). Nothing of a file is lost, no live
  stream ages behind the pipeline, and no stream's drops fall on another.

A source that is not live is also *resumable*: its frames are the same on every read, so a restarted one
skips what its consumers already have (see `streamyolox.graph.transport`) instead of sending it again. A
mixed source resumes too: its files skip what was delivered; its live frames (marked `extra["live"]`,
numbered from 0 again by the new connection) are never skipped.
"""

from __future__ import annotations

import logging
from functools import cache

from streamyolox.graph.spec import PipelineSpec, StageSpec
from streamyolox.sources.spec import SourceError, parse_source

log = logging.getLogger("streamyolox.run")


MIXED = "mix of files and live streams"


def _url_kind(url: str, realtime: bool) -> str | None:
    if realtime:
        return None
    try:
        spec = parse_source(url)
    except SourceError:  # the stage itself reports it when it opens
        return None
    return None if spec.live else ("image folder" if spec.kind == "images" else "file")


def file_kind(stage: StageSpec) -> str | None:
    """'file' / 'image folder' for a `decode` source that is read at its own pace, `MIXED` for one whose
    streams are files and live sources, else None (live)."""
    if not stage.is_source or stage.kind != "decode":
        return None
    opts = stage.options
    streams = getattr(opts, "stream_options", None) or {}
    urls = [(o.url, o.realtime) for o in streams.values()] if streams else \
        [(str(getattr(opts, "url", "")), bool(getattr(opts, "realtime", False)))]
    kinds = [_url_kind(url, realtime) for url, realtime in urls]
    files = {k for k in kinds if k is not None}
    if not files:
        return None
    if None in kinds:
        return MIXED
    return files.pop() if len(files) == 1 else "file"


def upstream_sources(spec: PipelineSpec) -> dict[str, frozenset[str]]:
    """stage id -> the source stages it is fed from (itself, for a source)."""
    @cache
    def sources(sid: str) -> frozenset[str]:
        stage = spec.stages[sid]
        if not stage.inputs:
            return frozenset([sid])
        return frozenset().union(*(sources(i) for i in stage.inputs))

    return {sid: sources(sid) for sid in spec.stages}


def edge_policies(spec: PipelineSpec, announce: bool = True) -> dict[tuple[str, str], str]:
    """(src, dst) -> the policy that edge really uses; logs once per file source whose edges now block."""
    files = {sid: kind for sid, s in spec.stages.items() if (kind := file_kind(s)) is not None}
    feeds = upstream_sources(spec)
    policies: dict[tuple[str, str], str] = {}
    blocked: set[str] = set()
    for src, dst in spec.edges():
        policy: str = spec.stages[dst].policy
        if policy == "drop_oldest" and feeds[src] <= files.keys():
            policy = "block"
            blocked |= feeds[src]
        policies[(src, dst)] = policy
    for sid in sorted(blocked) if announce else ():
        if files[sid] == MIXED:
            log.info("source %r is a %s: drop_oldest edges block (no file frame is lost); its live streams "
                     "keep only their newest frames at the source", sid.partition("#")[0], MIXED)
            continue
        log.info("source %r is a %s: drop_oldest edges block (set realtime: true to play it live)",
                 sid.partition("#")[0], files[sid])
    return policies


def resumable(spec: PipelineSpec, stage_ids: list[str]) -> bool:
    """A process (these stages) that holds file sources and nothing fed from elsewhere: after a restart it
    can skip what its consumers already have, frame numbers being the same on every read."""
    feeds = upstream_sources(spec)
    inside = set(stage_ids)
    fed = set().union(*(feeds[i] for i in stage_ids))
    return any(spec.stages[i].is_source for i in stage_ids) and fed <= inside and \
        all(file_kind(spec.stages[i]) is not None for i in fed)
