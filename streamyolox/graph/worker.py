"""Inside a stage process: build the edges, run each stage's loop in a thread, report to the runner.

`child_main` is the spawned process's entry point. One process runs one stage, or every stage of a named
`worker` (then the edges between them are in-process). It is named in `ps` (`streamyolox[demo] detect`),
dies with the runner (PR_SET_PDEATHSIG plus a parent-pid check), ignores SIGINT and SIGHUP (the runner
decides how to stop) and stops on SIGTERM.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import setproctitle
import zmq

from streamyolox.graph.commands import CommandServer
from streamyolox.graph.inbox import Inbox, InprocOutlet, Receiver
from streamyolox.graph.replicas import RoundRobinOutlet, base_id
from streamyolox.graph.spec import StageSpec
from streamyolox.graph.stage_loop import StageLoop
from streamyolox.graph.transport import EdgeInfo, Outlet, SocketOutlet
from streamyolox.model.spec import ModelSpec

THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS")


@dataclass
class ProcessPlan:
    """Everything a stage process needs (pickled to the spawned child)."""

    name: str
    stages: list[StageSpec]
    model: ModelSpec
    pipeline: str
    inputs: dict[str, list[EdgeInfo]] = field(default_factory=dict)
    outputs: dict[str, list[EdgeInfo]] = field(default_factory=dict)
    control: str = ""
    interval_s: float = 1.0
    threads: int | None = None
    log_level: int = logging.INFO
    index: int = 0  # this process's slot in the runner's `done` flags
    producer_of: dict[int, int] = field(default_factory=dict)  # input edge -> index of its producer process
    resumable: bool = False  # a file source: a restart resumes after the frames its consumers have
    commands: str = ""  # the runner's command socket (streamyolox.graph.commands); "" none
    tap: str | None = None  # the stage whose packets feed the camera wall (streamyolox.web.tap) ...
    wall: str = ""  # ... and where its JPEGs go

    @property
    def title(self) -> str:
        """The name `ps` shows: `streamyolox[demo] detect`."""
        return f"streamyolox[{self.pipeline}] {self.name}"


def set_title(plan: ProcessPlan) -> None:
    """`ps -o args` shows the title; `comm` (ps -o comm, top, /proc/PID/comm; 15 bytes) the stage name."""
    setproctitle.setproctitle(plan.title)
    setproctitle.setthreadtitle(plan.name[:15])


def _parent_of(pid: int) -> int | None:
    """The parent pid of `pid` from /proc (None where there is no /proc)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return int(f.read().rsplit(b")", 1)[1].split()[1])  # the name may hold spaces and ')'
    except (OSError, ValueError, IndexError):
        return None


def _die_with_parent(runner_pid: int) -> int:
    """Ask Linux to SIGTERM us when our parent dies (best effort elsewhere: the parent-pid check remains);
    returns the pid whose death means the runner's: the runner itself, or the runner's forkserver (a
    forked stage's parent), which exits when the runner does (`streamyolox.graph.executors.local`)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    parent = os.getppid()
    if parent != runner_pid:
        from streamyolox.graph import forkserver

        forkserver.detach_child()  # so that the server exits with the runner, and we with it
        if _parent_of(parent) not in (runner_pid, None):
            os._exit(1)  # the runner (or its forkserver) died before we started
    return parent


def apply_thread_env(threads: int | None) -> None:
    """The plan's intra-op threads for libraries that read them when loaded (a forked stage inherits the
    forkserver's environment, not the one the runner had when it asked for the process)."""
    if threads is not None:
        os.environ.update(dict.fromkeys(THREAD_ENV, str(threads)))


class StageProcess:
    """The stages of one process with their inboxes, outlets, receiver and report socket."""

    def __init__(self, plan: ProcessPlan, incarnation: int, stop: threading.Event,
                 abort: threading.Event, done: Sequence[int] = ()) -> None:
        self.plan = plan
        self.abort = abort
        self.zctx = zmq.Context()
        local = {s.id for s in plan.stages}
        self.inboxes = {s.id: Inbox(plan.inputs[s.id]) for s in plan.stages if plan.inputs.get(s.id)}
        socket_edges = [e for s in plan.stages for e in plan.inputs.get(s.id, []) if e.kind != "inproc"]
        by_edge = {e.index: self.inboxes[e.dst] for e in socket_edges}
        producer_done: Callable[[int], bool] = lambda edge: bool(done[plan.producer_of[edge]])  # noqa: E731
        self.receiver = Receiver(self.zctx, socket_edges, by_edge, incarnation, producer_done) \
            if socket_edges else None
        self.socket_outlets: list[SocketOutlet] = []
        self.loops = []
        for s in plan.stages:
            outlets: list[Outlet] = []
            replicated: dict[str, list[SocketOutlet]] = {}  # edges into the replicas of one stage
            for e in plan.outputs.get(s.id, []):
                if e.kind == "inproc" and e.dst in local:
                    outlets.append(InprocOutlet(e, self.inboxes[e.dst]))
                else:
                    out = SocketOutlet(e, self.zctx, incarnation, resume=plan.resumable)
                    self.socket_outlets.append(out)
                    if e.split is None:
                        outlets.append(out)
                    else:
                        replicated.setdefault(base_id(e.dst), []).append(out)
            outlets += [RoundRobinOutlet(group, incarnation) for group in replicated.values()]
            self.loops.append(StageLoop(s, plan.model, plan.pipeline, self.inboxes.get(s.id), outlets,
                                        stop_set=stop.is_set, abort_set=abort.is_set, restarts=incarnation))
        self._stops_sent: set[tuple[str, str]] = set()
        self._open_commands(incarnation)
        self.report = self.zctx.socket(zmq.PUSH)
        self.report.setsockopt(zmq.LINGER, 2000)
        self.report.connect(plan.control)

    def _open_commands(self, incarnation: int) -> None:
        """The command thread (a target per stage, `tap:<id>` for the wall's tap) and the tap."""
        self.tap: Any = None
        targets: dict[str, Callable[[], object | None]] = {loop.spec.id: loop.opened for loop in self.loops}
        if self.plan.tap and self.plan.wall:
            from streamyolox.web.tap import Tap  # cv2 and drawing: only in the tapped stage's process

            self.tap = Tap(self.zctx, self.plan.wall, self.plan.tap)
            for loop in self.loops:
                if loop.spec.id == self.plan.tap:
                    loop.tap = self.tap.offer
            targets[f"tap:{self.plan.tap}"] = lambda: self.tap
        self.commands = CommandServer(self.zctx, self.plan.commands, self.plan.name, incarnation, targets) \
            if self.plan.commands else None

    def send_reports(self) -> None:
        for loop in self.loops:
            self.report.send_pyobj(("metrics", loop.snapshot()))

    def run(self, parent_pid: int) -> int:
        if self.receiver is not None:
            self.receiver.start()
        for part in (self.tap, self.commands):
            if part is not None:
                part.start()
        threads = [threading.Thread(target=loop.run, name=f"stage-{loop.spec.id}", daemon=True)
                   for loop in self.loops]
        for t in threads:
            t.start()
        next_report = time.monotonic()
        reported: set[str] = set()
        while any(t.is_alive() for t in threads):
            if os.getppid() != parent_pid:  # the runner is gone: stop now
                self.abort.set()
            for t in threads:
                t.join(0.05)
            self._report_errors(reported)
            if time.monotonic() >= next_report:
                self.send_reports()
                next_report = time.monotonic() + self.plan.interval_s
        self.send_reports()
        self._report_errors(reported)
        evidence = self.receiver.evidence_report() if self.receiver is not None else {}
        self.report.send_pyobj(("final", self.plan.name, evidence))
        return 1 if reported else 0

    def _report_errors(self, reported: set[str]) -> None:
        """A failed stage is reported at once, and stops the other stages of this process; a stage's
        StopPipeline is passed on once, as a request to stop the whole run cleanly."""
        for loop in self.loops:
            if loop.stop_request and ("stop", loop.spec.id) not in self._stops_sent:
                self._stops_sent.add(("stop", loop.spec.id))
                self.report.send_pyobj(("stop", loop.spec.id, loop.stop_request))
            if loop.error and loop.spec.id not in reported:
                reported.add(loop.spec.id)
                self.report.send_pyobj(("error", loop.spec.id, loop.error))
                self.abort.set()

    def close(self) -> None:
        linger = 0 if self.abort.is_set() else 2000  # a clean end: let EOS reach the consumer
        if self.receiver is not None:
            self.receiver.stop(min(linger, 500))
        for out in self.socket_outlets:
            out.close(linger)
        for part in (self.commands, self.tap):
            if part is not None:
                part.stop()
        self.report.close(linger=2000)
        self.zctx.term()


def _sweep_own_segments(plan: ProcessPlan) -> None:
    """The runner died without cleaning up (kill -9): unlink the segments this process created (those of its
    output edges); every other process of the run, dying with the runner too, does the same for its own."""
    from streamyolox.graph import shm

    for edges in plan.outputs.values():
        for e in edges:
            if e.shm_prefix:
                shm.sweep(f"{e.shm_prefix}e{e.index}-")


def child_main(plan: ProcessPlan, incarnation: int, stop: object, abort: object, parent_pid: int,
               done: Sequence[int] = ()) -> None:
    """Entry point of a spawned stage process; exits 0 when its stages ended, 1 when one failed. `done`:
    the runner's flags of the processes that have finished (shared memory)."""
    set_title(plan)
    parent_pid = _die_with_parent(parent_pid)
    apply_thread_env(plan.threads)
    logging.basicConfig(level=plan.log_level, format=f"%(asctime)s %(levelname)s [{plan.name}] %(message)s")
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # a closed terminal hangs up the whole group: the runner stops us

    class _Either:
        """The runner's abort event or our own SIGTERM. A plain flag, not a threading.Event: the handler runs
        in the main thread, and a second SIGTERM arriving inside Event.set() deadlocked on the Event's lock
        (seen in CI: a stage process outlived a runner killed with -9)."""

        def __init__(self) -> None:
            self.flag = False

        def is_set(self) -> bool:
            return self.flag or abort.is_set()  # type: ignore[attr-defined]

        def set(self, *_: object) -> None:
            self.flag = True

    either = _Either()
    signal.signal(signal.SIGTERM, either.set)
    proc = StageProcess(plan, incarnation, stop, either, done)  # type: ignore[arg-type]
    code = 1
    try:
        code = proc.run(parent_pid)
    finally:
        proc.close()
        if os.getppid() != parent_pid:
            _sweep_own_segments(plan)
        logging.shutdown()
    # Every stage has closed (files flushed, sockets drained): skip the interpreter's teardown of torch and
    # onnxruntime, which took 1-3 s per process on the 2-core machine and held the run's exit back.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
