"""Fixtures for live-source tests: a real GStreamer RTSP server in a subprocess, and silent/closed ports."""

from __future__ import annotations

import functools
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

SYSTEM_PYTHON = os.environ.get("STREAMYOLOX_GI_PYTHON", "/usr/bin/python3")
SERVER_SCRIPT = Path(__file__).with_name("rtsp_server.py")


@functools.lru_cache(maxsize=1)
def gst_rtsp_missing() -> str | None:
    """Why the RTSP server cannot run here (None when it can)."""
    if not os.path.exists(SYSTEM_PYTHON):
        return f"{SYSTEM_PYTHON} not found (the RTSP test server runs on the system python with python3-gi)"
    probe = ("import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0'); "
             "from gi.repository import Gst, GstRtspServer; Gst.init(None); "
             "assert all(Gst.ElementFactory.find(e) for e in ('qtdemux', 'h264parse', 'rtph264pay'))")
    result = subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True, text=True, timeout=60)
    if result.returncode:
        last = (result.stderr.strip().splitlines() or ["?"])[-1]
        return (f"{SYSTEM_PYTHON} cannot import gi's GstRtspServer with qtdemux/h264parse/rtph264pay ({last}); "
                "apt-get install python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-good "
                "gstreamer1.0-plugins-bad")
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RtspServer:
    """One GstRtspServer subprocess serving `media` at rtsp://127.0.0.1:`port`/stream; restartable."""

    def __init__(self, media: Path, port: int) -> None:
        self.media = media
        self.port = port
        self.url = f"rtsp://127.0.0.1:{port}/stream"
        self.proc: subprocess.Popen[str] | None = None

    def start(self, timeout: float = 20.0, mount_after_s: float = 0.0) -> None:
        """Start the server and wait until it accepts connections (the path 404s for `mount_after_s`)."""
        self.proc = subprocess.Popen(
            [SYSTEM_PYTHON, str(SERVER_SCRIPT), "--port", str(self.port), "--file", str(self.media),
             "--mount-after", str(mount_after_s)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)  # type: ignore[arg-type]
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"RTSP server exited with {self.proc.returncode}: {self.proc.stderr.read()}")
                if sel.select(timeout=0.2) and "READY" in self.proc.stdout.readline():  # type: ignore[union-attr]
                    break
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"RTSP server on port {self.port} did not start within {timeout} s")

    def kill(self) -> None:
        """Kill -9: the server vanishes mid-stream, as a crashed camera would."""
        if self.proc is not None:
            self.proc.kill()
            self._reap()

    def pause(self, paused: bool) -> None:
        """SIGSTOP / SIGCONT: the server hangs with its sockets open (a wedged camera)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP if paused else signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self._reap()

    def _reap(self) -> None:
        if self.proc is not None:
            self.proc.wait(timeout=10)
            for pipe in (self.proc.stdout, self.proc.stderr):
                if pipe is not None:
                    pipe.close()
            self.proc = None


@pytest.fixture
def rtsp_server(street_720p: Path) -> Iterator[RtspServer]:
    """A started RTSP server serving street_pan_720p.mp4; stopped (and reaped) after the test."""
    reason = gst_rtsp_missing()
    if reason:
        pytest.skip(reason)
    server = RtspServer(street_720p, free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback port that accepts TCP connections and never says a word (a black-holed camera)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield listener.getsockname()[1]


@pytest.fixture
def closed_port() -> int:
    """A loopback port nobody listens on (connections are refused)."""
    return free_port()


if sys.platform != "linux":  # SIGSTOP and /usr/bin/python3 assumptions
    collect_ignore_glob = ["test_rtsp*.py"]
