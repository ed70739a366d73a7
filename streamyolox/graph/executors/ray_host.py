"""The Ray actor behind one process plan: it runs the plan's stages as its own child process.

A child process rather than the actor's worker itself: `child_main` names the process, installs signal
handlers (main thread only) and `os._exit`s at the end, none of which a Ray worker allows; the child dies
with the actor (PR_SET_PDEATHSIG), so an actor killed by Ray or lost with its node takes its stages with
it. The actor is threaded (`max_concurrency`): `wait` blocks until the child ends while `stop`, `abort`
and `mark_done` arrive from the driver.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys

from streamyolox.graph.executors.local import LocalExecutor, LocalHandle
from streamyolox.graph.worker import ProcessPlan, _sweep_own_segments


class StageHost:
    """One process plan on the node Ray put this actor on."""

    def __init__(self, sys_path: list[str], n_plans: int) -> None:
        # the stages' modules (`module:Class` kinds) are found as on the driver; spawn passes sys.path on
        sys.path[:0] = [p for p in sys_path if p not in sys.path]
        # the run's flags, as the child reads them, live in this actor. spawn, not the runner's forkserver:
        # the child's parent must be this actor (PR_SET_PDEATHSIG), and an actor starts one process only
        self.local = LocalExecutor("spawn")
        self.local.done = self.local.mp.Array("b", n_plans, lock=False)
        self.proc: LocalHandle | None = None
        self.made_dirs: list[str] = []

    def node(self) -> tuple[str, str]:
        """(Ray node id, the node's address) of this actor."""
        import ray

        return ray.get_runtime_context().get_node_id(), ray.util.get_node_ip_address()

    def free_ports(self, host: str, n: int) -> list[int]:
        """`n` tcp ports free on this node now (bound and released at once: the consumer binds them next)."""
        socks = []
        try:
            for _ in range(n):
                s = socket.socket()
                s.bind((host, 0))
                socks.append(s)
            return [s.getsockname()[1] for s in socks]
        finally:
            for s in socks:
                s.close()

    def start(self, plan: ProcessPlan, incarnation: int, done: list[int], stopping: bool) -> int:
        """Start the child; `done` and `stopping`: the run's flags as they are now. Returns its pid."""
        for i, flag in enumerate(done):
            self.local.done[i] = flag
        if stopping:
            self.local.stop()
        for edges in plan.inputs.values():  # ipc sockets live in the run folder, which this node may lack
            for e in edges:
                folder = os.path.dirname(e.address[len("ipc://"):]) if e.kind == "ipc" else ""
                if folder and not os.path.isdir(folder):
                    os.makedirs(folder, exist_ok=True)
                    self.made_dirs.append(folder)
        self.plan = plan
        self.proc = self.local.start(plan, incarnation)
        return int(self.proc.proc.pid)

    def wait(self) -> int:
        """Block until the child ends; its exit code. A clean end unlinks the segments it created (every
        packet in them was released: `SocketOutlet.finish`); the driver sweeps its own machine anyway."""
        assert self.proc is not None, "wait before start"
        self.proc.proc.join()
        code = int(self.proc.proc.exitcode)
        if code == 0:
            _sweep_own_segments(self.plan)
        for folder in self.made_dirs:  # only once empty: another plan on this node may still use it
            with contextlib.suppress(OSError):
                os.rmdir(folder)
        return code

    def stop(self) -> None:
        self.local.stop()

    def abort(self) -> None:
        self.local.abort()

    def mark_done(self, index: int) -> None:
        self.local.mark_done(index)

    def signal(self, kill: bool) -> None:
        """SIGKILL or SIGTERM to the child."""
        if self.proc is not None and self.proc.exitcode() is None:
            self.proc.kill() if kill else self.proc.terminate()
