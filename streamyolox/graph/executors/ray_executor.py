"""The `ray` executor: every process plan a Ray actor (`ray_host.StageHost`), placed by the driver.

- Placement (`nodes.assign`): shards spread over the alive nodes, each process with the resources its
  stages ask for (`resources: {num_cpus, num_gpus}`), pinned there with node affinity. A stage no node can
  hold is a one-line error before any actor exists.
- Edges follow placement (`streamyolox.graph.wiring`): same node -> ipc + shared memory, other node -> tcp
  to the consumer's node address on a port that node hands out (`StageHost.free_ports`); the driver wires
  the endpoints. Fixed endpoints (`listen:`, `--only`) are refused: they would bypass the placement.
- Faults: a process whose actor died (its node lost, `ray kill`, OOM) reads as killed (exit -9), so the
  runner's restart policy applies (`restart: on-failure`, `max_restarts`): the new actor goes to the same
  node while it is alive, else where its shard's other processes are, else to the least loaded node with
  room; its edges are re-planned, and a live peer whose edge had to change is restarted too. The runner's
  incarnation protocol (`streamyolox.graph.transport`) then resynchronises the edges as on one machine.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
from typing import Any

from streamyolox.graph import wiring
from streamyolox.graph.executors.base import Executor, Node, ProcessHandle
from streamyolox.graph.executors.nodes import NodeRoom, assign, demand
from streamyolox.graph.executors.ray_host import StageHost
from streamyolox.graph.executors.shards import shard_of, shard_spec
from streamyolox.graph.options import SpecError
from streamyolox.graph.spec import PipelineSpec, StageSpec
from streamyolox.graph.transport import EdgeInfo
from streamyolox.graph.worker import ProcessPlan

log = logging.getLogger("streamyolox.run")
INSTALL = "pip install 'streamyolox[ray]'"
START_TRIES = 3  # a restart placed on a node that turns out lost is placed again, this many times in all
KILLED = -9  # what a process whose actor died reads as (it was killed, like kill -9)


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise SpecError(f"executor.kind: ray is not installed; install it with {INSTALL}") from None
    return ray


class RayHandle(ProcessHandle):
    def __init__(self, name: str, actor: Any, ref: Any) -> None:
        self.name = name
        self.actor = actor
        self.ref = ref
        self.code: int | None = None

    def exitcode(self) -> int | None:
        if self.code is None:
            ray = import_ray()
            ready, _ = ray.wait([self.ref], timeout=0)
            if ready:
                try:
                    self.code = int(ray.get(self.ref))
                except ray.exceptions.RayError as exc:  # the actor died (its node was lost, or it was killed)
                    log.warning("process %s: its Ray actor died: %s", self.name, str(exc).splitlines()[0])
                    self.code = KILLED
                ray.kill(self.actor, no_restart=True)  # frees its resources
        return self.code

    def terminate(self) -> None:
        self.actor.signal.remote(False)

    def kill(self) -> None:
        self.actor.signal.remote(True)

    def join(self, timeout: float) -> None:
        import_ray().wait([self.ref], timeout=timeout)
        if self.exitcode() is None and timeout >= 1:  # the child did not end: the actor goes, and it with it
            import_ray().kill(self.actor, no_restart=True)


class RayExecutor(Executor):
    kind = "ray"

    def __init__(self, address: str | None = None, shards: int = 1) -> None:
        ray = import_ray()
        from streamyolox.graph import forkserver

        forkserver.stop()  # `streamyolox run` started it for local stages; on Ray this process forks none
        self.ray = ray
        self.shards = shards
        self.connected = not ray.is_initialized()
        if self.connected:
            ray.init(address=address, log_to_driver=True, logging_level=logging.WARNING)
        self.host = ray.remote(max_concurrency=8)(StageHost)
        self.run_dir = ""
        self.nodes: dict[str, Node] = {}
        self.groups: dict[str, list[StageSpec]] = {}
        self.plans: dict[str, ProcessPlan] = {}
        self.actors: dict[str, Any] = {}
        self.handles: dict[str, RayHandle] = {}
        self.done: list[int] = []
        self.stopping = False
        self.dead: set[str] = set()  # nodes an actor could not start on

    # -- placement -------------------------------------------------------------------------------------
    def shard(self, spec: PipelineSpec) -> PipelineSpec:
        wiring.refuse_fixed_endpoints(spec, None)
        return shard_spec(spec, self.shards)

    def control_address(self, run_dir: str) -> str:
        self.run_dir = run_dir
        return f"tcp://{self.ray.util.get_node_ip_address()}:*"

    def _rooms(self, busy: dict[str, Node] | None = None) -> list[NodeRoom]:
        """The alive nodes with their resources, less what the processes in `busy` hold."""
        rooms = []
        for n in sorted(self.ray.nodes(), key=lambda n: (n["NodeManagerAddress"], n["NodeID"])):
            if n.get("Alive") and n["NodeID"] not in self.dead:
                res = n.get("Resources", {})
                rooms.append(NodeRoom(Node(n["NodeID"], n["NodeManagerAddress"]),
                                      {k: float(res.get(k, 0.0)) for k in ("CPU", "GPU")}))
        by_id = {r.node.id: r for r in rooms}
        for name, node in (busy or {}).items():
            if node.id in by_id:
                by_id[node.id].take(demand(self.groups[name]))
        return rooms

    def place(self, groups: dict[str, list[StageSpec]]) -> dict[str, Node]:
        self.groups = groups
        self.nodes = assign(groups, {n: shard_of(s[0].id) for n, s in groups.items()}, self._rooms())
        return dict(self.nodes)

    def describe(self) -> dict[str, Any]:
        """For the metrics: the node of every process and shard (node address and Ray id), every edge."""
        edges = {e.index: e for p in self.plans.values() for es in p.inputs.values() for e in es}
        shards: dict[int, set[Node]] = {}
        for name, stages in self.groups.items():
            shards.setdefault(shard_of(stages[0].id), set()).add(self.nodes[name])
        return {"kind": "ray",
                "shards": [{"shard": k, "nodes": sorted(n.address for n in v), "node_ids": sorted(n.id for n in v)}
                           for k, v in sorted(shards.items())],
                "processes": {n: {"node": node.address, "node_id": node.id} for n, node in self.nodes.items()},
                "edges": [{"src": e.src, "dst": e.dst, "kind": e.kind, "address": e.address}
                          for e in sorted(edges.values(), key=lambda e: e.index)]}

    def where(self, stage_id: str) -> dict[str, Any]:
        for name, stages in self.groups.items():
            if any(stage_id in (s.id, s.id.partition("#")[0]) for s in stages):
                node = self.nodes[name]
                return {"shard": shard_of(stage_id), "node": node.address, "node_id": node.id}
        return {}

    # -- actors ----------------------------------------------------------------------------------------
    def _new_actor(self, name: str, node: Node, soft: bool = False) -> Any:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        ask = demand(self.groups[name])
        return self.host.options(
            num_cpus=ask.get("CPU", 0.0), num_gpus=ask.get("GPU", 0.0), max_restarts=0,
            scheduling_strategy=NodeAffinitySchedulingStrategy(node.id, soft=soft),
        ).remote(list(sys.path), len(self.done))

    def open(self, plans: list[ProcessPlan]) -> None:
        self.plans = {p.name: p for p in plans}
        self.done = [0] * len(plans)
        self.actors = {name: self._new_actor(name, self.nodes[name]) for name in self.plans}
        for name, actor in self.actors.items():
            self._wire(name, actor)

    def _wire(self, name: str, actor: Any, edges: list[EdgeInfo] | None = None) -> None:
        """Give the tcp inputs of process `name` (or `edges` into it) a free port on its node, asked of
        `actor` there (port 0 = not given yet)."""
        todo = [e for e in (edges if edges is not None else
                            [e for es in self.plans[name].inputs.values() for e in es])
                if e.kind == "tcp" and e.address.endswith(":0")]
        if todo:
            host = self.nodes[name].address
            ports = self.ray.get(actor.free_ports.remote(host, len(todo)))
            for e, port in zip(todo, ports):
                self._replace_edge(dataclasses.replace(e, address=f"tcp://{host}:{port}"))

    def _replace_edge(self, edge: EdgeInfo) -> None:
        for plan in self.plans.values():
            for table in (plan.inputs, plan.outputs):
                for sid, edges in table.items():
                    table[sid] = [edge if e.index == edge.index else e for e in edges]

    def start(self, plan: ProcessPlan, incarnation: int) -> RayHandle:
        name = plan.name
        actor = self.actors.pop(name, None)
        if actor is None:  # a restart: a new actor, maybe on another node
            actor = self._restart_actor(name)
            self._wire(name, actor)
        for attempt in range(START_TRIES):
            try:  # placed and started, or the error of a node that went away meanwhile
                self.ray.get(actor.start.remote(self.plans[name], incarnation, list(self.done), self.stopping))
                break
            except self.ray.exceptions.RayError as exc:
                if attempt == START_TRIES - 1:
                    raise
                # Ray may list a lost node as alive for a few seconds more: do not place there again
                log.warning("process %s: could not start on node %s (%s); placing it again", name,
                            self.nodes[name].address, str(exc).splitlines()[0])
                self.dead.add(self.nodes[name].id)
                self.ray.kill(actor, no_restart=True)
                actor = self._restart_actor(name)
                self._wire(name, actor)
        handle = self.handles[name] = RayHandle(name, actor, actor.wait.remote())
        return handle

    def _restart_actor(self, name: str) -> Any:
        alive = {r.node.id for r in self._rooms()}
        old = self.nodes[name]
        if old.id not in alive:
            shard = shard_of(self.groups[name][0].id)
            mates = [self.nodes[n] for n in self.groups if n != name and n in self.handles
                     and shard_of(self.groups[n][0].id) == shard and self.handles[n].exitcode() is None
                     and self.nodes[n].id in alive]
            busy = {n: self.nodes[n] for n, h in self.handles.items() if n != name and h.exitcode() is None}
            rooms = self._rooms(busy)
            home = next((r for r in rooms if mates and r.node.id == mates[0].id), None)
            if home is not None:
                rooms = [home, *[r for r in rooms if r is not home]]
                home.shards = -1  # the shard's node first
            self.nodes[name] = assign({name: self.groups[name]}, {name: 0}, rooms)[name]
            log.warning("process %s: node %s is gone, restarting it on %s", name, old.address,
                        self.nodes[name].address)
        actor = self._new_actor(name, self.nodes[name])
        if self.nodes[name] != old:
            self._replan(name)
        return actor

    def _replan(self, name: str) -> None:
        """Edges of `name` after it moved: kind by the peers' nodes; a live peer of a changed edge is killed
        (the runner restarts it with the new edge)."""
        proc_of = {s.id: n for n, stages in self.groups.items() for s in stages}
        plan = self.plans[name]
        for e in [e for es in (*plan.inputs.values(), *plan.outputs.values()) for e in es]:
            moved_consumer = proc_of[e.dst] == name
            peer = proc_of[e.src] if moved_consumer else proc_of[e.dst]
            new = wiring.moved(e, self.run_dir, self.nodes[proc_of[e.src]], self.nodes[proc_of[e.dst]],
                               moved_consumer)
            if new == e:
                continue
            self._replace_edge(new)
            handle = self.handles.get(peer)
            if handle is not None and handle.exitcode() is None:
                if not moved_consumer:  # the peer listens: a port on its node, from its actor, before it goes
                    self._wire(peer, handle.actor, [new])
                log.warning("process %s: its edge to %s changed with the move; restarting it", peer, name)
                handle.kill()

    # -- the run's flags ---------------------------------------------------------------------------------
    def _live(self) -> list[Any]:
        return [h.actor for h in self.handles.values() if h.code is None]

    def stop(self) -> None:
        if not self.stopping:
            self.stopping = True
            for actor in self._live():
                actor.stop.remote()

    def abort(self) -> None:
        for actor in self._live():
            actor.abort.remote()

    def mark_done(self, index: int) -> None:
        self.done[index] = 1
        for actor in self._live():
            actor.mark_done.remote(index)

    def close(self) -> None:
        for actor in [*self.actors.values(), *(h.actor for h in self.handles.values())]:
            self.ray.kill(actor, no_restart=True)
        if self.connected:
            self.ray.shutdown()
