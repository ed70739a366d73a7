"""Which kind of edge links two stages, and at which endpoint: decided here, once the stages are placed.

The rule, from where the two ends run (`Node`: the executor's placement, `streamyolox.graph.executors`):

- same process (one named `worker`)  -> `inproc`: the packet object itself;
- same node, other process           -> `ipc` + shared-memory slots, at `ipc://<run dir>/e<index>`;
- other nodes                        -> `tcp` to the consumer's node address; port 0 until the executor
                                        asks that node for a free one (`RayExecutor._wire`).

A *fixed endpoint* overrides the rule: `listen: tcp://host:port` on a consumer binds its input i on
`port + i`, so a producer on a host this runner does not manage can reach it. That is what `--only`
runs on: each host runs its share of the stages, and every edge that crosses hosts must have a fixed
endpoint (else a one-line error). The ray executor places every stage itself and wires the ports it
got from the nodes, so it refuses `listen:` and `--only` (`refuse_fixed_endpoints`).

The messages that cross a socket edge are in `streamyolox.graph.wire`; the ends in
`streamyolox.graph.transport` (producer) and `streamyolox.graph.inbox` (consumer).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from streamyolox.graph import liveness
from streamyolox.graph.executors.base import Node
from streamyolox.graph.options import SpecError
from streamyolox.graph.replicas import base_id, edge_roles
from streamyolox.graph.spec import PipelineSpec
from streamyolox.graph.transport import EdgeInfo, EdgeKind

Endpoint = tuple[EdgeKind, str]  # (kind, the address the consumer binds; "" for inproc)


def by_placement(index: int, run_dir: str, src: Node | None, dst: Node | None) -> Endpoint:
    """The endpoint of edge `index` between processes on nodes `src` and `dst` (None: this machine)."""
    if src is not None and dst is not None and src.id != dst.id:
        return "tcp", f"tcp://{dst.address}:0"  # port 0: the executor gives it a free port there
    return "ipc", f"ipc://{run_dir}/e{index}"


def fixed(spec: PipelineSpec, src: str, dst: str) -> Endpoint | None:
    """The endpoint `listen:` fixes for the input `src` of `dst` (input i listens on port + i), if any."""
    listen = spec.stages[dst].listen
    if listen is None:
        return None
    host, _, port = listen.rpartition(":")
    return "tcp", f"{host}:{int(port) + spec.stages[dst].inputs.index(src)}"


def endpoint(spec: PipelineSpec, src: str, dst: str, index: int, run_dir: str,
             nodes: Mapping[str, Node]) -> Endpoint:
    """The edge `src -> dst`: in-process within a worker, else its fixed endpoint, else by placement."""
    s, d = spec.stages[src], spec.stages[dst]
    if d.worker is not None and d.worker == s.worker:
        return "inproc", ""
    return fixed(spec, src, dst) or by_placement(index, run_dir, nodes.get(src), nodes.get(dst))


def plan_edges(spec: PipelineSpec, run_dir: str, prefix: str, only: set[str],
               nodes: Mapping[str, Node] | None = None) -> list[EdgeInfo]:
    """One `EdgeInfo` per (producer, consumer) pair. `only`: the stages this runner runs (`--only`); an
    edge to or from a stage elsewhere needs a fixed endpoint. `nodes`: stage id -> where the executor
    placed it. An edge fed by files alone blocks even under `drop_oldest` (`streamyolox.graph.liveness`)."""
    policies = liveness.edge_policies(spec)
    edges = []
    for i, (src, dst) in enumerate(spec.edges()):
        kind, address = endpoint(spec, src, dst, i, run_dir, nodes or {})
        if (src in only) != (dst in only) and kind != "tcp":
            raise SpecError(f"stages.{base_id(dst)}.listen: required: its input {base_id(src)!r} runs on "
                            "another host")
        d, policy = spec.stages[dst], policies[(src, dst)]
        slots = d.queue + (3 if policy == "drop_oldest" else 2)
        edges.append(EdgeInfo(i, src, dst, kind, address, d.queue, policy, slots, prefix,
                              **edge_roles(spec, src, dst)))
    return edges


def moved(edge: EdgeInfo, run_dir: str, src: Node, dst: Node, consumer_moved: bool) -> EdgeInfo:
    """`edge` after one of its ends moved to another node (a restart elsewhere): the placement rule again,
    except that a tcp edge whose consumer stayed keeps the port it listens on."""
    if edge.kind == "inproc" or (edge.kind == "tcp" and src.id != dst.id and not consumer_moved):
        return edge
    kind, address = by_placement(edge.index, run_dir, src, dst)
    return dataclasses.replace(edge, kind=kind, address=address)


def refuse_fixed_endpoints(spec: PipelineSpec, only: list[str] | None) -> None:
    """The ray executor wires every edge itself: a fixed endpoint (`listen:`) or a hand-placed share of
    the stages (`--only`) would bypass where Ray put the stages."""
    if only:
        raise SpecError("--only: not with the ray executor (Ray places every stage and the driver wires the "
                        "edges between them)")
    for sid, s in spec.stages.items():
        if s.listen is not None:
            raise SpecError(f"stages.{sid}.listen: not with the ray executor (Ray places the stage, so the "
                            "driver picks its tcp ports on the node it runs on); remove it")
