"""YOLOX models: the zoo (`build_model`, `ZOO`) and the `YOLOX` module.

Names load lazily: importing `streamyolox.model.spec` (every stage process does) must not import torch,
which costs about 1.1 s and 150 MB per process (measured on the CI-size machine).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_LAZY = {
    "YOLOX": "streamyolox.model.yolox",
    "ZOO": "streamyolox.model.zoo",
    "ZooEntry": "streamyolox.model.zoo",
    "build_model": "streamyolox.model.build",
    "canonical_name": "streamyolox.model.zoo",
    "decode_outputs": "streamyolox.model.head",
    "make_grids": "streamyolox.model.head",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'streamyolox.model' has no attribute {name!r}")
