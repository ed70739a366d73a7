"""Read a live source in a background thread, so the stage stops at once even while a read hangs.

FFmpeg's interrupt callback breaks a hung read only after `read_timeout_s`, and a Python signal handler
cannot run while the main thread sits in that C call. With the reads in a daemon thread, the stage's
`generate()` only waits on a small bounded queue and polls `should_stop()`, so a stop request is honoured
within ~0.1 s; the reader thread notices it after its current read and closes its connection itself.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

T = TypeVar("T")
POLL_S = 0.1


class Mailbox:
    """Calls posted by the reader thread and run by the consumer thread: the stage context (counters the
    runtime reads) is only ever touched from the stage's own thread."""

    def __init__(self) -> None:
        self._calls: deque[tuple[Callable[..., Any], tuple[Any, ...]]] = deque()

    def post(self, fn: Callable[..., Any], *args: Any) -> None:
        self._calls.append((fn, args))  # deque.append/popleft are thread-safe

    def drain(self) -> None:
        while self._calls:
            fn, args = self._calls.popleft()
            fn(*args)


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


_END = object()


class BackgroundIterator(Generic[T]):
    """Iterate `make(stopped)` in a daemon thread through a queue of `depth` items.

    Args:
        make: builds the iterator; it receives `stopped()` and must return soon after it turns true.
        should_stop: the consumer's stop flag (the stage context's), polled every 0.1 s.
        depth: queue size; the producer blocks when it is full (downstream back-pressure is kept).
        name: the thread's name.
        mailbox: drained in the consumer thread before each item (and at the end).
    """

    def __init__(self, make: Callable[[Callable[[], bool]], Iterator[T]], should_stop: Callable[[], bool],
                 depth: int = 2, name: str = "source-reader", mailbox: Mailbox | None = None) -> None:
        self._make = make
        self.mailbox = mailbox or Mailbox()
        self._should_stop = should_stop
        self._queue: queue.Queue[object] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def stopped(self) -> bool:
        return self._stop.is_set() or self._should_stop()

    def _put(self, item: object) -> bool:
        while not self.stopped():
            try:
                self._queue.put(item, timeout=POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        items = self._make(self.stopped)
        try:
            for item in items:
                if not self._put(item):
                    return
            self._put(_END)
        except BaseException as exc:  # handed to the consumer, raised there
            self._put(_Failed(exc))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()  # runs the source's own cleanup (closing its connection) in this thread

    def __iter__(self) -> Iterator[T]:
        self._thread.start()
        try:
            while not self._should_stop():
                try:
                    item = self._queue.get(timeout=POLL_S)
                except queue.Empty:
                    self.mailbox.drain()
                    continue
                self.mailbox.drain()
                if item is _END:
                    return
                if isinstance(item, _Failed):
                    raise item.error
                yield item  # type: ignore[misc]
        finally:
            self.close()
            self.mailbox.drain()

    def close(self, join_s: float = 0.5) -> None:
        """Ask the reader to stop; wait briefly (a hung read ends by its own timeout, in the background)."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(join_s)
