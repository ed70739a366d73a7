"""Default placement: which stages share a process, how many threads each process gets, what a frame carries.

Decided once, before the run starts, on the validated spec (`place`), for the stages the user left to the
runtime. An explicit `worker:` always wins, and so does a stage's `threads:`.

- **Cheap stages join their neighbour's process.** A `letterbox` fed by one `decode` runs in the decoder's
  process; `nms`, `track` and `count` run with the light sinks they feed (`json`, `zmq`, `mqtt`), so the
  demo's 5 processes become 3 (decode+letterbox, the detector, nms+json). An edge inside a process hands
  the packet object over (no shared-memory copy, no pickled header, no second interpreter with numpy, cv2
  and zmq loaded): on the 2-core AMD EPYC machine the 720p demo started 2-3 s sooner and used ~40% less
  memory (benchmarks/README.md). The detector, `mp4` (encoding) and `display` (a GUI loop) keep their own
  process: they are the stages that take whole milliseconds per frame.
- Only stages that behave alike are grouped: no `worker`, `listen`, `replicas` or multi-process source, the
  same `restart` (`never`: a stage that asked for `on-failure` keeps a process of its own, so a restart
  loses only its own frames and a restarted file source resumes as before), no `threads` of their own,
  and both on the same host under `--only`.
- **Threads**: every process but the detector's gets 1 intra-op thread (cv2, BLAS, OpenMP, numba) and a
  decoder with `threads: 0` (FFmpeg's choice) decodes on 1 thread on machines of up to 4 cores. The
  detector keeps its own rule (all cores but one, shared among its replicas), so decode, inference and
  the rest do not oversubscribe the cores.
- **Frames**: a `letterbox` whose downstream stages never read `packet.frame` (no `mp4`, `display`,
  `zmq` thumbnail or user stage) drops the full frame once the model input is made, so a JSON-only
  pipeline ships 0.5 MB (the 416x416 input, uint8) instead of 2.7 MB (720p) plus 2 MB (float32) over the
  detector's edge; a letterbox that feeds only CPU `yolox` stages hands them uint8 (the model converts to
  float32 itself: the values are integers either way, so detections are equal).
- **Pixels**: a `decode` whose consumers are all such CPU letterboxes in its own process hands them the
  decoder's YUV 4:2:0 planes (`pixel_format: auto` -> yuv420p) and the letterbox converts only the model
  input to BGR: 2.1 -> 0.6 core-ms a 720p frame on the 2-core AMD EPYC (`streamyolox.ops.yuv`). Any other
  consumer, a GPU letterbox or a frame kept for later stages makes it bgr24, the official pixels.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Collection

from streamyolox.graph.spec import PipelineSpec, StageSpec

# Stages that take well under a millisecond per frame and block on nothing: they may share a process.
POST_KINDS = frozenset({"nms", "track", "count"})
LIGHT_SINKS = frozenset({"json", "zmq", "mqtt"})
# Kinds known not to read `packet.frame` (user stages may: they keep it).
FRAME_FREE = frozenset({"yolox", "nms", "track", "count", "json", "mqtt"})
ONE_THREAD_KINDS = frozenset({"decode", "letterbox"}) | POST_KINDS | LIGHT_SINKS
SMALL_MACHINE_CORES = 4  # up to this many cores, FFmpeg's own thread choice oversubscribes them
log = logging.getLogger("streamyolox.run")


def _groupable(s: StageSpec) -> bool:
    return (s.worker is None and s.listen is None and s.replicas == 1 and s.restart == "never"
            and s.threads is None and int(getattr(s.options, "processes", 1) or 1) == 1)


def _fuses(src: StageSpec, dst: StageSpec) -> bool:
    """Whether the edge src -> dst should stay inside one process."""
    if len(dst.inputs) != 1:
        return False
    if dst.kind == "letterbox" and src.kind == "decode":
        return True
    return src.kind in POST_KINDS and dst.kind in POST_KINDS | LIGHT_SINKS


def groups(spec: PipelineSpec, local: Collection[str] | None = None) -> list[list[str]]:
    """Stage ids that should share one process (groups of two or more), in stage order."""
    local = set(spec.stages) if local is None else set(local)
    parent = {sid: sid for sid in spec.stages}

    def root(sid: str) -> str:
        while parent[sid] != sid:
            sid = parent[sid]
        return sid

    for src, dst in spec.edges():
        a, b = spec.stages[src], spec.stages[dst]
        if _groupable(a) and _groupable(b) and (src in local) == (dst in local) and _fuses(a, b):
            parent[root(dst)] = root(src)
    found: dict[str, list[str]] = {}
    for sid in spec.stages:
        found.setdefault(root(sid), []).append(sid)
    return [ids for ids in found.values() if len(ids) > 1]


def needs_frame(spec: PipelineSpec, stage_id: str) -> bool:
    """Whether any stage downstream of `stage_id` may read `packet.frame`."""
    seen: set[str] = set()
    todo = list(spec.consumers(stage_id))
    while todo:
        sid = todo.pop()
        if sid in seen:
            continue
        seen.add(sid)
        s = spec.stages[sid]
        if s.kind == "zmq" and not getattr(s.options, "thumbnail", False):
            pass
        elif s.kind not in FRAME_FREE:
            return True
        todo.extend(spec.consumers(sid))
    return False


def _letterbox_options(spec: PipelineSpec, s: StageSpec, keep_frames: bool) -> StageSpec:
    """Resolve a letterbox's `keep_frame` / `dtype` left to the runtime."""
    opts = s.options
    changes: dict[str, object] = {}
    if getattr(opts, "keep_frame", True) is None:
        changes["keep_frame"] = keep_frames or needs_frame(spec, s.id)
    if getattr(opts, "dtype", None) == "auto":
        device = opts.device if opts.device != "auto" else spec.model.device  # type: ignore[attr-defined]
        consumers = [spec.stages[c] for c in spec.consumers(s.id)]
        cpu_model = all(c.kind == "yolox" for c in consumers) and bool(consumers) and device == "cpu"
        changes["dtype"] = "uint8" if cpu_model else "float32"
    return dataclasses.replace(s, options=dataclasses.replace(opts, **changes)) if changes else s


def yuv_refusal(spec: PipelineSpec, stage_id: str) -> str | None:
    """Why the consumers of decode stage `stage_id` cannot take YUV planes instead of BGR frames (None: they
    can): each must be a letterbox on the CPU whose frame no stage after it reads."""
    consumers = spec.consumers(stage_id)
    if not consumers:
        return "it has no consumer"
    for c in consumers:
        s = spec.stages[c]
        if s.kind != "letterbox":
            return f"stages.{c} ({s.kind}) reads BGR frames"
        opts = s.options
        device = opts.device if opts.device != "auto" else spec.model.device  # type: ignore[attr-defined]
        if device != "cpu":
            return f"stages.{c} letterboxes on {device}"
        keep = opts.keep_frame  # type: ignore[attr-defined]
        if keep or (keep is None and needs_frame(spec, c)):
            return f"stages.{c} keeps the frame for the stages after it"
    return None


def _pixel_format(spec: PipelineSpec, s: StageSpec) -> StageSpec:
    """Resolve a decode's `pixel_format: auto` on the placed spec: yuv420p where its letterboxes share its
    process and take planes, else bgr24."""
    together = s.worker is not None and all(spec.stages[c].worker == s.worker for c in spec.consumers(s.id))
    fmt = "yuv420p" if together and yuv_refusal(spec, s.id) is None else "bgr24"
    return dataclasses.replace(s, options=dataclasses.replace(s.options, **{"pixel_format": fmt}))


def _one_thread(s: StageSpec, cores: int) -> StageSpec:
    """A non-inference stage: 1 intra-op thread; a decoder on a small machine also decodes on 1 thread."""
    opts = s.options
    if s.kind == "decode" and getattr(opts, "threads", None) == 0 and cores <= SMALL_MACHINE_CORES:
        opts = dataclasses.replace(opts, **{"threads": 1})  # DecodeConfig's FFmpeg threads
    return dataclasses.replace(s, threads=1, options=opts)


def place(spec: PipelineSpec, local: Collection[str] | None = None, cores: int | None = None,
          keep_frames: bool = False) -> PipelineSpec:
    """`spec` with the default placement filled in (see the module doc); stages the user placed keep theirs.

    `local`: the stages this host runs (`--only`); stages are grouped only with stages on the same side.
    `keep_frames`: frames must reach the end anyway (the camera wall, `--http`, shows them).
    """
    cores = cores or len(os.sched_getaffinity(0))
    stages = dict(spec.stages)
    for sid, s in stages.items():
        if s.kind == "letterbox":
            stages[sid] = _letterbox_options(spec, s, keep_frames)
    taken = {s.worker for s in spec.stages.values() if s.worker is not None} | set(spec.stages)
    for ids in groups(spec, local):
        name = "+".join(ids)
        while name in taken:  # a user worker of that name: never merge into it
            name += "_"
        taken.add(name)
        for sid in ids:
            stages[sid] = dataclasses.replace(stages[sid], worker=name)
        log.debug("placement: %s share one process (set worker: to place them yourself)", ", ".join(ids))
    placed = dataclasses.replace(spec, stages=dict(stages))
    for sid, s in placed.stages.items():
        if s.kind == "decode" and getattr(s.options, "pixel_format", None) == "auto":
            stages[sid] = _pixel_format(placed, s)
    processes: dict[str, list[str]] = {}
    for sid, s in stages.items():
        processes.setdefault(s.worker or sid, []).append(sid)
    for ids in processes.values():
        # not a process with the model (its thread rule holds for the whole process), a user stage (it may
        # want BLAS threads), an encoder or a window, nor one the user gave threads
        if all(stages[i].kind in ONE_THREAD_KINDS and stages[i].threads is None for i in ids):
            for sid in ids:
                stages[sid] = _one_thread(stages[sid], cores)
    return dataclasses.replace(spec, stages=stages)
