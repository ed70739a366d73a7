"""`shards: N`: N copies of the pipeline, each with its share of the sources' streams.

A unit of work is one stream of a multi-stream `decode` (`streams:`) or one whole source stage (any other
source). Units are dealt round robin over the shards (balanced: counts differ by at most one; a stream is
in one shard only). Shard k's stages are the stage ids with `@k` (`source@0`, `det@1`); a stage keeps the
inputs present in its shard, and a stage left without inputs (its sources all went to other shards) is not
in that shard. Named workers are per shard too (`w@1`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from streamyolox.graph.liveness import upstream_sources
from streamyolox.graph.options import SpecError
from streamyolox.graph.spec import PipelineSpec, StageSpec

SEP = "@"


def shard_of(stage_id: str) -> int:
    """`det@1#0` -> 1; 0 for an unsharded id."""
    _, sep, rest = stage_id.partition("#")[0].partition(SEP)
    return int(rest) if sep else 0


def unsharded(stage_id: str) -> str:
    """`source@1#0` -> `source`: the stage as the YAML names it."""
    return stage_id.partition("#")[0].partition(SEP)[0]


def least_loaded(counts: dict[str, int]) -> str:
    """The source replica a new stream goes to (`counts`: replica id -> its live streams): the shard with
    the fewest streams (ties: the lowest shard index), in it the replica with the fewest (ties: the lowest
    replica index). Unsharded, it is the replica with the fewest streams."""
    if not counts:
        raise ValueError("source: none of its replicas is running (their streams are over): add it to a new run")
    per_shard: dict[int, int] = {}
    for replica, n in counts.items():
        per_shard[shard_of(replica)] = per_shard.get(shard_of(replica), 0) + n

    def load(replica: str) -> tuple[int, int, int, int]:
        k, index = shard_of(replica), replica.partition("#")[2]
        return per_shard[k], k, counts[replica], int(index) if index.isdigit() else 0

    return min(counts, key=load)


def _units(spec: PipelineSpec) -> list[tuple[str, str | None]]:
    """(source id, stream id or None for the whole source), in YAML order."""
    out: list[tuple[str, str | None]] = []
    for sid, s in spec.stages.items():
        if not s.is_source:
            continue
        streams: dict[str, Any] = getattr(s.options, "raw_streams", None) or {}
        out += [(sid, k) for k in streams] if streams else [(sid, None)]
    return out


def _with_streams(stage: StageSpec, ids: list[str]) -> StageSpec:
    opts: Any = stage.options
    raw = opts.raw_streams
    options = dataclasses.replace(opts, streams={k: raw[k] for k in ids}, streams_file=None,
                                  processes=min(getattr(opts, "processes", 1), len(ids)))
    return dataclasses.replace(stage, options=options)


def _check_sinks(spec: PipelineSpec, n: int) -> None:
    for s in spec.stages.values():
        path = getattr(s.options, "path", None)
        if s.is_sink and isinstance(path, str) and "{stream}" not in path:
            raise SpecError(f"stages.{s.id}.path: with executor.shards: {n} every shard writes its own streams; "
                            f"put {{stream}} in the path (one file per stream), got {path!r}")


def shard_spec(spec: PipelineSpec, n: int) -> PipelineSpec:
    """The pipeline as `n` disjoint copies (n == 1: unchanged)."""
    if n == 1:
        return spec
    units = _units(spec)
    if len(units) < n:
        raise SpecError(f"executor.shards: {n} shards, but the sources have only {len(units)} stream(s) to share")
    _check_sinks(spec, n)
    feeds = upstream_sources(spec)
    stages: dict[str, StageSpec] = {}
    for k in range(n):
        mine = units[k::n]
        here = {src for src, _ in mine}
        for sid, s in spec.stages.items():
            if not feeds[sid] & here:  # fed only by sources of other shards
                continue
            if s.is_source:
                streams = [u for src, u in mine if src == sid and u is not None]
                s = _with_streams(s, streams) if streams else s
            inputs = tuple(f"{i}{SEP}{k}" for i in s.inputs if feeds[i] & here)
            stages[f"{sid}{SEP}{k}"] = dataclasses.replace(
                s, id=f"{sid}{SEP}{k}", inputs=inputs, worker=None if s.worker is None else f"{s.worker}{SEP}{k}")
    return dataclasses.replace(spec, stages=stages)
