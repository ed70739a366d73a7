"""Test-only stages for the command channel (`kind: command_stages:Controlled`); tests/graph is on sys.path."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from streamyolox.detections import FrameMeta
from streamyolox.sources.streams import StreamExists
from streamyolox.stages.base import Stage, StageConfig
from streamyolox.stages.packet import Packet


@dataclass
class ControlledConfig(StageConfig):
    fps: float = 50.0
    pid_file: str | None = None  # written on open, so a test can kill this stage's process
    frames: int = 0  # 0: until stopped


class Controlled(Stage):
    """A source of tiny frames, round robin over its streams, whose set is changed by commands."""

    kind = "command_stages:Controlled"
    Config = ControlledConfig
    is_source = True
    description = "a source controlled by commands (tests)"

    def open(self) -> None:
        self.lock = threading.Lock()
        self.streams: dict[str, int] = {"s0": 0}  # stream -> frames emitted
        if self.config.pid_file:
            with open(self.config.pid_file, "a", encoding="utf-8") as f:
                f.write(f"{os.getpid()}\n")

    def generate(self) -> Iterator[Packet]:
        i = 0
        while not self.ctx.should_stop() and (not self.config.frames or i < self.config.frames):
            time.sleep(1.0 / self.config.fps)
            with self.lock:
                names = sorted(self.streams)
            if not names:
                continue
            name = names[i % len(names)]
            with self.lock:
                if name not in self.streams:
                    continue
                n = self.streams[name]
                self.streams[name] = n + 1
            i += 1
            meta = FrameMeta(stream=name, frame=n, pts=n / 30, time=time.time(), width=8, height=6)
            yield Packet(meta=meta, frame=np.full((6, 8, 3), n % 251, np.uint8))

    # -- commands --------------------------------------------------------------------------------------
    def whoami(self, **kwargs: Any) -> dict[str, Any]:
        return {"pid": os.getpid(), "stage": self.ctx.stage_id, "restarts": self.ctx.restarts, "kwargs": kwargs}

    def add_stream(self, stream_id: str, options: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(options, dict) or "url" not in options:
            raise ValueError(f"streams.{stream_id}.url: required")
        with self.lock:
            if stream_id in self.streams:
                raise StreamExists(f"stream {stream_id!r} exists")
            self.streams[stream_id] = 0
        return {"id": stream_id, "state": "up", "frames": 0}

    def remove_stream(self, stream_id: str) -> dict[str, Any]:
        with self.lock:
            frames = self.streams.pop(stream_id)  # KeyError for an unknown id
        return {"id": stream_id, "state": "removed", "frames": frames}

    def streams_status(self) -> list[dict[str, Any]]:
        with self.lock:
            return [{"id": k, "state": "up", "frames": v} for k, v in self.streams.items()]

    def slow(self, seconds: float) -> float:
        time.sleep(seconds)
        return seconds

    def unpicklable(self) -> Any:
        return threading.Lock()

    def _private(self) -> str:
        return "never"
