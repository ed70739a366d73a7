"""The authoritative stream set of each source replica whose streams changed while the pipeline runs.

A source process holds its streams in memory: the ones of its YAML, plus those added live, minus those
removed. When it dies and `restart: on-failure` starts it again, the runner starts it from its process
plan (`streamyolox.graph.worker.ProcessPlan`), which holds the stage's options as validated at start. So
after each live add or remove the plan of that replica is rewritten to the set it now reads: a restarted
source opens exactly that set (a removed stream stays removed, one added live is read again from its
first frame not yet delivered, a file that had ended is not reopened), before its first frame, with no
window in which it reads what it should not.
"""

from __future__ import annotations

import dataclasses
import threading
from typing import TYPE_CHECKING, Any

from streamyolox.graph import liveness
from streamyolox.graph.replicas import base_id
from streamyolox.stages.decode import DecodeConfig

if TYPE_CHECKING:
    from streamyolox.graph.runner import Supervisor
    from streamyolox.graph.spec import StageSpec
    from streamyolox.graph.worker import ProcessPlan


class StreamLedger:
    """Rewrites the process plans of source replicas (thread-safe; called by `StreamControl` under its lock
    right after the source confirmed the change)."""

    def __init__(self, sup: Supervisor) -> None:
        self.sup = sup
        self.lock = threading.Lock()

    def changed(self, replica: str, reading: list[str], added: dict[str, Any] | None = None) -> None:
        """`replica` now reads the streams `reading` (ids), `added` (id -> its POSTed options) among them."""
        with self.lock:
            found = self._plan_of(replica)
            if found is None:  # not a stage of this host (--only): nothing of ours restarts it
                return
            plan, index = found
            stage = plan.stages[index]
            if not isinstance(stage.options, DecodeConfig):  # only decode sources take streams live
                return
            raw = {**_raw_streams(stage), **(added or {})}
            streams = {sid: raw[sid] for sid in reading if sid in raw}
            options = dataclasses.replace(stage.options, url=None, stream=None, streams=streams,
                                          streams_file=None)
            new = dataclasses.replace(stage, options=options)
            stages = [*plan.stages[:index], new, *plan.stages[index + 1:]]
            spec = dataclasses.replace(self.sup.spec, stages={**self.sup.spec.stages, replica: new})
            # A source that got a file (or lost its last one) resumes after a restart (or no longer does):
            # its files skip what their consumers have, its live frames never are (liveness.resumable).
            plan.resumable = liveness.resumable(spec, [s.id for s in stages])
            plan.stages = stages  # one assignment: a restart starting meanwhile sees the old or the new list

    def _plan_of(self, replica: str) -> tuple[ProcessPlan, int] | None:
        for plan in self.sup.plans.values():
            for i, stage in enumerate(plan.stages):
                if stage.id == replica:
                    return plan, i
        return None


def _raw_streams(stage: StageSpec) -> dict[str, Any]:
    """Stream id -> url or options mapping, as the stage's options hold them now (a single `url`: its
    stream under its id, so that streams added beside it can be written as one `streams` mapping)."""
    options: DecodeConfig = stage.options  # type: ignore[assignment]  # checked by the caller
    if options.url is not None:
        return {options.stream or base_id(stage.id): options.url}
    return dict(options.raw_streams)
