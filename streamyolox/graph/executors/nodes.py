"""Which node each process plan runs on: a pure function of the plans' resource asks and the nodes.

Done by the driver itself rather than left to Ray's SPREAD, for two reasons: the node of every process
must be known *before* any process starts, since it decides the kind of every edge (same node: ipc +
shared memory, other node: tcp); and a deterministic spread (shard k on the least loaded node that fits
it) is what the user reads in the metrics. Ray then enforces it (node affinity) and accounts the
resources (`num_cpus`, `num_gpus`).

Rules: the shards are spread over the nodes (each shard to the node with the fewest shards that has room
for all of its processes, ties by node order); a process that does not fit on its shard's node goes to
the node with the most room left for it (so a GPU stage can run on the GPU node while the rest of its
shard does not); a process that fits on no node is an error naming its stage, before anything starts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from streamyolox.graph.executors.base import Node
from streamyolox.graph.options import SpecError
from streamyolox.graph.spec import StageSpec

RESOURCE_NAMES = {"num_cpus": "CPU", "num_gpus": "GPU"}  # the stage option -> Ray's resource name


@dataclass
class NodeRoom:
    """A node with the resources still free on it (Ray's names: CPU, GPU)."""

    node: Node
    free: dict[str, float] = field(default_factory=dict)
    shards: int = 0

    def fits(self, ask: Mapping[str, float]) -> bool:
        return all(self.free.get(k, 0.0) + 1e-9 >= v for k, v in ask.items() if v > 0)

    def take(self, ask: Mapping[str, float]) -> None:
        for k, v in ask.items():
            self.free[k] = self.free.get(k, 0.0) - v


def demand(stages: list[StageSpec]) -> dict[str, float]:
    """What one process asks for: the sum of its stages' `resources` (Ray's names)."""
    out: dict[str, float] = {}
    for s in stages:
        for key, value in (s.resources or {}).items():
            name = RESOURCE_NAMES[key]
            out[name] = out.get(name, 0.0) + float(value)
    return out


def _total(asks: list[dict[str, float]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for ask in asks:
        for k, v in ask.items():
            out[k] = out.get(k, 0.0) + v
    return out


def _describe(ask: Mapping[str, float]) -> str:
    names = {v: k for k, v in RESOURCE_NAMES.items()}
    return ", ".join(f"{names.get(k, k)}: {v:g}" for k, v in sorted(ask.items()) if v > 0)


def assign(groups: dict[str, list[StageSpec]], shard_of: Mapping[str, int],
           rooms: list[NodeRoom]) -> dict[str, Node]:
    """Plan name -> node. `shard_of`: plan name -> shard index; `rooms` (updated): the alive nodes."""
    if not rooms:
        raise SpecError("executor: the Ray cluster has no alive node")
    asks = {name: demand(stages) for name, stages in groups.items()}
    by_shard: dict[int, list[str]] = {}
    for name in groups:
        by_shard.setdefault(shard_of.get(name, 0), []).append(name)
    placed: dict[str, Node] = {}
    for _shard, names in sorted(by_shard.items()):
        need = _total([asks[n] for n in names])
        home = min((r for r in rooms if r.fits(need)), key=lambda r: r.shards, default=None) or \
            min(rooms, key=lambda r: r.shards)
        home.shards += 1
        for name in names:
            room = home if home.fits(asks[name]) else _roomiest(rooms, asks[name])
            if room is None:
                stage = groups[name][0]
                raise SpecError(f"stages.{stage.id.partition('@')[0].partition('#')[0]}.resources: no node of "
                                f"the cluster has {_describe(asks[name])} free (nodes: "
                                f"{'; '.join(_describe(r.free) or 'none' for r in rooms)})")
            room.take(asks[name])
            placed[name] = room.node
    return placed


def _roomiest(rooms: list[NodeRoom], ask: Mapping[str, float]) -> NodeRoom | None:
    fitting = [r for r in rooms if r.fits(ask)]
    return max(fitting, key=lambda r: sum(r.free.get(k, 0.0) for k in ask), default=None)
