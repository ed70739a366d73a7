"""Weights I/O: official and project checkpoints, official ONNX exports, ONNX export, the zoo download hub.

Names load lazily: the pre-start checks use the hub and `files` without torch (importing it cost each
process about 1.5 s and 150 MB on the CI machine); `load_model` and the checkpoint readers import it.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_LAZY = {
    "LoadedModel": "streamyolox.weights.load",
    "WeightsError": "streamyolox.weights.files",
    "download_weights": "streamyolox.weights.hub",
    "export_onnx": "streamyolox.weights.export",
    "find_local": "streamyolox.weights.hub",
    "load_checkpoint": "streamyolox.weights.checkpoint",
    "load_model": "streamyolox.weights.load",
    "load_onnx_weights": "streamyolox.weights.onnx_import",
    "read_checkpoint": "streamyolox.weights.checkpoint",
    "resolve_weights": "streamyolox.weights.hub",
    "save_checkpoint": "streamyolox.weights.checkpoint",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'streamyolox.weights' has no attribute {name!r}")
