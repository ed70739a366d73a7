"""The default executor: every process plan a child process of the runner on this machine (forked from the
run's forkserver, `streamyolox.graph.forkserver`; spawned where there is none)."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import threading
from typing import Any

from streamyolox.graph import forkserver
from streamyolox.graph.executors.base import Executor, ProcessHandle
from streamyolox.graph.worker import THREAD_ENV, ProcessPlan, child_main


class LocalHandle(ProcessHandle):
    def __init__(self, name: str, proc: Any) -> None:
        self.name = name
        self.proc = proc

    def exitcode(self) -> int | None:
        return self.proc.exitcode  # type: ignore[no-any-return]

    def terminate(self) -> None:
        self.proc.terminate()

    def kill(self) -> None:
        self.proc.kill()

    def join(self, timeout: float) -> None:
        self.proc.join(timeout)


class SharedFlag:
    """A flag the runner sets and its child processes poll (`is_set`), in an anonymous shared page.
    Not `multiprocessing.Event`: under forkserver or spawn that is a named semaphore (`/dev/shm/sem.mp-*`)
    which only the runner or its resource tracker unlinks, so a run whose whole process group was killed
    with -9 left two behind (seen: ~410 after one `.ci/run`). The stages only poll, so no wait is needed."""

    def __init__(self, ctx: Any) -> None:
        self.value = ctx.RawValue("b", 0)  # mmap'd from a file unlinked at once: nothing named survives a kill

    def set(self) -> None:
        self.value.value = 1

    def is_set(self) -> bool:
        return bool(self.value.value)


class LocalExecutor(Executor):
    """Child processes sharing the runner's stop / abort events and `done` flags (shared memory)."""

    kind = "local"

    def __init__(self, start_method: str | None = None) -> None:
        # default: forked from a server with the common modules loaded (streamyolox.graph.forkserver), else spawn
        # STREAMYOLOX_START_METHOD=spawn: the start method before the forkserver, for side-by-side benchmarks
        start_method = start_method or os.environ.get("STREAMYOLOX_START_METHOD") or (
            "forkserver" if forkserver.available() else "spawn")
        self.forked = start_method == "forkserver"
        if self.forked:
            forkserver.start()  # no-op when `streamyolox run` started it before validating
        self.mp = forkserver.context() if self.forked else mp.get_context(start_method)
        self.stop_ev = SharedFlag(self.mp)
        self.abort_ev = SharedFlag(self.mp)
        self.done: Any = None

    def open(self, plans: list[ProcessPlan]) -> None:
        self.done = self.mp.Array("b", len(plans), lock=False)  # processes that finished (exit 0)

    def start(self, plan: ProcessPlan, incarnation: int) -> LocalHandle:
        ctx = mp.get_context("spawn") if self.forked and _needs_spawn(plan) else self.mp
        return LocalHandle(plan.name, start_child(ctx, plan, incarnation, self.stop_ev, self.abort_ev, self.done))

    def stop(self) -> None:
        self.stop_ev.set()

    def abort(self) -> None:
        self.abort_ev.set()

    def mark_done(self, index: int) -> None:
        self.done[index] = 1

    def close(self) -> None:
        if self.forked:
            forkserver.stop()  # the run's processes have ended: the server must not outlive the run


def _needs_spawn(plan: ProcessPlan) -> bool:
    """A plan with a stage that must not be forked from the preloaded server (`Stage.spawned`)."""
    from streamyolox.stages.registry import load_stage_class

    return any(load_stage_class(s.kind).spawned for s in plan.stages)


def start_child(ctx: Any, plan: ProcessPlan, incarnation: int, stop: Any, abort: Any, done: Any) -> Any:
    """Start `child_main` for `plan` with its thread settings in the environment, ignoring SIGINT (a
    terminal's Ctrl-C reaches the whole group; the parent decides how to stop)."""
    saved = {k: os.environ.get(k) for k in THREAD_ENV}
    # the child inherits "ignore SIGINT" (only the main thread may set it: a Ray actor's method runs in
    # another, and there the child's own SIG_IGN at its start suffices: Ctrl-C does not reach the node)
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
    try:
        if plan.threads is not None:
            os.environ.update(dict.fromkeys(THREAD_ENV, str(plan.threads)))
        proc = ctx.Process(target=child_main, name=f"streamyolox-{plan.name}",
                           args=(plan, incarnation, stop, abort, os.getpid(), done))
        proc.start()
    finally:
        if main:
            signal.signal(signal.SIGINT, previous)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return proc
