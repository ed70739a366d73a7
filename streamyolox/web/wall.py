"""The camera wall's runner end: who watches which stream, the latest JPEG of each, the MJPEG responses.

`WallHub` binds a PULL socket (bounded) that the tap (`streamyolox.web.tap`) pushes JPEGs to, keeps the
newest one per watched stream, and tells the tap over the command channel which streams are watched (at
the largest width and fps any client asked for) whenever that changes, and again when the tap's process
says Hello after a restart.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any

import zmq

from streamyolox.graph.commands import Hello, side_address
from streamyolox.graph.spec import PipelineSpec

if TYPE_CHECKING:
    from streamyolox.graph.runner import Supervisor

log = logging.getLogger("streamyolox.wall")
RECV_HWM = 8
BOUNDARY = "syxframe"
MAX_WIDTH = 1920
MAX_FPS = 30.0
DETECTING_KINDS = ("nms", "track", "count")  # built-in stages whose output carries detections
MAX_CLIENTS = 64  # MJPEG responses at once
MAX_WATCHED = 64  # streams encoded at once (the tap keeps one frame of each)


class WallFull(RuntimeError):
    """Too many MJPEG clients or watched streams (HTTP 503)."""


@dataclass(frozen=True)
class Watch:
    """How one stream is wanted: scaled to `width` pixels (never up), at most `fps` frames a second."""

    width: int = 640
    fps: float = 10.0

    def __post_init__(self) -> None:
        if not isinstance(self.width, int) or not 16 <= self.width <= MAX_WIDTH:
            raise ValueError(f"width: expected an integer in [16, {MAX_WIDTH}], got {self.width}")
        if not isinstance(self.fps, (int, float)) or not 0 < self.fps <= MAX_FPS:
            raise ValueError(f"fps: expected a number in (0, {MAX_FPS:g}], got {self.fps}")


def tap_stage(spec: PipelineSpec, local: set[str]) -> str | None:
    """The stage whose process hosts the tap: among this host's stages, prefer those downstream of a
    detecting stage, then sinks, then the longest path from a source; None without stages here."""
    depth: dict[str, int] = {}
    detects: dict[str, bool] = {}

    def visit(sid: str) -> None:
        if sid not in depth:
            s = spec.stages[sid]
            for i in s.inputs:
                visit(i)
            depth[sid] = max((depth[i] + 1 for i in s.inputs), default=0)
            detects[sid] = s.kind in DETECTING_KINDS or any(detects[i] for i in s.inputs)

    for sid in spec.stages:
        visit(sid)
    order = list(spec.stages)
    candidates = [sid for sid in order if sid in local]
    if not candidates:
        return None
    return max(candidates, key=lambda sid: (detects[sid], spec.stages[sid].is_sink, depth[sid], -order.index(sid)))


def open_wall(sup: Supervisor) -> WallHub | None:
    """With an HTTP port: the wall's hub in the runner and its tap in the chosen stage's process."""
    port = sup.options.http_port if sup.options.http_port is not None else sup.spec.metrics.http_port
    sid = tap_stage(sup.spec, sup.only) if port is not None else None
    if sid is None:
        return None
    wall = WallHub(sup.zctx, side_address(sup.control_addr, "wall"), f"tap:{sid}", sup.commands.call)
    sup.commands.on_hello.append(wall.on_hello)
    plan = next(p for p in sup.plans.values() if any(s.id == sid for s in p.stages))
    plan.tap, plan.wall = sid, wall.address
    return wall


@dataclass(frozen=True)
class Picture:
    seq: int
    jpeg: bytes
    header: dict[str, Any]


def page() -> bytes:
    """The wall's one HTML page (no external assets)."""
    return resources.files("streamyolox.web").joinpath("wall.html").read_bytes()


class WallHub:
    """Thread-safe: the HTTP handler threads call `watching`, `next_picture`; one thread receives."""

    def __init__(self, zctx: zmq.Context, address: str, tap_target: str,
                 command: Callable[..., Any]) -> None:
        self.tap_target = tap_target
        self.command = command  # CommandHub.call
        self.sock = zctx.socket(zmq.PULL)
        self.sock.setsockopt(zmq.RCVHWM, RECV_HWM)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.bind(address)
        self.address = self.sock.getsockopt_string(zmq.LAST_ENDPOINT)  # a tcp port 0 resolved
        self.cond = threading.Condition()
        self.latest: dict[str, Picture] = {}
        self.watchers: dict[int, tuple[str, Watch]] = {}
        self.next_id = 0
        self.seq = 0
        self.push_lock = threading.Lock()
        self.closed = False
        self.thread = threading.Thread(target=self._run, name="streamyolox-wall", daemon=True)
        self.thread.start()

    def on_hello(self, hello: Hello) -> None:
        """The tap's process (re)started: tell it again what is watched."""
        if self.tap_target in hello.targets:
            self.push()

    # -- watchers ------------------------------------------------------------------------------------
    def wanted(self) -> dict[str, dict[str, Any]]:
        """Per watched stream: the largest width and fps its clients asked for."""
        out: dict[str, dict[str, Any]] = {}
        with self.cond:
            for stream, w in self.watchers.values():
                cur = out.setdefault(stream, {"width": w.width, "fps": w.fps})
                cur["width"], cur["fps"] = max(cur["width"], w.width), max(cur["fps"], w.fps)
        return out

    def push(self) -> None:
        """Send the watched set to the tap (serialised, so an older set never lands after a newer one)."""
        with self.push_lock:
            try:
                self.command(self.tap_target, "watch", {"streams": self.wanted()}, timeout_s=3.0)
            except Exception as exc:  # the tap restarts or ended; its Hello pushes again
                log.debug("wall: could not reach the tap: %s", exc)

    def watch(self, stream: str, watch: Watch) -> int:
        """Count a client in (WallFull beyond MAX_CLIENTS clients or MAX_WATCHED streams: each client holds
        a server thread, each stream an encoder's frame)."""
        with self.cond:
            streams = {s for s, _ in self.watchers.values()} | {stream}
            if len(self.watchers) >= MAX_CLIENTS or len(streams) > MAX_WATCHED:
                raise WallFull(f"the wall serves at most {MAX_CLIENTS} pictures of {MAX_WATCHED} streams at once")
            self.next_id += 1
            self.watchers[self.next_id] = (stream, watch)
            key = self.next_id
        self.push()
        return key

    def unwatch(self, key: int) -> None:
        with self.cond:
            stream, _ = self.watchers.pop(key)
            if all(s != stream for s, _ in self.watchers.values()):
                self.latest.pop(stream, None)
        self.push()

    def next_picture(self, stream: str, after: int, timeout_s: float) -> Picture | None:
        """The stream's newest picture if newer than `after`, waiting up to `timeout_s` for one."""
        deadline = time.monotonic() + timeout_s
        with self.cond:
            while not self.closed:
                pic = self.latest.get(stream)
                if pic is not None and pic.seq > after:
                    return pic
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(left)
        return None

    def mjpeg(self, stream: str, watch: Watch, alive: Callable[[], bool]) -> Iterator[bytes]:
        """The parts of a multipart/x-mixed-replace response, while the stream is watched and `alive()`.
        The client is counted in now (WallFull before any response is sent), out when the parts end."""
        return self._parts(stream, self.watch(stream, watch), alive)

    def _parts(self, stream: str, key: int, alive: Callable[[], bool]) -> Iterator[bytes]:
        try:
            seq = 0
            while not self.closed:
                pic = self.next_picture(stream, seq, 1.0)
                if pic is None:
                    if not alive():  # the stream was removed (or retired): end the response
                        return
                    continue
                seq = pic.seq
                yield (f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(pic.jpeg)}\r\n"
                       f"X-Frame: {pic.header.get('frame')}\r\n\r\n").encode() + pic.jpeg + b"\r\n"
        finally:
            self.unwatch(key)

    def stats(self) -> dict[str, Any]:
        with self.cond:
            clients: dict[str, int] = {}
            for stream, _ in self.watchers.values():
                clients[stream] = clients.get(stream, 0) + 1
            latest = {s: {"seq": p.seq, **p.header} for s, p in self.latest.items()}
        try:
            tap = self.command(self.tap_target, "stats", {}, timeout_s=2.0)
        except Exception as exc:  # shown as such
            tap = {"error": f"{type(exc).__name__}: {exc}"}
        return {"tap": tap, "clients": clients, "latest": latest}

    # -- receiver thread -----------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            while not self.closed:
                if not self.sock.poll(200):
                    continue
                stream_b, header_b, jpeg = self.sock.recv_multipart()
                stream = stream_b.decode()
                with self.cond:
                    if all(s != stream for s, _ in self.watchers.values()):
                        continue  # nobody watches it any more
                    self.seq += 1
                    self.latest[stream] = Picture(self.seq, jpeg, json.loads(header_b))
                    self.cond.notify_all()
        finally:
            self.sock.close(linger=0)

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()
        self.thread.join(2)
