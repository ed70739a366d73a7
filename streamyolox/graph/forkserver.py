"""Stage processes forked from a server that has the common modules loaded (multiprocessing `forkserver`).

With `spawn`, every stage process started a fresh interpreter and imported numpy, zmq, PyAV, cv2,
onnxruntime and the stage modules itself: ~0.45 s of CPU per process on the 2-core AMD EPYC machine,
five or six times over, all before the first frame. The forkserver imports them once (`PRELOAD`), started
by `streamyolox run` before it validates the pipeline (`start`), so the imports overlap the validation
on the other core; each stage process is then a `fork()` of it: started in milliseconds, its library
pages shared with its siblings (lower PSS). A restarted stage is forked the same way.

Safety of the fork: the server is a single-threaded process that has only imported modules (no zmq
context, no onnxruntime session, no thread pool started: those are made in each stage process after the
fork). It starts with SIGINT and SIGHUP ignored, which its children inherit: a Ctrl-C or a closed terminal
reaches the whole process group, and the runner decides how its stages stop (`streamyolox.graph.runner`).
It exits when the runner does (multiprocessing closes its "alive" pipe), and a stage it forked watches it
as its parent (`streamyolox.graph.worker`), so nothing outlives the runner. Each run stops it at the end
(`stop`): a run leaves no process behind, also when runs follow each other in one Python process.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import multiprocessing.forkserver as mp_forkserver
import multiprocessing.util as mp_util
import os
import shutil
import signal
import tempfile
import threading
from typing import Any

# Imported by the server before it forks: what most stage processes need. Not torch (only a torch backend
# or a model load needs it: 2 s and 250 MB that most pipelines never use).
PRELOAD = (
    "numpy", "zmq", "av", "cv2", "onnxruntime",
    "streamyolox.graph.worker", "streamyolox.stages.decode", "streamyolox.sources.stream_set",
    "streamyolox.stages.letterbox",
    "streamyolox.stages.yolox", "streamyolox.stages.nms", "streamyolox.stages.json_sink",
    "streamyolox.ops", "streamyolox.inference.backends",
)


def available() -> bool:
    """The platform has a forkserver (POSIX); elsewhere stages are spawned."""
    return "forkserver" in mp.get_all_start_methods()


def context() -> Any:
    """The forkserver start context with `PRELOAD` set (the server reads it when it starts)."""
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(list(PRELOAD))
    return ctx


def start() -> None:
    """Start the server now, if not running (returns at once: it imports `PRELOAD` in the background)."""
    if not available():
        return
    context()
    _own_temp_dir()
    main = threading.current_thread() is threading.main_thread()  # signal.signal works there only
    previous = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGHUP)} if main else {}
    try:
        mp_forkserver.ensure_running()  # the server inherits SIG_IGN for both, and so do its children
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _own_temp_dir() -> None:
    """multiprocessing's temp folder (the server's socket lives there) named like a run folder,
    `syx-<pid>-mp-...`: a runner killed with -9 cannot remove it, and the next run's sweep of dead runners'
    folders (`streamyolox.graph.stale`) then does. As `multiprocessing.util.get_temp_dir` makes it, removed
    at exit; set before the first call of that function (its `_config` entry is the only hook)."""
    config = mp.current_process()._config  # type: ignore[attr-defined]
    if config.get("tempdir") is None:
        path = tempfile.mkdtemp(prefix=f"syx-{os.getpid()}-mp-")
        mp_util.Finalize(None, shutil.rmtree, args=(path, True), exitpriority=-100)
        config["tempdir"] = path


def stop() -> None:
    """Stop the server (it forks no more stages); a later `start` makes a new one. multiprocessing has no
    public call for this: `ForkServer._stop` is the one its own tests use. The server is killed first: it
    holds nothing to flush, and a clean exit tore down numpy, cv2, PyAV and onnxruntime before the run
    could end."""
    server = getattr(mp_forkserver, "_forkserver", None)
    stop_fn = getattr(server, "_stop", None)
    pid = getattr(server, "_forkserver_pid", None)
    if stop_fn is None or pid is None:
        return
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGKILL)
    stop_fn()  # closes our end of its pipe, reaps it, removes its socket file


def detach_child() -> None:
    """In a process the server forked: close its copy of the runner's "alive" pipe. multiprocessing hands
    every forked child that write end (so that it could ask the server for processes of its own); while a
    stage holds it, the server never sees the runner die, and the stage, which watches the server, never
    learns it either (seen: stages alive 30 s after a kill -9 of the runner)."""
    server = getattr(mp_forkserver, "_forkserver", None)
    fd = getattr(server, "_forkserver_alive_fd", None)
    if fd is not None:
        with contextlib.suppress(OSError):
            os.close(fd)
        server._forkserver_alive_fd = None  # type: ignore[union-attr]
