"""Executors: where and how a run's stage processes are started (`base.Executor`)."""

from __future__ import annotations

from streamyolox.graph.executors.base import Executor, Node, ProcessHandle

__all__ = ["Executor", "Node", "ProcessHandle", "make_executor"]


def make_executor(kind: str = "local", **options: object) -> Executor:
    """`local` (child processes, the default) or `ray` (needs `pip install streamyolox[ray]`)."""
    if kind == "local":
        from streamyolox.graph.executors.local import LocalExecutor

        return LocalExecutor()
    if kind == "ray":
        from streamyolox.graph.executors.ray_executor import RayExecutor

        return RayExecutor(**options)  # type: ignore[arg-type]
    raise ValueError(f"executor.kind: expected 'local' or 'ray', got {kind!r}")
