"""A mock context to unit-test a stage without sockets or processes."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from streamyolox.model.spec import ModelSpec
from streamyolox.stages.base import Stage, StageContext
from streamyolox.stages.packet import Packet


def make_stage(stage_cls: type[Stage], options: dict[str, Any] | None = None,
               model: ModelSpec | None = None, stage_id: str = "test") -> Stage:
    """Instantiate `stage_cls` with its `Config(**options)` and a mock context (not opened)."""
    config = stage_cls.Config(**(options or {}))
    return stage_cls(config, StageContext(stage_id=stage_id, model=model))


def run_stage(stage_cls: type[Stage], packets: Iterable[Packet] = (), options: dict[str, Any] | None = None,
              model: ModelSpec | None = None) -> list[Packet]:
    """open -> process every packet (or generate, for a source) -> close; returns all output packets."""
    stage = make_stage(stage_cls, options, model)
    stage.open()
    out: list[Packet] = []
    try:
        if stage.is_source:
            out.extend(stage.generate())
        else:
            for p in packets:
                out.extend(stage.process(p))
    finally:
        out.extend(stage.close())
    return out
