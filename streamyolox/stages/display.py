"""`display` sink: the annotated stream in an OpenCV window with its FPS; `q` or Esc ends the run.

One window per stream. Closing the window or pressing `q`/Esc raises `StopPipeline`, which the runtime
treats as a clean stop (sinks flushed, exit 0). Without a display (no $DISPLAY, an X server that does not
answer, or an OpenCV build without GUI) it fails at open() with one line, before any frame is decoded.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import time
from dataclasses import dataclass
from typing import Any, ClassVar

import cv2
import numpy as np

from streamyolox.analytics.events import is_end_of_stream
from streamyolox.config_fields import ranged
from streamyolox.draw import DrawStyle, annotate, put_label
from streamyolox.stages.base import Stage, StageConfig, StopPipeline
from streamyolox.stages.packet import Packet

_QUIT_KEYS = (ord("q"), ord("Q"), 27)  # q, Q, Esc
_FPS_BG = (40, 40, 40)


@dataclass
class DisplayConfig(StageConfig):
    """title: window title; max_width: wider frames are scaled down to it (0: never); show_fps: overlay
    the displayed frames per second; draw: draw the detections."""

    title: str = "streamyolox"
    max_width: int = ranged(1280, ge=0)
    show_fps: bool = True
    draw: bool = True


def x_display_error(display: str | None) -> str | None:
    """Why X display `display` cannot be used (None: it answers). Checked before OpenCV/Qt touches it,
    because Qt aborts the whole process when it cannot connect."""
    if not display:
        return "no display ($DISPLAY is not set); use the mp4 or zmq sink on a headless machine"
    host, _, rest = display.rpartition(":")
    number = rest.split(".")[0]
    if not number.isdigit():
        return f"cannot parse $DISPLAY={display!r}"
    try:
        if host in ("", "unix"):
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(2)
                s.connect(f"/tmp/.X11-unix/X{number}")
        else:
            socket.create_connection((host, 6000 + int(number)), timeout=2).close()
    except OSError as exc:
        return f"cannot open display {display!r}: {exc.strerror or exc}"
    return None


def pyav_xcb_clash() -> bool:
    """True when PyAV's bundled xcb libraries are loaded in this process: they share file names with
    the ones OpenCV's Qt plugin needs but link another libxcb, and Qt then hangs creating a window."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            return any("av.libs/libxcb" in line for line in maps)
    except OSError:  # not Linux: no such clash
        return False


class FpsMeter:
    """Frames per second from an exponential moving average of the time between frames."""

    def __init__(self, smoothing: float = 0.9) -> None:
        self.smoothing = smoothing
        self.last: float | None = None
        self.interval: float | None = None

    def tick(self, now: float) -> float | None:
        if self.last is not None:
            dt = max(now - self.last, 1e-6)
            self.interval = dt if self.interval is None else self.smoothing * self.interval + (1 - self.smoothing) * dt
        self.last = now
        return None if self.interval is None else 1.0 / self.interval


class DisplaySink(Stage):
    """Shows each frame, annotated, in a window per stream."""

    kind: ClassVar[str] = "display"
    Config: ClassVar[type[StageConfig]] = DisplayConfig
    is_sink: ClassVar[bool] = True
    spawned: ClassVar[bool] = True  # not forked from the forkserver: it has PyAV (and its xcb) loaded
    description: ClassVar[str] = "live OpenCV window with boxes and FPS; q/Esc stops the run"

    def __init__(self, config: Any, ctx: Any) -> None:
        super().__init__(config, ctx)
        self.windows: dict[str, str] = {}
        self.meters: dict[str, FpsMeter] = {}

    def open(self) -> None:
        if sys.platform.startswith("linux") and not os.environ.get("WAYLAND_DISPLAY"):
            reason = x_display_error(os.environ.get("DISPLAY"))
            if reason:
                raise RuntimeError(f"display sink: {reason}")
            if pyav_xcb_clash():
                raise RuntimeError("display sink: PyAV is loaded in this process and its xcb libraries clash "
                                   "with OpenCV's window system; run display in a worker without decode/mp4")
        try:
            cv2.namedWindow(self.config.title, cv2.WINDOW_AUTOSIZE | cv2.WINDOW_GUI_NORMAL)
        except cv2.error as exc:
            raise RuntimeError("display sink: this OpenCV build has no GUI (opencv-python-headless?); "
                               f"install opencv-python ({str(exc).strip().splitlines()[-1]})") from exc
        self.windows[""] = self.config.title  # claimed by the first stream

    def _window(self, stream: str) -> str:
        if stream not in self.windows:
            if "" in self.windows:
                self.windows[stream] = self.windows.pop("")
            else:
                self.windows[stream] = f"{self.config.title} [{stream}]"
                cv2.namedWindow(self.windows[stream], cv2.WINDOW_AUTOSIZE | cv2.WINDOW_GUI_NORMAL)
            self.meters[stream] = FpsMeter()
        return self.windows[stream]

    def render(self, packet: Packet) -> np.ndarray:
        """The image shown for `packet`: annotated, scaled to max_width, FPS in the top-left corner."""
        cfg: DisplayConfig = self.config
        image = packet.frame
        if image is None:
            raise ValueError(f"display sink {self.ctx.stage_id!r}: packet has no frame (place it downstream of decode)")
        image = annotate(image, packet.detections) if cfg.draw else image.copy()
        h, w = image.shape[:2]
        if cfg.max_width and w > cfg.max_width:
            image = cv2.resize(image, (cfg.max_width, round(h * cfg.max_width / w)), interpolation=cv2.INTER_AREA)
        fps = self.meters[packet.meta.stream].tick(time.monotonic()) if packet.meta.stream in self.meters else None
        if cfg.show_fps and fps is not None:
            style = DrawStyle.for_frame(*image.shape[:2])
            put_label(image, f"{fps:.1f} FPS", (0, 0), _FPS_BG, style)
        return image

    def process(self, packet: Packet) -> list[Packet]:
        if is_end_of_stream(packet.meta.extra):  # a count stage's last events: no frame to show
            return []
        window = self._window(packet.meta.stream)
        cv2.imshow(window, self.render(packet))
        key = cv2.waitKey(1) & 0xFF  # also runs the GUI event loop
        if key in _QUIT_KEYS:
            raise StopPipeline(f"display: {'Esc' if key == 27 else chr(key)} pressed in {window!r}")
        if cv2.getWindowProperty(window, cv2.WND_PROP_VISIBLE) < 1:
            raise StopPipeline(f"display: window {window!r} closed")
        self.ctx.count("shown")
        return []

    def close(self) -> list[Packet]:
        for window in self.windows.values():
            with contextlib.suppress(cv2.error):  # already closed by the user
                cv2.destroyWindow(window)
        if self.windows:
            cv2.waitKey(1)  # let the GUI process the destroy events
        self.windows.clear()
        return []
