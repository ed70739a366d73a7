"""The runner -> stage command channel (graph/commands.py) with real stage processes: results, errors
re-raised by type and message, timeouts, a restarted stage re-registering, an ended stage refusing."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from streamyolox.graph import shm
from streamyolox.graph.commands import StageUnavailable
from streamyolox.graph.runner import RunOptions, Supervisor
from streamyolox.graph.validate import load_pipeline
from streamyolox.sources.streams import StreamExists

pytestmark = pytest.mark.timeout(120)

PIPE = """
name: cmd
stages:
  src: {kind: "command_stages:Controlled", pid_file: "${T}/pid", restart: on-failure, frames: FRAMES}
  sink: {kind: "fake_stages:Collect", inputs: [src], path: "${T}/out.jsonl"}
"""


def run_with(tmp_path: Path, body: Callable[[Supervisor], None], frames: int = 0) -> None:
    """`body(sup)` in a thread while the supervisor loop runs in this (main) thread, as in a real run (a
    restart installs signal handlers); then stop, close and check that nothing leaked."""
    f = tmp_path / "p.yaml"
    f.write_text(PIPE.replace("FRAMES", str(frames)))
    spec = load_pipeline(f, (), env={"T": str(tmp_path)})
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    sup = Supervisor(spec, RunOptions())
    failure: list[BaseException] = []

    def guarded() -> None:
        try:
            body(sup)
        except BaseException as exc:
            failure.append(exc)
        finally:
            if sup.stop_time is None and len(sup.finished) < len(sup.plans):
                sup.on_signal(signal.SIGTERM, None)

    try:
        for name in sup.plans:
            sup.start(name)
        worker = threading.Thread(target=guarded, daemon=True)
        worker.start()
        sup.loop()
        if frames:  # the run ended by itself: the body goes on after it
            worker.join(30)
    finally:
        sup.close()
    worker.join(10)
    if failure:
        raise failure[0]
    time.sleep(0.1)
    left = [p for p in psutil.Process().children(recursive=True) if p.pid not in before
            and p.is_running() and p.status() != psutil.STATUS_ZOMBIE
            and "resource_tracker" not in " ".join(p.cmdline())]
    assert left == []
    assert shm.leftovers(f"syx-{os.getpid()}-") == []


def _pids(tmp_path: Path) -> list[int]:
    path = tmp_path / "pid"
    return [int(x) for x in path.read_text().split()] if path.exists() else []


def test_results_and_errors_cross_the_process_boundary(tmp_path: Path) -> None:
    def body(sup: Supervisor) -> None:
        me = sup.command("src", "whoami", {"x": [1, 2]}, timeout_s=30)  # waits for the stage to open
        assert me["pid"] == _pids(tmp_path)[0] != os.getpid()
        assert me == {"pid": me["pid"], "stage": "src", "restarts": 0, "kwargs": {"x": [1, 2]}}
        assert sup.command("src", "add_stream", {"stream_id": "cam9", "options": {"url": "u"}}) == \
            {"id": "cam9", "state": "up", "frames": 0}
        with pytest.raises(StreamExists, match="stream 'cam9' exists"):
            sup.command("src", "add_stream", {"stream_id": "cam9", "options": {"url": "u"}})
        with pytest.raises(ValueError, match=r"^streams\.cam8\.url: required$"):
            sup.command("src", "add_stream", {"stream_id": "cam8", "options": {}})
        with pytest.raises(KeyError, match="nope"):
            sup.command("src", "remove_stream", {"stream_id": "nope"})
        with pytest.raises(TypeError, match="unexpected keyword"):
            sup.command("src", "remove_stream", {"wrong": 1})
        with pytest.raises(AttributeError, match="no command 'missing'"):
            sup.command("src", "missing")
        with pytest.raises(AttributeError, match="no command '_private'"):
            sup.command("src", "_private")
        with pytest.raises(TypeError, match="not picklable"):
            sup.command("src", "unpicklable")
        with pytest.raises(KeyError, match="no stage 'ghost'"):
            sup.command("ghost", "whoami")
        t = time.monotonic()
        with pytest.raises(TimeoutError, match=r"src\.slow: no answer within 0.3 s"):
            sup.command("src", "slow", {"seconds": 1.5}, timeout_s=0.3)
        assert time.monotonic() - t < 1.2
        # the slow call still runs in the stage's thread; the next call is answered after it, not lost
        assert sup.command("src", "slow", {"seconds": 0.0}, timeout_s=5) == 0.0
        # the stream added by command is read: its frames reach the sink
        removed = None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            status = {s["id"]: s["frames"] for s in sup.command("src", "streams_status")}
            if status.get("cam9", 0) >= 5:
                removed = sup.command("src", "remove_stream", {"stream_id": "cam9"})
                break
            time.sleep(0.1)
        assert removed is not None and removed["frames"] >= 5
        assert "cam9" not in {s["id"] for s in sup.command("src", "streams_status")}

    run_with(tmp_path, body)


def test_concurrent_callers_get_their_own_answers(tmp_path: Path) -> None:
    def body(sup: Supervisor) -> None:
        sup.command("src", "whoami", timeout_s=30)
        answers: dict[int, object] = {}

        def ask(i: int) -> None:
            answers[i] = sup.command("src", "whoami", {"i": i}, timeout_s=20)["kwargs"]["i"]

        threads = [threading.Thread(target=ask, args=(i,)) for i in range(12)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(30)
        assert answers == {i: i for i in range(12)}

    run_with(tmp_path, body)


def test_a_restarted_stage_registers_again(tmp_path: Path) -> None:
    def body(sup: Supervisor) -> None:
        first = sup.command("src", "whoami", timeout_s=30)
        os.kill(first["pid"], signal.SIGKILL)
        again = None
        for _ in range(3):  # a call the dead process had taken fails with StageUnavailable: ask again
            try:
                again = sup.command("src", "whoami", timeout_s=30)
                break
            except StageUnavailable:
                time.sleep(0.2)
        assert again is not None
        assert again["pid"] != first["pid"] and again["restarts"] == 1
        assert _pids(tmp_path) == [first["pid"], again["pid"]]

    run_with(tmp_path, body)


def test_an_ended_stage_refuses_at_once(tmp_path: Path) -> None:
    def body(sup: Supervisor) -> None:
        deadline = time.monotonic() + 60
        while len(sup.finished) < len(sup.plans) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(sup.finished) == len(sup.plans)  # every process has ended
        t = time.monotonic()
        with pytest.raises(StageUnavailable, match="stage 'src' has ended"):
            sup.command("src", "whoami", timeout_s=10)
        assert time.monotonic() - t < 1.0

    run_with(tmp_path, body, frames=5)
