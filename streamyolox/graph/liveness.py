"""Which sources are live, decided once at plan time, and what follows for the edges and for restarts.

`drop_oldest` exists to keep frame age bounded behind a source that will not wait (a camera, a stream).
Behind a file it only throws frames away: the reader is faster than the detector, so a file into
`rtsp_to_json.yaml` wrote 2 of 300 frames. So an edge drops only while one of the sources upstream of it
is live; an edge fed by files alone blocks (back-pressure: nothing lost), and the run says so once.

- `decode` sources: live per `streamyolox.sources.spec.parse_source` (RTSP, HTTP, streams, webcams), or a
  file with `realtime: true` (played like a camera). Files and image folders are not live.
- any other source kind: its own business, taken as live (the policy applies as written).

A source that is not live is also *resumable*: its frames are the same on every read, so a restarted one
skips what its consumers already have (see `streamyolox.graph.transport`) instead of sending it again.
"""

from __future__ import annotations

import logging
from functools import cache

from streamyolox.graph.spec import PipelineSpec, StageSpec
from streamyolox.sources.spec import SourceError, parse_source

log = logging.getLogger("streamyolox.run")


def file_kind(stage: StageSpec) -> str | None:
    """'file' / 'image folder' for a `decode` source that is read at its own pace, else None (live)."""
    if not stage.is_source or stage.kind != "decode" or getattr(stage.options, "realtime", False):
        return None
    try:
        spec = parse_source(str(getattr(stage.options, "url", "")))
    except SourceError:  # the stage itself reports it when it opens
        return None
    return None if spec.live else ("image folder" if spec.kind == "images" else "file")


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
