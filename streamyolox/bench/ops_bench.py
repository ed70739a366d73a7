"""`streamyolox bench ops`: letterbox, decode+NMS and frame transport, each against its reference or floor.

- letterbox: real 720p/1080p frames -> 416/640, the fast path (float32 and uint8 output) vs `letterbox_ref`
  (the official `preproc`, line for line).
- decode+NMS: decode + score filter + class-aware NMS on the real model's output for a real frame
  (3549 anchors at 416, 8400 at 640), the fast numpy path vs `postprocess_ref`.
- transport: 720p/1080p BGR frames over each edge kind, measured by the runtime's
  `benchmarks/transport_bench.py`, each vs its floor: a numpy memcpy of the same bytes.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from streamyolox.bench.harness import Result, measure

SUITE = "ops"
RESOLUTIONS = {"720p": (720, 1280), "1080p": (1080, 1920)}


@dataclass
class OpsBenchConfig:
    """`videos`: resolution label -> a video to take a real frame from (a synthetic frame when absent);
    `bare_onnx`: the official export used for real 416 model outputs; `weights`: for 640 outputs (torch);
    `transport_script`: the runtime's `benchmarks/transport_bench.py` (measures the ipc edge)."""

    videos: dict[str, Path | None]
    bare_onnx: Path | None = None
    weights: str | None = None
    model: str = "yolox-nano"
    sizes: Sequence[int] = (416, 640)
    transport_script: Path | None = None
    transport_frames: int = 500
    transport_repeats: int = 3
    slots: int = 8
    threads: int = 2
    repeats: int = 20
    warmup: int = 3


def real_frame(video: Path | None, label: str, index: int = 30) -> np.ndarray:
    """BGR uint8 frame `index` of `video` (PyAV), or a seeded noise frame of the label's size when absent."""
    if video is not None and Path(video).exists():
        import av

        with av.open(str(video)) as container:
            for i, frame in enumerate(container.decode(video=0)):
                if i >= index:
                    return frame.to_ndarray(format="bgr24")
    h, w = RESOLUTIONS[label]
    return np.random.default_rng(0).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def memcpy_floor(nbytes: int, repeats: int, warmup: int, name: str, buffers: int = 1) -> Result:
    """The floor of moving `nbytes`: `np.copyto` from one buffer into `buffers` preallocated destinations
    in turn (1: the same destination, cache-hot for frames that fit the L3; 8: like a ring of shared-memory
    slots, which mostly miss the cache)."""
    src = np.random.default_rng(0).integers(0, 256, size=nbytes, dtype=np.uint8)
    dsts = [np.empty_like(src) for _ in range(buffers)]
    turn = iter(range(1 << 62))
    timing = measure(lambda: np.copyto(dsts[next(turn) % buffers], src), repeats=max(repeats, 50), warmup=warmup)
    return Result.from_timing(SUITE, name, timing, params={"op": "memcpy", "bytes": nbytes, "buffers": buffers})


def bench_letterbox(frames: dict[str, np.ndarray], sizes: Sequence[int], repeats: int, warmup: int) -> list[Result]:
    from streamyolox.ops import letterbox, letterbox_ref

    out: list[Result] = []
    for label, frame in frames.items():
        for size in sizes:
            tag, hw = f"{label}->{size}", (size, size)
            ref = f"letterbox_ref {tag}"
            u8 = np.empty((3, size, size), np.uint8)
            cases: list[tuple[str, Callable[[], Any], str | None]] = [
                (ref, partial(letterbox_ref, frame, hw), None),
                (f"letterbox f32 {tag}", partial(letterbox, frame, hw), ref),
                (f"letterbox u8 {tag}", partial(letterbox, frame, hw, out=u8, dtype=np.uint8), ref),
            ]
            for name, fn, base in cases:
                timing = measure(fn, repeats=repeats, warmup=warmup)
                out.append(Result.from_timing(SUITE, name, timing, ref=base,
                                              params={"op": "letterbox", "source": label, "input_size": size}))
    return out


def model_raw_outputs(cfg: OpsBenchConfig, frame: np.ndarray) -> dict[int, np.ndarray]:
    """Undecoded model output [N, 85] on `frame` letterboxed to each size: onnxruntime on the official export
    at its size, our torch model for the others (skipped sizes are absent)."""
    from streamyolox.bench.model_bench import ort_forward, ort_session
    from streamyolox.ops import letterbox_ref

    raws: dict[int, np.ndarray] = {}
    if cfg.bare_onnx is not None and Path(cfg.bare_onnx).exists():
        session = ort_session(Path(cfg.bare_onnx), cfg.threads)
        size = int(session.get_inputs()[0].shape[2])
        if size in cfg.sizes:
            raws[size] = ort_forward(session)(letterbox_ref(frame, (size, size))[0][None])[0]
    missing = [s for s in cfg.sizes if s not in raws]
    if missing:
        import torch

        from streamyolox.weights import load_model

        model = load_model(cfg.weights, name=cfg.model, device="cpu").model.eval()
        for size in missing:
            x = torch.from_numpy(letterbox_ref(frame, (size, size))[0][None])
            with torch.inference_mode():
                raws[size] = model(x, decode=False)[0].numpy()
    return raws


def bench_decode_nms(cfg: OpsBenchConfig, frame: np.ndarray, ratio_of: Callable[[int], float]) -> list[Result]:
    from streamyolox.ops import decode_ref, postprocess
    from streamyolox.ops.decode import postprocess_ref

    out: list[Result] = []
    for size, raw in sorted(model_raw_outputs(cfg, frame).items()):
        hw, r = (size, size), ratio_of(size)
        anchors = raw.shape[0]
        n_dets = len(postprocess(decode_ref(raw, hw), r))
        params = {"op": "decode+nms", "anchors": anchors, "input_size": size, "detections": n_dets}
        ref = f"decode+nms ref {anchors}"
        for name, fn, base in (
            (ref, lambda raw=raw, hw=hw, r=r: postprocess_ref(decode_ref(raw, hw), r), None),
            (f"decode+nms {anchors}", lambda raw=raw, hw=hw, r=r: postprocess(decode_ref(raw, hw), r), ref),
        ):
            timing = measure(fn, repeats=cfg.repeats, warmup=cfg.warmup)
            out.append(Result.from_timing(SUITE, name, timing, params=params, ref=base))
    return out


def load_script(path: Path) -> ModuleType:
    """Import a benchmark script (not part of the package) by name from its folder, which joins
    `sys.path` so that processes it spawns can unpickle its functions too."""
    folder = str(Path(path).resolve().parent)
    if folder not in sys.path:
        sys.path.append(folder)
    return importlib.import_module(Path(path).stem)


def _edge_runners(script: Path | None) -> dict[str, Callable[..., dict[str, float]] | str]:
    """Edge kind -> fps function (frame, n, slots), or the reason it cannot run."""
    from streamyolox.bench.edges import inproc_fps, tcp_fps

    runners: dict[str, Callable[..., dict[str, float]] | str] = {"inproc": inproc_fps}
    if script is not None and Path(script).exists():
        runners["ipc"] = load_script(Path(script)).transport_fps
    else:
        runners["ipc"] = f"the runtime's transport benchmark {script} is not in this checkout"
    runners["tcp"] = tcp_fps
    return runners


def bench_transport(cfg: OpsBenchConfig, frames: dict[str, np.ndarray], log: Callable[[str], None]) -> list[Result]:
    """Each edge kind per resolution (median of `transport_repeats` runs) vs a memcpy of the frame."""
    runners = _edge_runners(cfg.transport_script)
    out: list[Result] = []
    for label, frame in frames.items():
        floor = memcpy_floor(frame.nbytes, cfg.repeats, cfg.warmup, f"memcpy {label}")
        ring = memcpy_floor(frame.nbytes, cfg.repeats, cfg.warmup, f"memcpy {label} {cfg.slots} buffers",
                            buffers=cfg.slots)
        ring.ref = floor.name
        out += [floor, ring]
        for kind, runner in runners.items():
            name = f"transport {kind} {label}"
            params = {"op": "transport", "edge": kind, "source": label, "bytes": frame.nbytes,
                      "frames": cfg.transport_frames, "slots": cfg.slots}
            if isinstance(runner, str):
                out.append(Result(SUITE, name, params=params, skipped=runner))
                continue
            log(f"ops: {name}")
            runs = [runner(frame, cfg.transport_frames, cfg.slots) for _ in range(cfg.transport_repeats)]
            fps = sorted(r["fps"] for r in runs)
            median = fps[len(fps) // 2]
            out.append(Result(SUITE, name, params=params, fps=median, p50_ms=1e3 / median, ref=floor.name,
                              extra={"fps_runs": fps, "send_fps": [r.get("send_fps") for r in runs]}))
    return out


def run_ops_bench(cfg: OpsBenchConfig, log: Callable[[str], None] = lambda s: None) -> list[Result]:
    """letterbox, decode+NMS, transport; rows carry `ref` to their reference or floor."""
    from streamyolox.ops import letterbox_ref

    frames = {label: real_frame(cfg.videos.get(label), label) for label in RESOLUTIONS}
    log("ops: letterbox")
    results = bench_letterbox(frames, cfg.sizes, cfg.repeats, cfg.warmup)
    log("ops: decode+nms")
    frame = frames["720p"]
    results += bench_decode_nms(cfg, frame, lambda s: letterbox_ref(frame, (s, s))[1])
    log("ops: transport")
    results += bench_transport(cfg, frames, log)
    return results
