"""Test stages for the Ray tests (`kind: ray_stages:StreamLines`); tests/ray is on sys.path (conftest)."""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from streamyolox.stages.base import Stage, StageConfig
from streamyolox.stages.packet import Packet


@dataclass
class StreamLinesConfig(StageConfig):
    path: str  # a folder template: "{stream}" is replaced by nothing; files are <folder>/<stream>.jsonl


class StreamLines(Stage):
    """One JSON line per frame into `<folder>/<stream>.jsonl`, flushed per line, with the pid and node that
    wrote it. A restarted one reads back what is in its files and skips those frames: the exactly-once
    contract a sink keeps across the loss of its node (it can read its own output)."""

    kind = "ray_stages:StreamLines"
    Config = StreamLinesConfig
    is_sink = True
    description = "test sink: per-stream JSON lines, idempotent after a restart"

    def open(self) -> None:
        self.folder = Path(self.config.path.replace("{stream}", "")).parent
        self.files: dict[str, TextIO] = {}
        self.last: dict[str, int] = {}
        if self.ctx.restarts:
            for f in self.folder.glob("*.jsonl"):
                frames = [r["frame"] for r in map(json.loads, f.read_text().splitlines()) if "frame" in r]
                if frames:
                    self.last[f.stem] = max(frames)

    def process(self, packet: Packet) -> list[Packet]:
        stream, frame = packet.meta.stream, packet.meta.frame
        if frame <= self.last.get(stream, -1):
            self.ctx.count("skipped_written")
            return []
        out = self.files.get(stream)
        if out is None:
            out = self.files[stream] = open(self.folder / f"{stream}.jsonl", "a", encoding="utf-8")  # noqa: SIM115
        out.write(json.dumps({"stream": stream, "frame": frame, "pid": os.getpid(),
                              "node": os.environ.get("RAY_NODE_NAME", socket.gethostname())}) + "\n")
        out.flush()
        self.last[stream] = frame
        return []

    def close(self) -> list[Packet]:
        for f in self.files.values():
            f.close()
        return []
