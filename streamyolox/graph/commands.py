"""Runner -> stage process commands: call a method of a stage object inside its process, get the result.

`CommandHub` (in the runner) binds a ZeroMQ ROUTER; every stage process connects a DEALER from a small
thread (`CommandServer`) and says `Hello` with the targets it serves (its stage ids, plus `tap:<id>` where
the camera-wall tap lives). `CommandHub.call(target, method, kwargs, timeout_s)` sends a `Request`; the
process runs `getattr(obj, method)(**kwargs)` and answers a `Reply` with the value, or with the exception
it raised, which `call` raises again in the caller's thread (same type and message: ValueError, KeyError,
`StreamExists` ...).

A restarted process says `Hello` again with a new routing id; requests that were waiting for its targets
are sent to it then, those the dead one had taken fail with `StageUnavailable`. Messages are pickled
dataclasses: both ends are this package, in one run, over an ipc socket in the run's private folder.
"""

from __future__ import annotations

import itertools
import logging
import pickle
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any

import zmq

log = logging.getLogger("streamyolox.commands")
POLL_MS = 100  # how often the threads look at their stop flag


def side_address(control: str, name: str) -> str:
    """An address to bind beside the runner's report socket `control`: `ipc://<run dir>/<name>`, or for
    tcp the same host on a free port (port 0: read the bound one back from LAST_ENDPOINT)."""
    if control.startswith("ipc://"):
        return f"{control.rpartition('/')[0]}/{name}"
    return f"{control.rpartition(':')[0]}:0"


class StageUnavailable(RuntimeError):
    """The target is not running (it ended, failed, or died while running the command)."""


@dataclass(frozen=True)
class Hello:
    """A stage process (one incarnation of it) announces the targets it serves."""

    process: str
    incarnation: int
    targets: tuple[str, ...]


@dataclass(frozen=True)
class Request:
    id: int
    target: str
    method: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    timeout_s: float = 5.0  # the process waits this long for its target to open


@dataclass(frozen=True)
class Reply:
    id: int
    value: Any = None
    error: BaseException | None = None


def _portable(exc: BaseException) -> BaseException:
    """The exception itself when it survives pickling, else a RuntimeError with its type and message."""
    try:
        back = pickle.loads(pickle.dumps(exc))
        if type(back) is type(exc) and str(back) == str(exc):
            return exc
    except Exception:  # anything unpicklable is sent as text
        pass
    return RuntimeError(f"{type(exc).__name__}: {exc}")


@dataclass
class _Pending:
    request: Request
    future: Future
    route: bytes | None = None  # the process that has it, once sent


class CommandHub:
    """The runner's end. Thread-safe `call`; one thread owns the ROUTER socket."""

    def __init__(self, zctx: zmq.Context, address: str) -> None:
        self.zctx = zctx
        self.sock = zctx.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.ROUTER_MANDATORY, 1)  # a send to a gone process fails instead of vanishing
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.bind(address)
        self.address = self.sock.getsockopt_string(zmq.LAST_ENDPOINT)  # a tcp port 0 resolved
        self.wake_addr = f"inproc://syx-commands-{id(self)}"
        self.wake = zctx.socket(zmq.PULL)
        self.wake.bind(self.wake_addr)
        self.lock = threading.Lock()
        self.routes: dict[str, bytes] = {}  # target -> routing id of the process serving it
        self.gone: dict[str, str] = {}  # target -> why it will not come back
        self.pending: dict[int, _Pending] = {}
        self.ids = itertools.count(1)
        self.on_hello: list[Callable[[Hello], None]] = []  # run in a thread of their own, after a Hello
        self.closed = False
        self.thread = threading.Thread(target=self._run, name="streamyolox-commands", daemon=True)
        self.thread.start()

    # -- callers -----------------------------------------------------------------------------------
    def call(self, target: str, method: str, kwargs: dict[str, Any] | None = None,
             timeout_s: float = 5.0) -> Any:
        """Run `getattr(target object, method)(**kwargs)` in its process; its result, or its exception
        raised here. TimeoutError after `timeout_s`; StageUnavailable when the target is not running."""
        with self.lock:
            why = self.gone.get(target)
        if why is not None:
            raise StageUnavailable(why)
        req = Request(next(self.ids), target, method, dict(kwargs or {}), timeout_s)
        pending = _Pending(req, Future())
        with self.lock:
            self.pending[req.id] = pending
        self._poke()
        try:
            return pending.future.result(timeout_s)
        except FutureTimeout:
            raise TimeoutError(f"{target}.{method}: no answer within {timeout_s:g} s") from None
        finally:
            with self.lock:
                self.pending.pop(req.id, None)

    def down(self, targets: list[str], why: str, restarting: bool) -> None:
        """The process serving `targets` ended: fail what it had taken; new calls wait for its restart
        (`restarting`) or fail at once."""
        with self.lock:
            routes = {self.routes.pop(t) for t in targets if t in self.routes}
            if not restarting:
                self.gone.update(dict.fromkeys(targets, why))
            failed = [p for p in self.pending.values()
                      if (p.route in routes) or (not restarting and p.request.target in targets)]
        for p in failed:
            _settle(p.future, error=StageUnavailable(why))
        self._poke()

    def targets(self) -> list[str]:
        with self.lock:
            return list(self.routes)

    def close(self) -> None:
        self.closed = True
        self._poke()
        self.thread.join(2)
        with self.lock:
            left = list(self.pending.values())
        for p in left:
            _settle(p.future, error=StageUnavailable("the pipeline has ended"))

    def _poke(self) -> None:
        """Wake the hub thread (an inproc PUSH per call: sockets are not shared between threads)."""
        if self.closed and not self.thread.is_alive():
            return
        push = self.zctx.socket(zmq.PUSH)
        try:
            push.connect(self.wake_addr)
            push.send(b"", zmq.NOBLOCK)
        except zmq.ZMQError:
            pass  # the hub is busy anyway (queue full) or gone
        finally:
            push.close(linger=0)

    # -- hub thread --------------------------------------------------------------------------------
    def _run(self) -> None:
        poller = zmq.Poller()
        poller.register(self.sock, zmq.POLLIN)
        poller.register(self.wake, zmq.POLLIN)
        try:
            while not self.closed:
                events = dict(poller.poll(POLL_MS))
                if self.wake in events:
                    while self.wake.poll(0):
                        self.wake.recv()
                while self.sock.poll(0):
                    self._receive(*self.sock.recv_multipart())
                self._send_waiting()
        finally:
            self.sock.close(linger=0)
            self.wake.close(linger=0)

    def _receive(self, route: bytes, payload: bytes) -> None:
        msg = pickle.loads(payload)
        if isinstance(msg, Hello):
            with self.lock:
                moved = {self.routes[t] for t in msg.targets if self.routes.get(t, route) != route}
                self.routes.update(dict.fromkeys(msg.targets, route))
                for t in msg.targets:
                    self.gone.pop(t, None)
                stale = [p for p in self.pending.values() if p.route in moved]
            for p in stale:  # the previous incarnation had them and will never answer
                _settle(p.future, error=StageUnavailable(f"{p.request.target!r} restarted during the command"))
            log.debug("commands: %s (incarnation %d) serves %s", msg.process, msg.incarnation, msg.targets)
            for hook in self.on_hello:
                threading.Thread(target=hook, args=(msg,), name="streamyolox-hello", daemon=True).start()
        elif isinstance(msg, Reply):
            with self.lock:
                asked = self.pending.get(msg.id)
            if asked is not None:  # else the caller timed out meanwhile
                _settle(asked.future, msg.value, msg.error)

    def _send_waiting(self) -> None:
        with self.lock:
            todo = [(p, self.routes[p.request.target]) for p in self.pending.values()
                    if p.route is None and p.request.target in self.routes]
        for p, route in todo:
            try:
                self.sock.send_multipart([route, pickle.dumps(p.request)])
                p.route = route
            except zmq.ZMQError:  # EHOSTUNREACH: the process has just gone; its restart will say Hello
                with self.lock:
                    if self.routes.get(p.request.target) == route:
                        del self.routes[p.request.target]


def _settle(future: Future, value: Any = None, error: BaseException | None = None) -> None:
    if future.done():
        return
    try:
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)
    except Exception:  # InvalidStateError: settled meanwhile by another thread
        pass


class CommandServer:
    """A stage process's end: a thread that runs the requests for its targets, one at a time.

    `targets` maps a target name to a function giving its object, or None while it is not ready (a stage
    that is still opening); a request waits for readiness up to its `timeout_s`."""

    def __init__(self, zctx: zmq.Context, address: str, process: str, incarnation: int,
                 targets: dict[str, Callable[[], object | None]]) -> None:
        self.targets = targets
        self.hello = Hello(process, incarnation, tuple(targets))
        self.sock = zctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.ROUTING_ID, f"{process}:{incarnation}".encode())
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(address)
        self.stopped = False
        self.thread = threading.Thread(target=self._run, name="commands", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopped = True
        if self.thread.is_alive():
            self.thread.join(2)
        else:
            self.sock.close(linger=0)

    def _run(self) -> None:
        try:
            self.sock.send(pickle.dumps(self.hello))
            while not self.stopped:
                if not self.sock.poll(POLL_MS):
                    continue
                req = pickle.loads(self.sock.recv())
                if isinstance(req, Request):
                    self.sock.send(pickle.dumps(self._answer(req)))
        finally:
            self.sock.close(linger=0)

    def _answer(self, req: Request) -> Reply:
        get = self.targets.get(req.target)
        if get is None:
            return Reply(req.id, error=StageUnavailable(f"no target {req.target!r} in this process"))
        deadline = time.monotonic() + req.timeout_s
        obj = get()
        while obj is None and time.monotonic() < deadline and not self.stopped:
            time.sleep(0.02)
            obj = get()
        if obj is None:
            return Reply(req.id, error=StageUnavailable(f"{req.target!r} is not open"))
        fn = getattr(obj, req.method, None)
        if req.method.startswith("_") or not callable(fn):
            return Reply(req.id, error=AttributeError(f"{req.target!r} has no command {req.method!r}"))
        try:
            value = fn(**req.kwargs)
        except Exception as exc:  # every error goes back to the caller
            return Reply(req.id, error=_portable(exc))
        try:
            pickle.dumps(value)
        except Exception as exc:
            return Reply(req.id, error=TypeError(f"{req.target}.{req.method}: result not picklable: {exc}"))
        return Reply(req.id, value=value)
