"""Pure pre/post-processing ops: each CPU reference beside its fast CPU path and its GPU kernel.

Importing this package never imports CuPy or ``numba.cuda``: the GPU functions (`letterbox_gpu`,
`postprocess_gpu`) load their modules on first access and work only where a CUDA device is present.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from streamyolox.ops.decode import decode_ref, grid_strides, postprocess, postprocess_batch, postprocess_ref
from streamyolox.ops.letterbox import letterbox, letterbox_ref, letterbox_yuv420
from streamyolox.ops.nms import batched_nms, nms, nms_ref
from streamyolox.ops.yuv import Yuv420

_LAZY = {
    "letterbox_gpu": "streamyolox.ops.gpu_letterbox",
    "postprocess_gpu": "streamyolox.ops.gpu_postprocess",
    "postprocess_batch_gpu": "streamyolox.ops.gpu_postprocess",
}

# The lazy GPU names stay out of __all__ so that `import *` never pulls CuPy.
__all__ = [
    "Yuv420",
    "batched_nms",
    "decode_ref",
    "grid_strides",
    "letterbox",
    "letterbox_ref",
    "letterbox_yuv420",
    "nms",
    "nms_ref",
    "postprocess",
    "postprocess_batch",
    "postprocess_ref",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'streamyolox.ops' has no attribute {name!r}")
