"""`json` sink: one JSON line per frame, to a file or stdout (`path: "-"`)."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from streamyolox.analytics.events import add_analytics
from streamyolox.config_fields import OptionError, output_path
from streamyolox.detections import frame_record
from streamyolox.stages.base import Stage, StageConfig
from streamyolox.stages.packet import Packet


@dataclass
class JsonSinkConfig(StageConfig):
    """path: output file (`-` = stdout); append: add to an existing file instead of replacing it."""

    path: str = output_path("-")
    append: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.path.strip():
            raise OptionError("path", "expected a file name or '-' (stdout), got ''")


class JsonSink(Stage):
    kind = "json"
    Config = JsonSinkConfig
    is_sink = True
    description = "JSON lines: {stream, frame, pts, time, width, height, detections} (+ events, counts)"

    def open(self) -> None:
        cfg: JsonSinkConfig = self.config
        if cfg.path == "-":
            self._out: TextIO = sys.stdout
            return
        path = Path(cfg.path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # line buffered: every record reaches the file as it is written, so a killed run loses nothing;
            # a restarted sink (restart: on-failure) adds to what its previous incarnation wrote
            self._out = open(path, "a" if cfg.append or self.ctx.restarts else "w",  # noqa: SIM115
                             buffering=1, encoding="utf-8")
        except OSError as exc:
            raise ValueError(f"json.path: cannot write {cfg.path!r}: {exc.strerror or exc}") from exc

    def process(self, packet: Packet) -> list[Packet]:
        record = add_analytics(frame_record(packet.meta, packet.detections), packet.events, packet.counts)
        self._out.write(json.dumps(record) + "\n")
        return []

    def close(self) -> list[Packet]:
        out = getattr(self, "_out", None)
        if out is not None:
            out.flush()
            if out is not sys.stdout:
                out.close()
        return []
