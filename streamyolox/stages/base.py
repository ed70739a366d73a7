"""The stage interface: `open`, `process` (or `generate` for sources), `close`.

A stage is a plain class with a typed `Config` dataclass for its YAML options. It knows nothing about
sockets or processes: the runner (`streamyolox.graph.runner`) feeds it packets; in tests,
`streamyolox.stages.testing.run_stage` does, with a mock context.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

from streamyolox.config_fields import check_ranges
from streamyolox.model.spec import ModelSpec
from streamyolox.stages.packet import Packet


class StopPipeline(Exception):
    """Raised by a stage to end the whole run cleanly (e.g. `q` in the display window): exit 0, sinks flushed."""


@dataclass
class StageConfig:
    """Base of every stage's options dataclass (fields = YAML options, with types and defaults).

    A field declared with `streamyolox.config_fields.ranged(default, ge=..., le=...)` is range-checked here; a
    subclass with its own `__post_init__` calls `super().__post_init__()` and raises `ValueError` as
    `option: why` (the loader shows it as `stages.<id>.option: why`)."""

    def __post_init__(self) -> None:
        check_ranges(self)


@dataclass
class StageContext:
    """What the runtime gives a stage: its id, the pipeline's model block, a logger and metric hooks."""

    stage_id: str
    model: ModelSpec | None = None
    pipeline: str = "pipeline"
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("streamyolox.stage"))
    should_stop: Callable[[], bool] = lambda: False
    replicas: int = 1  # how many copies of this stage run side by side (data parallel), this one included
    restarts: int = 0  # times this stage's process was restarted (`restart: on-failure`): a sink appends
    counters: dict[str, float] = field(default_factory=dict)

    def count(self, name: str, n: float = 1) -> None:
        """Add `n` to the stage counter `name` (reported in metrics: e.g. `reconnects`, `dropped`)."""
        self.counters[name] = self.counters.get(name, 0) + n

    def set_value(self, name: str, value: float) -> None:
        """Set the stage gauge `name` (reported in metrics)."""
        self.counters[name] = value


class Stage:
    """Base class of all stages.

    Subclasses set `kind`, `Config`, and implement `process` (or `generate` for a source, `is_source = True`).
    `max_batch` > 1 makes the runner hand `process_batch` up to that many packets, waiting at most
    `max_wait_ms` for the batch to fill. `lanes` > 1 keeps that many calls in flight at once, each on its own
    thread, outputs sent in input order (`streamyolox.graph.lanes`): `process` must then be thread-safe.
    """

    kind: ClassVar[str] = ""
    Config: ClassVar[type[StageConfig]] = StageConfig
    is_source: ClassVar[bool] = False
    is_sink: ClassVar[bool] = False
    # False for stages that keep per-stream state (a tracker, a counter): every frame of a stream must reach
    # one instance in order, so `replicas` > 1 is refused when the pipeline is validated.
    replicable: ClassVar[bool] = True
    # True: the stage's process is spawned afresh instead of forked from the run's preloaded forkserver
    # (`streamyolox.graph.forkserver`), for a stage that must not share the preloaded libraries (display:
    # PyAV's bundled xcb clashes with OpenCV's Qt window system).
    spawned: ClassVar[bool] = False
    description: ClassVar[str] = ""

    def __init__(self, config: Any, ctx: StageContext) -> None:
        self.config = config
        self.ctx = ctx
        self.max_batch = 1
        self.max_wait_ms = 0.0
        self.lanes = 1

    def open(self) -> None:
        """Acquire resources (files, models, windows). Raise with a one-line message on failure."""

    def process(self, packet: Packet) -> list[Packet]:
        """Handle one packet; return the packets to pass downstream (none, one or several)."""
        raise TypeError(f"stage kind {self.kind!r} does not process packets (it is a source)")

    def process_batch(self, packets: list[Packet]) -> list[Packet]:
        """Handle several packets at once (batching stages override this)."""
        out: list[Packet] = []
        for p in packets:
            out.extend(self.process(p))
        return out

    def generate(self) -> Iterator[Packet]:
        """Sources: yield packets until the input ends or `ctx.should_stop()` is true."""
        raise TypeError(f"stage kind {self.kind!r} is not a source: it has no generate()")

    def close(self) -> list[Packet]:
        """Flush and release resources; may return final packets (end of stream follows them)."""
        return []
