"""`njit_on_first_call`: numba's ``njit``, with numba imported and the function compiled at its first call.

Why not ``@numba.njit`` at import: importing numba costs ~80 MB of RSS (a process with numpy, zmq, PyAV,
cv2 and onnxruntime imported: 107 MB, 186 MB with numba; AMD EPYC, numba 0.68) and 0.3-0.5 s, and
`streamyolox.ops` is imported by the forkserver every stage process is forked from. Each forked stage
then carried numba's heap in its RSS (peak RSS of the demo pipeline, summed over its processes: 946-1,041 MB)
while no stage of the CPU pipeline calls a numba function (`ops.nms` keeps a numba kernel for direct
callers; `ops.postprocess` is numpy, see there). With this decorator numba is imported by the first caller.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any, Generic, ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")


class LazyNjit(Generic[P, R]):
    """A plain Python function that becomes ``numba.njit(**options)(py_func)`` when first called.

    Thread-safe: the first callers wait on one compile (numba's cache, when present, makes it a load).
    Only callable from Python, not from other numba functions (none here calls another)."""

    def __init__(self, py_func: Callable[P, R], options: dict[str, Any]) -> None:
        self.py_func = py_func
        self._options = options
        self._compiled: Callable[P, R] | None = None
        self._lock = threading.Lock()
        functools.update_wrapper(self, py_func)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        compiled = self._compiled
        if compiled is None:
            compiled = self.compile()
        return compiled(*args, **kwargs)

    def compile(self) -> Callable[P, R]:
        """Import numba and wrap `py_func` (once); numba compiles each signature at its first call."""
        with self._lock:
            if self._compiled is None:
                import numba

                self._compiled = numba.njit(**self._options)(self.py_func)
            return self._compiled


def njit_on_first_call(**options: Any) -> Callable[[Callable[P, R]], LazyNjit[P, R]]:
    """Decorator: ``numba.njit(**options)`` deferred to the first call (see the module docstring)."""

    def wrap(py_func: Callable[P, R]) -> LazyNjit[P, R]:
        return LazyNjit(py_func, options)

    return wrap
