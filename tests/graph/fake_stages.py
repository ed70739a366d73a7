"""Test-only stages, loaded by import path (`kind: fake_stages:Synthetic`); tests/graph is on sys.path."""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np

from streamyolox.detections import Detections, FrameMeta
from streamyolox.stages.base import Stage, StageConfig
from streamyolox.stages.packet import Packet

SIZES = {"1080p": (1080, 1920), "720p": (720, 1280), "tiny": (48, 64)}


@dataclass
class SyntheticConfig(StageConfig):
    frames: int = 10
    size: Literal["1080p", "720p", "tiny"] = "tiny"
    fps: float = 0.0  # 0: as fast as possible
    stream: str = "syn"
    with_raw: bool = False


class Synthetic(Stage):
    """Yields `frames` frames whose pixels encode the frame index (frame[..., 0] == index % 251)."""

    kind = "fake_stages:Synthetic"
    Config = SyntheticConfig
    is_source = True
    description = "synthetic frames for tests"

    def generate(self) -> Iterator[Packet]:
        cfg: SyntheticConfig = self.config
        h, w = SIZES[cfg.size]
        for i in range(cfg.frames):
            if self.ctx.should_stop():
                return
            if cfg.fps:
                time.sleep(1.0 / cfg.fps)
            frame = np.full((h, w, 3), i % 251, np.uint8)
            raw = np.full((4, 6), float(i), np.float32) if cfg.with_raw else None
            meta = FrameMeta(stream=cfg.stream, frame=i, pts=i / 30, time=time.time(), width=w, height=h)
            yield Packet(meta=meta, frame=frame, raw=raw)


@dataclass
class PassConfig(StageConfig):
    sleep_ms: float = 0.0
    fail_on: int | None = None
    tag: str = ""
    batch: int = 1
    wait_ms: float = 20.0
    threads: int | None = None
    pid_file: str | None = None  # written on open, so a test can kill this stage's process
    jitter_ms: float = 0.0  # plus a random sleep in [0, jitter_ms) per packet
    skip_every: int = 0  # frames whose index is a multiple of this give no output (a filtering stage)
    check_pixels: bool = True  # Synthetic frames encode their index; off for real video
    lanes: int = 1  # calls in flight at once (streamyolox.graph.lanes)


class Passthrough(Stage):
    """Checks pixel integrity, optionally sleeps, raises on frame `fail_on`, appends `tag` to extra['path']."""

    kind = "fake_stages:Passthrough"
    Config = PassConfig
    description = "test passthrough"

    def __init__(self, config: PassConfig, ctx) -> None:
        super().__init__(config, ctx)
        self.max_batch = config.batch
        self.max_wait_ms = config.wait_ms
        self.lanes = config.lanes
        self._inside = 0
        self._lock = threading.Lock()

    def open(self) -> None:
        if self.config.pid_file:
            with open(self.config.pid_file, "a", encoding="utf-8") as f:
                f.write(f"{os.getpid()}\n")

    def process(self, packet: Packet) -> list[Packet]:
        cfg: PassConfig = self.config
        if cfg.fail_on is not None and packet.meta.frame == cfg.fail_on:
            raise ValueError(f"boom at {packet.meta.frame}")
        if cfg.check_pixels and packet.frame is not None and int(packet.frame[-1, -1, 0]) != packet.meta.frame % 251:
            raise AssertionError(f"corrupt pixels in frame {packet.meta.frame}")
        with self._lock:
            self._inside += 1
            packet.extra["in_flight"] = self._inside  # calls of this stage running now, this one included
        try:
            if cfg.sleep_ms or cfg.jitter_ms:
                time.sleep((cfg.sleep_ms + random.uniform(0, cfg.jitter_ms)) / 1000)
        finally:
            with self._lock:
                self._inside -= 1
        if cfg.skip_every and packet.meta.frame % cfg.skip_every == 0:
            return []
        packet.extra["path"] = [*packet.extra.get("path", []), cfg.tag or self.ctx.stage_id]
        packet.extra.setdefault("threads", os.environ.get("OMP_NUM_THREADS"))
        self.ctx.count("seen")
        return [packet]

    def process_batch(self, packets: list[Packet]) -> list[Packet]:
        for p in packets:
            p.extra["batch"] = len(packets)
        return super().process_batch(packets)


@dataclass
class CollectConfig(StageConfig):
    path: str


class Collect(Stage):
    """Sink writing one JSON line per packet (flushed per line, so a killed run keeps what it wrote)."""

    kind = "fake_stages:Collect"
    Config = CollectConfig
    is_sink = True
    description = "test sink"

    def open(self) -> None:  # a restarted one adds to what it wrote before
        self.file = open(self.config.path, "a" if self.ctx.restarts else "w", encoding="utf-8")  # noqa: SIM115

    def process(self, packet: Packet) -> list[Packet]:
        rec = packet.meta.to_json()
        rec["extra"] = packet.extra
        rec["age"] = time.time() - packet.meta.time
        rec["has_frame"] = packet.frame is not None
        rec["raw_sum"] = None if packet.raw is None else float(np.asarray(packet.raw).sum())
        rec["detections"] = [] if packet.detections is None else packet.detections.to_json()
        self.file.write(json.dumps(rec) + "\n")
        self.file.flush()
        return []

    def close(self) -> list[Packet]:
        self.file.write(json.dumps({"closed": True}) + "\n")
        self.file.close()
        return []


class Detect(Stage):
    """Attaches one fake detection (exercises inline Detections on the wire)."""

    kind = "fake_stages:Detect"
    Config = StageConfig

    def process(self, packet: Packet) -> list[Packet]:
        f = float(packet.meta.frame)
        packet.detections = Detections(np.array([[f, 1, f + 10, 11]], np.float32), [0.5], [16])
        return [packet]
