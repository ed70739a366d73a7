"""Run a `PipelineSpec`: one process per stage (or per named worker), supervised by this one.

Lifecycle:
- end of stream flows from the sources; the run exits 0 once every process has finished.
- SIGINT / SIGTERM / SIGHUP: sources stop at once (end of stream follows); after `DRAIN_S` everyone is told
  to abort (sinks still close and flush what they got); stragglers are terminated, then killed, within 2 s.
- a stage that raises or dies (e.g. `kill -9`): restarted when `restart: on-failure` allows it (the frames
  it held are counted as dropped, `streamyolox.graph.losses`), else the pipeline aborts and the run exits 1
  with one line naming the stage.
- the last lines say, per stream, how many frames were dropped and where (also in `--metrics-json`).
The runner owns every shared-memory segment of the run (one name prefix, with its pid) and unlinks them
all at the end, whatever happened, and the ipc socket folder with them; a run also removes what runners
that were killed left behind (`streamyolox.graph.stale`).
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

import zmq

from streamyolox.graph import liveness, losses, shm, stale
from streamyolox.graph.commands import CommandHub, side_address
from streamyolox.graph.executors import Executor, ProcessHandle, make_executor
from streamyolox.graph.metrics import MetricsBoard
from streamyolox.graph.options import SpecError
from streamyolox.graph.placement import place
from streamyolox.graph.replicas import base_id, expand
from streamyolox.graph.spec import PipelineSpec
from streamyolox.graph.transport import EdgeInfo
from streamyolox.graph.wiring import plan_edges, refuse_fixed_endpoints
from streamyolox.graph.worker import ProcessPlan
from streamyolox.web.wall import open_wall

log = logging.getLogger("streamyolox.run")
DRAIN_S = 1.0  # after a stop signal, how long stages may drain before they abort
TERM_S = 1.4  # ... before stragglers get SIGTERM
KILL_S = 1.8  # ... and SIGKILL (so every stage is gone within 2 s)
FINAL_WAIT_S = 1.5  # after the last process ended: how long its final report may take to arrive
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@dataclass
class RunOptions:
    metrics_json: str | None = None
    http_port: int | None = None
    http_host: str | None = None  # None: the pipeline's metrics.http_host (127.0.0.1)
    http_token: str | None = None  # None: the pipeline's metrics.http_token
    dashboard: bool = False
    only: list[str] | None = None
    log_interval_s: float | None = None  # plain log lines (None: the pipeline's metrics.interval_s)
    executor: str | None = None  # None: the pipeline's executor.kind (local)
    ray_address: str | None = None  # None: executor.address
    shards: int | None = None  # None: executor.shards


@dataclass
class RunResult:
    exit_code: int
    error: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)


def process_groups(spec: PipelineSpec, only: set[str]) -> dict[str, list[str]]:
    """Process name -> its stage ids (a named worker shares one process)."""
    groups: dict[str, list[str]] = {}
    for sid, s in spec.stages.items():
        if sid in only:
            groups.setdefault(s.worker or sid, []).append(sid)
    return groups


def plan_processes(spec: PipelineSpec, edges: list[EdgeInfo], only: set[str], control: str,
                   interval_s: float) -> list[ProcessPlan]:
    """Group stages into processes (a named worker shares one) and give each its edges."""
    groups = process_groups(spec, only)
    index = {sid: k for k, ids in enumerate(groups.values()) for sid in ids}
    plans = []
    for name, ids in groups.items():
        stages = [spec.stages[i] for i in ids]
        threads = next((s.threads for s in stages if s.threads is not None), None)
        inputs = {i: [e for e in edges if e.dst == i] for i in ids}
        plans.append(ProcessPlan(
            name=name, stages=stages, model=spec.model, pipeline=spec.name, inputs=inputs,
            outputs={i: [e for e in edges if e.src == i] for i in ids},  # edges leaving this host are tcp
            control=control, interval_s=interval_s, threads=threads,
            log_level=logging.getLogger().getEffectiveLevel(), index=index[ids[0]],
            producer_of={e.index: index[e.src] for es in inputs.values() for e in es if e.src in index},
            resumable=liveness.resumable(spec, ids)))
    return plans


class Supervisor:
    """Starts the stage processes, watches them and their reports, and stops them."""

    def __init__(self, spec: PipelineSpec, options: RunOptions, executor: Executor | None = None) -> None:
        self.executor = executor or make_executor()
        spec = self.executor.shard(spec)  # `executor.shards: N`: N copies, the streams split between them
        wanted = set(options.only or spec.stages)
        # cheap stages share a process, threads per process (graph/placement.py); the wall (--http) shows frames
        http = options.http_port if options.http_port is not None else spec.metrics.http_port
        spec = place(spec, wanted, keep_frames=http is not None)
        spec = expand(spec)  # from here on, each replica is a stage of its own (`det#0`, `det#1`)
        self.spec = spec
        self.options = options
        self.only = {sid for sid in spec.stages if base_id(sid) in wanted}
        groups = process_groups(spec, self.only)
        # before anything exists: a stage that no node can hold fails here (SpecError)
        placed = self.executor.place({n: [spec.stages[i] for i in ids] for n, ids in groups.items()})
        _sweep_leftovers()
        self.run_dir = tempfile.mkdtemp(prefix=f"syx-{os.getpid()}-")  # named like the segments, for the sweep
        self.prefix = f"{os.path.basename(self.run_dir)}-"
        self.zctx = zmq.Context()
        self.control = self.zctx.socket(zmq.PULL)
        self.control.bind(self.executor.control_address(self.run_dir))
        self.control_addr = self.control.getsockopt_string(zmq.LAST_ENDPOINT)  # a tcp port 0 resolved
        # runner -> stage commands (live streams, the camera wall's tap): `command`, graph/commands.py
        self.commands = CommandHub(self.zctx, side_address(self.control_addr, "commands"))
        nodes = {sid: placed[name] for name, ids in groups.items() for sid in ids}
        self.edges = plan_edges(spec, self.run_dir, self.prefix, self.only, nodes)
        self.board = MetricsBoard({sid: s.kind for sid, s in spec.stages.items() if sid in self.only},
                                  {e.index: e.dst for e in self.edges})
        self.board.accounting = self.streams  # the per-stream rows' drops (MetricsBoard.stream_rows)
        interval = spec.metrics.interval_s
        self.plans = {p.name: p for p in plan_processes(spec, self.edges, self.only, self.control_addr, interval)}
        for p in self.plans.values():
            p.commands = self.commands.address
        self.wall = open_wall(self)  # with --http: the camera wall and its tap (streamyolox.web.wall)
        self.executor.open(list(self.plans.values()))
        self.procs: dict[str, ProcessHandle] = {}
        self.incarnation = dict.fromkeys(self.plans, 0)
        self.finished: set[str] = set()
        self.exits: dict[str, int] = dict.fromkeys(self.plans, 0)  # exits that send a final report ...
        self.finals: dict[str, int] = dict.fromkeys(self.plans, 0)  # ... and those received
        self.error: str | None = None
        self.signal: int | None = None
        self.stop_time: float | None = None

    # -- processes -------------------------------------------------------------------------------------
    def start(self, name: str) -> None:
        plan = self.plans[name]
        self.procs[name] = self.executor.start(plan, self.incarnation[name])
        for s in plan.stages:
            self.board.set_state(s.id, "starting")

    def _fail(self, message: str) -> None:
        if self.error is None and self.signal is None:
            self.error = message
            log.error("%s: stopping the pipeline", message)
        self.executor.abort()
        self.stop_time = self.stop_time or time.monotonic()

    def _exited(self, name: str, code: int) -> None:
        """A process ended: done, restarted, or the pipeline fails."""
        plan = self.plans[name]
        ids = [s.id for s in plan.stages]
        log.debug("process %s exited with code %s", name, code)
        self.exits[name] += code >= 0
        targets = self._targets(plan)
        if code == 0:
            self.commands.down(targets, f"stage {ids[0]!r} has ended", restarting=False)
            self.finished.add(name)
            self.executor.mark_done(plan.index)  # its consumers end that input, even a restarted one (see Receiver)
            return
        self._drain_reports()
        reported = [self.board.stats[i].error for i in ids if self.board.stats[i].error]
        why = reported[0] if reported else (
            f"stage {ids[0]!r} died (killed by {signal.Signals(-code).name})" if code < 0
            else f"stage {ids[0]!r} exited with code {code}")
        can_restart = all(s.restart == "on-failure" for s in plan.stages) and \
            self.incarnation[name] < min(s.max_restarts for s in plan.stages)
        if can_restart and self.stop_time is None:
            self.incarnation[name] += 1
            self.commands.down(targets, f"{why} (restarting)", restarting=True)
            log.warning("%s: restarting (%d/%d)", why, self.incarnation[name], plan.stages[0].max_restarts)
            for i in ids:
                self.board.restarted(i)
                self.board.stats[i].error = None
            self.start(name)
            return
        self.commands.down(targets, str(why), restarting=False)
        for i in ids:
            self.board.set_state(i, "failed" if reported else "died", why)
        self.finished.add(name)
        self._fail(str(why))

    # -- reports ---------------------------------------------------------------------------------------
    def _drain_reports(self) -> None:
        while self.control.poll(0):
            msg = self.control.recv_pyobj()
            if msg[0] == "metrics":
                self.board.update(msg[1])
            elif msg[0] == "error":
                self.board.set_state(msg[1], "failed", msg[2])
            elif msg[0] == "final":
                self.board.add_evidence(msg[2])
                self.finals[msg[1]] += 1
            elif msg[0] == "stop" and self.stop_time is None:
                log.info("%s: stopping the pipeline (sources stop, sinks flush)", msg[2])
                self.executor.stop()
                self.stop_time = time.monotonic()

    def on_signal(self, signum: int, _frame: Any) -> None:
        if self.signal is None:
            log.warning("%s: stopping (sources stop, sinks flush)", signal.Signals(signum).name)
            self.signal = signum
            self.executor.stop()
            self.stop_time = self.stop_time or time.monotonic()

    def _escalate(self) -> None:
        waited = time.monotonic() - self.stop_time  # type: ignore[operator]
        if waited > DRAIN_S:
            self.executor.abort()
        for _name, proc in self.procs.items():
            if proc.exitcode() is None and waited > KILL_S:
                proc.kill()
            elif proc.exitcode() is None and waited > TERM_S:
                proc.terminate()

    def loop(self, on_tick: Any = None) -> None:
        poller = zmq.Poller()
        poller.register(self.control, zmq.POLLIN)
        while len(self.finished) < len(self.plans):
            poller.poll(50)
            self._drain_reports()
            for name, proc in list(self.procs.items()):
                code = proc.exitcode() if name not in self.finished else None
                if code is not None:
                    self._exited(name, code)
            if self.stop_time is not None:
                self._escalate()
            if on_tick is not None:
                on_tick()
        self._drain_reports()
        deadline = time.monotonic() + FINAL_WAIT_S  # the final reports carry what the accounting needs
        while any(self.finals[n] < self.exits[n] for n in self.plans) and time.monotonic() < deadline:
            self.control.poll(20)
            self._drain_reports()
        if self.signal is not None and self.stop_time is not None:
            log.info("all stages stopped %.2f s after %s", time.monotonic() - self.stop_time,
                     signal.Signals(self.signal).name)

    def close(self) -> None:
        """Make sure no process survives, then unlink every segment and socket file of the run."""
        self.executor.abort()
        for proc in self.procs.values():
            proc.join(0.5 if proc.exitcode() is None else 0)
            if proc.exitcode() is None:
                proc.kill()
                proc.join(2)
        self.executor.close()
        if self.wall is not None:
            self.wall.close()
        self.commands.close()
        self.control.close(linger=0)
        self.zctx.term()
        n = shm.sweep(self.prefix)
        log.debug("unlinked %d shared-memory segments", n)
        shutil.rmtree(self.run_dir, ignore_errors=True)

    def command(self, stage_id: str, method: str, kwargs: dict[str, Any] | None = None,
                timeout_s: float = 5.0) -> Any:
        """`getattr(stage, method)(**kwargs)` in the stage's process: its result, or its exception raised
        here (same type and message); TimeoutError, or `commands.StageUnavailable` when it is not running."""
        if stage_id not in self.spec.stages:
            raise KeyError(f"no stage {stage_id!r}")
        return self.commands.call(stage_id, method, kwargs, timeout_s)

    @staticmethod
    def _targets(plan: ProcessPlan) -> list[str]:
        return [s.id for s in plan.stages] + ([f"tap:{plan.tap}"] if plan.tap else [])

    def streams(self) -> dict[str, Any]:
        """Per stream: frames given by the sources, dropped, and where (`streamyolox.graph.losses`)."""
        proc_of = {s.id: p.name for p in self.plans.values() for s in p.stages}
        sources = {sid for sid, s in self.spec.stages.items() if s.is_source}
        return losses.account(self.board, self.edges, proc_of, sources)


def _sweep_leftovers() -> None:
    found = stale.sweep_dead_runners()
    if found.segments or found.folders:
        log.warning("removed %d shared-memory segments (%.1f MB) and %d run folders left by runner(s) that "
                    "died (pid %s)", found.segments, found.bytes / 1e6, found.folders,
                    ", ".join(map(str, found.owners)))


def executor_for(spec: PipelineSpec, options: RunOptions) -> Executor:
    """The pipeline's `executor:` block, with the command line's choices over it."""
    kind = options.executor or spec.executor.kind
    shards = options.shards or spec.executor.shards
    if kind == "local":
        if shards > 1:
            raise SpecError("--shards: needs --executor ray (or executor.kind: ray)")
        return make_executor()
    refuse_fixed_endpoints(spec, options.only)  # Ray places every stage: the driver wires every edge
    return make_executor("ray", address=options.ray_address or spec.executor.address, shards=shards)


def run_pipeline(spec: PipelineSpec, options: RunOptions | None = None) -> RunResult:
    """Run until the end of stream, a stop signal or a failure; returns the exit code and metrics."""
    from streamyolox.graph.dashboard import Reporter
    from streamyolox.web.control import StreamControl

    options = options or RunOptions()
    try:  # Ray missing, an unplaceable stage, too many shards: one line, nothing started
        executor = executor_for(spec, options)
    except SpecError as exc:
        return RunResult(2, str(exc))
    try:
        sup = Supervisor(spec, options, executor)
    except SpecError as exc:
        executor.close()
        return RunResult(2, str(exc))
    reporter = Reporter(sup.board, spec, options, control=StreamControl(sup))
    handlers = {s: signal.getsignal(s) for s in STOP_SIGNALS}
    try:
        for s in handlers:
            signal.signal(s, sup.on_signal)
        for name in sup.plans:
            sup.start(name)
        reporter.start()
        sup.loop(on_tick=reporter.tick)
    finally:
        for s, h in handlers.items():
            signal.signal(s, h)
        sup.close()
        reporter.stop()
    code = 1 if sup.error else (128 + sup.signal if sup.signal else 0)
    summary = sup.board.summary()
    streams = losses.add_rates(sup.board, sup.streams())
    losses.add_to_rows(summary["stages"], streams)
    summary.update({"pipeline": spec.name, "exit_code": code, "error": sup.error, "streams": streams})
    summary["executor"] = executor.describe()  # ray: the node of every shard and process
    reporter.finish(summary)
    for dropped, line in losses.summary_lines(streams):
        log.log(logging.WARNING if dropped else logging.INFO, "%s", line)
    return RunResult(code, sup.error, summary)
