"""Where a run's stage processes live: the small interface between the runner and the process manager.

The runner (`streamyolox.graph.runner.Supervisor`) decides *what* runs (process plans, restarts,
accounting); an `Executor` decides *where* and *how*:

1. `place(groups)`: a `Node` for every future process (its stages, by plan name), before the edges are
   planned, since the node decides the edge kind (same node: ipc + shared memory, other node: tcp).
2. `open(plans)`: once, with the planned processes (their `index` is their slot in the `done` flags).
3. `start(plan, incarnation) -> ProcessHandle`: start one process (again, after a failure).
4. `stop()` / `abort()` / `mark_done(index)`: the run's shared flags as every process sees them.
5. `close()`: nothing of the executor may outlive it.

`ProcessHandle` is what the runner watches: `exitcode()` (None while running; a negative code is the
signal that killed it), `terminate()`, `kill()`, `join(timeout)`.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any

from streamyolox.graph.spec import PipelineSpec, StageSpec
from streamyolox.graph.worker import ProcessPlan

LOCAL_NODE = "local"


@dataclass(frozen=True)
class Node:
    """A machine processes are placed on: `id` names it (equal ids: ipc edges between them), `address`
    is where a process on it binds its tcp inputs."""

    id: str
    address: str = "127.0.0.1"


class ProcessHandle(abc.ABC):
    """One started process plan."""

    name: str

    @abc.abstractmethod
    def exitcode(self) -> int | None:
        """None while it runs; its exit status once it ended (-N: killed by signal N)."""

    @abc.abstractmethod
    def terminate(self) -> None:
        """SIGTERM: the stages abort and close."""

    @abc.abstractmethod
    def kill(self) -> None:
        """SIGKILL (or what the executor has closest to it)."""

    @abc.abstractmethod
    def join(self, timeout: float) -> None:
        """Wait up to `timeout` seconds for it to end."""


class Executor(abc.ABC):
    """Starts process plans and carries the run's shared flags to them."""

    kind: str = ""

    def shard(self, spec: PipelineSpec) -> PipelineSpec:
        """The pipeline this executor runs (ray: `shards` copies of it); default: unchanged."""
        return spec

    def describe(self) -> dict[str, Any]:
        """What the metrics JSON says about where the processes ran."""
        return {"kind": self.kind}

    def where(self, stage_id: str) -> dict[str, Any]:
        """Where stage `stage_id` (or its replicas, `det` for `det#0`) runs, for the `/streams` rows:
        ray: its shard and node; default: nothing to say."""
        return {}

    def place(self, groups: dict[str, list[StageSpec]]) -> dict[str, Node]:
        """The node of each process (plan name -> its stages); default: all on this machine."""
        return dict.fromkeys(groups, Node(LOCAL_NODE))

    def control_address(self, run_dir: str) -> str:
        """Where the runner binds the socket its processes report to."""
        return f"ipc://{run_dir}/control"

    @abc.abstractmethod
    def open(self, plans: list[ProcessPlan]) -> None:
        """Called once, before the first `start`, with every planned process."""

    @abc.abstractmethod
    def start(self, plan: ProcessPlan, incarnation: int) -> ProcessHandle:
        """Start `plan` (its `incarnation`-th start, 0 first); returns at once."""

    @abc.abstractmethod
    def stop(self) -> None:
        """Ask every process to stop its sources (end of stream follows)."""

    @abc.abstractmethod
    def abort(self) -> None:
        """Tell every process to abort now (sinks still close)."""

    @abc.abstractmethod
    def mark_done(self, index: int) -> None:
        """The process in slot `index` finished cleanly: its consumers end that input even when restarted."""

    def close(self) -> None:  # noqa: B027 (optional: nothing to release by default)
        """Release what the executor holds (after every handle has ended or been killed)."""
