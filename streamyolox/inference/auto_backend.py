"""`backend: auto` on the CPU: onnxruntime or OpenVINO, whichever is faster here, measured once.

At first use both backends run the real export at the stage's batch size and thread count, interleaved
(one timed step of each per round, so a burst of load from another process hits both alike; a step is
`concurrency` calls at once, as the stage keeps them in flight), for
`ROUNDS` warm rounds or `BUDGET_S`, whichever ends first (a big model at batch 8 would otherwise take
minutes). The faster median wins. The choice is stored in the cache under a key of everything that can
change the answer: weights content, model name, input size, batch, threads, spinning, concurrency, the CPU
(its name with family, model, stepping and feature flags: one name covered CPUs 3x apart here), core count,
and the onnxruntime / OpenVINO / project versions, so later runs and other replicas read it instead
of measuring again.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

import streamyolox
from streamyolox.inference.export_cache import cache_dir, file_lock
from streamyolox.inference.openvino_backend import openvino_version

log = logging.getLogger("streamyolox.inference")

ROUNDS = 20
WARMUP = 3
BUDGET_S = 6.0
MIN_ROUNDS = 3


@dataclass(frozen=True)
class ChoiceKey:
    """Everything the faster backend depends on."""

    weights_sha256: str
    model: str
    input_size: tuple[int, int]
    batch: int
    threads: int | None
    spin: bool
    concurrency: int
    cpu: str
    cores: int
    onnxruntime: str
    openvino: str
    streamyolox: str

    @classmethod
    def here(cls, digest: str, model: str, size: tuple[int, int], batch: int, threads: int | None,
             spin: bool, concurrency: int = 1) -> ChoiceKey:
        from streamyolox.bench.machine import cpu_id, cpu_model  # the CPU as the benchmarks record it

        return cls(digest, model, (int(size[0]), int(size[1])), int(batch), threads, bool(spin), int(concurrency),
                   f"{cpu_model()} ({cpu_id()})", len(os.sched_getaffinity(0)), importlib.metadata.version("onnxruntime"),
                   openvino_version() or "-", streamyolox.__version__)

    def file(self) -> Path:
        text = json.dumps(asdict(self), sort_keys=True)
        return cache_dir("backend-choice") / f"{hashlib.sha256(text.encode()).hexdigest()[:24]}.json"


def interleaved_fps(calls: dict[str, Callable[[], Any]], batch: int, rounds: int = ROUNDS,
                    budget_s: float = BUDGET_S) -> dict[str, float]:
    """Frames/s at the median call of each callable, timed in alternation.

    Hand-written rather than `bench.harness.measure`: that one times one callable at a time, with an RSS
    sampler thread, and has no time cap.
    """
    for _ in range(WARMUP):
        for fn in calls.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in calls}
    start = time.perf_counter()
    for i in range(rounds):
        if i >= MIN_ROUNDS and time.perf_counter() - start > budget_s:
            break
        for name, fn in calls.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: batch / float(np.median(t)) for name, t in times.items()}


def _read(path: Path) -> dict[str, Any] | None:
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("choice") in ("onnxruntime", "openvino") else None


def _write(path: Path, record: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(record, indent=1))
    tmp.replace(path)  # atomic: a replica reading at the same time sees the whole record or none


def choose(key: ChoiceKey, build: Callable[[str], Callable[[np.ndarray], Any]]) -> str:
    """The faster of onnxruntime and OpenVINO for `key`: read from the cache, else measured and stored.

    `build(name)` returns that backend's forward; it is called only when measuring.
    """
    path = key.file()
    record = _read(path)
    if record is None:
        # replicas starting together: one measures (without a twin competing for the cores), the rest read
        with file_lock(path.with_name(path.name + ".lock")):
            record = _read(path)
            if record is None:
                return str(_measure(key, build, path)["choice"])
    log.info("model.backend auto: %s (measured earlier: %s; %s)", record["choice"], _fps_text(record), path)
    return str(record["choice"])


def _measure(key: ChoiceKey, build: Callable[[str], Callable[[np.ndarray], Any]], path: Path) -> dict[str, Any]:
    size = key.input_size
    x = np.random.default_rng(0).integers(0, 256, size=(key.batch, 3, size[0], size[1])).astype(np.float32)
    forwards = {name: build(name) for name in ("onnxruntime", "openvino")}
    with ThreadPoolExecutor(key.concurrency, thread_name_prefix="auto-backend") as pool:
        calls = {name: _in_flight(f, x, key.concurrency, pool) for name, f in forwards.items()}
        fps = interleaved_fps(calls, key.batch * key.concurrency)
    choice = max(fps, key=lambda name: fps[name])
    record = {"choice": choice, "fps": {k: round(v, 2) for k, v in fps.items()}, "key": asdict(key)}
    _write(path, record)
    log.info("model.backend auto: %s, measured at batch %d, %s threads: %s (cached in %s)", choice, key.batch,
             key.threads or "default", _fps_text(record), path)
    return record


def _in_flight(forward: Callable[[np.ndarray], Any], x: np.ndarray, concurrency: int,
               pool: ThreadPoolExecutor) -> Callable[[], Any]:
    """One timed call: `concurrency` calls of `forward` at once, as the stage keeps them in flight (OpenVINO's
    streams and onnxruntime's sessions scale differently with calls in parallel, so one call at a time would
    rank them for a load the stage does not make)."""
    if concurrency == 1:
        return functools.partial(forward, x)
    return lambda: [f.result() for f in [pool.submit(forward, x) for _ in range(concurrency)]]


def _fps_text(record: dict[str, Any]) -> str:
    return ", ".join(f"{name} {fps} frames/s" for name, fps in record.get("fps", {}).items())
