"""Named shared-memory segments (POSIX shm files under /dev/shm), mapped with `mmap`.

Not `multiprocessing.shared_memory`: its resource tracker unlinks segments when the *attaching* process
exits (before Python 3.13) and warns about "leaks" it does not own. Here ownership is explicit: the runner
(parent) gives every segment of a run one name prefix and unlinks them all in every exit path
(`sweep(prefix)`), so a stage killed with -9 cannot leak them.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import tempfile
from pathlib import Path

SHM_DIR = Path("/dev/shm") if Path("/dev/shm").is_dir() else Path(tempfile.gettempdir())
ALIGN = 64  # bytes; array offsets inside a slot are aligned for SIMD copies


class Segment:
    """One mapped segment. `create=True` makes a new one of `size` bytes (the name must be unused)."""

    def __init__(self, name: str, size: int = 0, create: bool = False) -> None:
        self.name = name
        path = SHM_DIR / name
        flags = os.O_RDWR | (os.O_CREAT | os.O_EXCL if create else 0)
        fd = os.open(path, flags, 0o600)
        try:
            if create:
                os.ftruncate(fd, max(size, 1))
            self.size = os.fstat(fd).st_size
            self.buf = mmap.mmap(fd, self.size)
        finally:
            os.close(fd)

    def close(self) -> None:
        """Unmap; while numpy views still point into it, leave that to the garbage collector."""
        with contextlib.suppress(BufferError):
            self.buf.close()

    def unlink(self) -> None:
        unlink(self.name)


def unlink(name: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(SHM_DIR / name)


def sweep(prefix: str) -> int:
    """Unlink every segment whose name starts with `prefix`; returns how many there were."""
    if not prefix:
        raise ValueError("sweep: empty prefix would remove every segment")
    n = 0
    for path in SHM_DIR.glob(prefix + "*"):
        unlink(path.name)
        n += 1
    return n


def leftovers(prefix: str) -> list[str]:
    """Names of the segments starting with `prefix` that still exist (tests use this)."""
    return sorted(p.name for p in SHM_DIR.glob(prefix + "*"))


def aligned(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN
