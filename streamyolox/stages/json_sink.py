"""`json` sink: one JSON line per frame, to a file or stdout (`path: "-"`).

With `{stream}` in `path` (`out/{stream}.jsonl`) each stream gets its own file, opened on the stream's
first frame; without, every stream goes to one file (each line names its stream). Behind a `count` stage a
stream's last line may be `"end_of_stream": true` with the zone exits of the tracks still inside and no
detections (not a frame: its `frame` is the stream's last one).
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from streamyolox.analytics.events import END_OF_STREAM, add_analytics, is_end_of_stream
from streamyolox.config_fields import OptionError, output_path
from streamyolox.detections import frame_record
from streamyolox.stages.base import Stage, StageConfig
from streamyolox.stages.packet import Packet
from streamyolox.stages.stream_paths import PathTemplate, parse_path

# Per-stream files kept open at once; beyond, the least recently written is closed (and reopened to append
# when its stream writes again), so many streams, or streams added and removed for days, stay within the
# process's file limit.
MAX_OPEN_FILES = 64


def written_frames(path: Path) -> dict[str, int]:
    """The last frame index written per stream in the JSON-lines file `path` ({} when it does not exist),
    after cutting a last line that a killed writer left half written (appending to it would corrupt the
    next record). A full read, once per restart: a restarted sink whose upstream re-sends a file stream
    from its start (a lost Ray node restarts the whole shard) skips what the file already has."""
    last: dict[str, int] = {}
    try:
        with open(path, "rb+") as f:
            good = 0
            for line in f:
                if not line.endswith(b"\n"):
                    break
                good += len(line)
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue  # not ours to judge: kept as it is
                if isinstance(rec, dict) and isinstance(rec.get("frame"), int):
                    stream = str(rec.get("stream"))
                    last[stream] = max(last.get(stream, -1), rec["frame"])
            f.truncate(good)
    except FileNotFoundError:
        pass
    return last


@dataclass
class JsonSinkConfig(StageConfig):
    """path: output file (`-` = stdout; `{stream}` in it: one file per stream); append: add to existing
    files instead of replacing them."""

    path: str = output_path("-")
    append: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.path.strip():
            raise OptionError("path", "expected a file name or '-' (stdout), got ''")
        parse_path("path", self.path)


class JsonSink(Stage):
    kind = "json"
    Config = JsonSinkConfig
    is_sink = True
    description = ("JSON lines: {stream, frame, pts, time, width, height, detections} (+ events, counts); "
                   "`{stream}` in path: a file per stream")

    def open(self) -> None:
        cfg: JsonSinkConfig = self.config
        self._template: PathTemplate = parse_path("json.path", cfg.path)
        # file name -> open file (one for all when not templated), least recently written first
        self._files: dict[str, TextIO] = {}
        self._started: set[str] = set()  # per-stream files this run created (one name per stream seen)
        # a restarted sink: stream -> last frame its earlier incarnations wrote; a file frame at or before it
        # is skipped (a frame of a live stream never: its numbering starts again with its connection)
        self._written: dict[str, int] = {}
        if cfg.path == "-":
            self._files["-"] = sys.stdout
        elif not self._template.templated:
            self._open(cfg.path)  # at once: a run that fails to write fails before its first frame

    def _open(self, name: str) -> TextIO:
        cfg: JsonSinkConfig = self.config
        path = Path(name)
        # a file this run already wrote (closed to stay under MAX_OPEN_FILES) is continued
        again = name in self._started
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if self.ctx.restarts and not again and os.path.isfile(path):
                for stream, frame in written_frames(path).items():
                    self._written[stream] = max(self._written.get(stream, -1), frame)
            # line buffered: every record reaches the file as it is written, so a killed run loses nothing;
            # a restarted sink (restart: on-failure) adds to what its previous incarnation wrote
            out = open(path, "a" if cfg.append or self.ctx.restarts or again else "w",  # noqa: SIM115
                       buffering=1, encoding="utf-8")
        except OSError as exc:
            raise ValueError(f"json.path: cannot write {name!r}: {exc.strerror or exc}") from exc
        self._files[name] = out
        if self._template.templated and not again:
            self._started.add(name)
            self.ctx.log.info("json sink: writing %s", name)
        return out

    def _file_for(self, stream: str) -> TextIO:
        if not self._template.templated:
            return next(iter(self._files.values()))
        name = self._template.render(stream)
        out = self._files.pop(name, None)
        if out is not None:
            self._files[name] = out  # most recently used last
            return out
        if len(self._files) >= MAX_OPEN_FILES:  # the least recently written stream's file
            oldest = next(iter(self._files))
            self._files.pop(oldest).close()
        return self._open(name)

    def process(self, packet: Packet) -> list[Packet]:
        out = self._file_for(packet.meta.stream)
        meta = packet.meta
        if meta.frame <= self._written.get(meta.stream, -1) and not meta.extra.get("live") \
                and not is_end_of_stream(meta.extra):
            self.ctx.count("duplicates_skipped")  # already in the file from before the restart
            return []
        record = add_analytics(frame_record(packet.meta, packet.detections), packet.events, packet.counts)
        if is_end_of_stream(packet.meta.extra):  # a count stage's last events, not a frame
            record[END_OF_STREAM] = True
        out.write(json.dumps(record) + "\n")
        return []

    def close(self) -> list[Packet]:
        files, self._files = getattr(self, "_files", {}), {}
        for out in files.values():
            out.flush()
            if out is not sys.stdout:
                out.close()
        return []
