"""The ONNX export cache: one export per (weights content, model name, input size, opset, project version).

Keyed by the sha256 of the weights file, not its path or mtime: a copy of the weights elsewhere, a second
replica or a later run reuse the export; a `touch` does not re-export; new content does. Everything here is
torch-free (hashlib, fcntl, os) so that an inference process that finds its export holds onnxruntime or
OpenVINO alone; only `export_cached` imports torch, through `streamyolox.weights`.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import streamyolox

log = logging.getLogger("streamyolox.inference")

OPSET = 13  # part of the key: an export at another opset is another file
_CHUNK = 1 << 20


def cache_root() -> Path:
    """`$STREAMYOLOX_CACHE`, else `~/.cache/streamyolox` (the weights hub uses the same root)."""
    return Path(os.environ.get("STREAMYOLOX_CACHE") or Path.home() / ".cache" / "streamyolox")


def cache_dir(kind: str = "onnx") -> Path:
    path = cache_root() / kind
    path.mkdir(parents=True, exist_ok=True)
    return path


def weights_digest(weights: Path) -> str:
    """sha256 of the file's bytes (hex). Costs about 1 s per GB read; nano's 3.6 MB take ~2 ms."""
    h = hashlib.sha256()
    with open(weights, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def onnx_cache_key(digest: str, name: str, size: tuple[int, int], opset: int = OPSET) -> str:
    """What identifies an export: the weights content and everything the exported graph depends on."""
    stamp = f"{digest}:{name}:{size[0]}x{size[1]}:opset{opset}:streamyolox{streamyolox.__version__}"
    return hashlib.sha256(stamp.encode()).hexdigest()[:24]


def onnx_cache_path(weights: Path, name: str, size: tuple[int, int], digest: str | None = None) -> Path:
    """Where the export of `weights` (as `name` at `size`) lives, whether or not it exists yet."""
    key = onnx_cache_key(digest or weights_digest(weights), name, size)
    return cache_dir() / f"{name}-{size[0]}x{size[1]}-{key}.onnx"


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive advisory lock on `path` (created if missing) for the `with` body, across processes.

    The lock file stays: unlinking it would let a late process lock a new inode while another holds the
    old one. flock is released by the kernel if the holder dies, so a killed replica never wedges the rest.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _write_export(model: Any, path: Path, size: tuple[int, int]) -> Path:
    """Export to a temp file beside `path`, then rename: a reader sees no file or a whole one, never half."""
    from streamyolox.weights import export_onnx

    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        export_onnx(model, tmp, input_size=size, opset=OPSET, dynamic_batch=True, decode=False)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def export_cached(model: Any, path: Path, size: tuple[int, int]) -> Path:
    """The export at `path`, made from `model` unless it already exists.

    Replicas that start together serialise on a lock: the first exports, the others wait and reuse its
    file (each export costs seconds of both cores; without the lock every replica repeated it).
    """
    if path.exists():
        return path
    with file_lock(path.with_name(path.name + ".lock")):
        if not path.exists():
            t0 = time.perf_counter()
            _write_export(model, path, size)
            log.info("exported the model to %s in %.1f s (later runs reuse it)", path, time.perf_counter() - t0)
    return path


def throwaway_export(model: Any, name: str, size: tuple[int, int]) -> Path:
    """An export for a model without a weights file (random init): a per-process name, for the caller
    to delete once its session holds the graph."""
    return _write_export(model, cache_dir() / f"{name}-{os.getpid()}.onnx", size)
