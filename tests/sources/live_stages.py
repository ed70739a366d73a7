"""Test stages for live-source pipelines: a stage slower than the camera, and a sink that records frame age."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from streamyolox.stages.base import Stage, StageConfig
from streamyolox.stages.packet import Packet


@dataclass
class SleepConfig(StageConfig):
    sleep_ms: float = 100.0


class Sleep(Stage):
    """Passes packets on after sleeping `sleep_ms` each: a detector slower than the source."""

    kind = "live_stages:Sleep"
    Config = SleepConfig

    def process(self, packet: Packet) -> list[Packet]:
        time.sleep(self.config.sleep_ms / 1000)
        return [packet]


@dataclass
class AgeConfig(StageConfig):
    path: str = "ages.jsonl"


class AgeSink(Stage):
    """Writes `{"stream", "frame", "pts", "age"}` per packet: age = arrival wall clock - capture time."""

    kind = "live_stages:AgeSink"
    Config = AgeConfig
    is_sink = True

    def open(self) -> None:
        self.file = open(self.config.path, "w", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def process(self, packet: Packet) -> list[Packet]:
        m = packet.meta
        record = {"stream": m.stream, "frame": m.frame, "pts": m.pts, "age": time.time() - m.time}
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()
        return []

    def close(self) -> list[Packet]:
        self.file.close()
        return []
