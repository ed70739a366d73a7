"""Calls of one stage in flight at once: a stage whose instance sets `lanes` > 1 (yolox `concurrency`).

Each lane is a thread that takes the next batch from the inbox, runs the stage on it and sends the outputs;
the outputs leave in the order the batches were taken (a lane that finishes early waits for its turn), so
consumers see what one lane would have sent. Unlike `replicas` the lanes share one process and one stage
instance (one copy of a model's weights), and unlike a batch split among threads no call waits for another
to finish before it starts. The first lane to fail stops the others; its exception is the stage's.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from streamyolox.graph.inbox import EndOfInput, Item
from streamyolox.graph.transport import Aborted

POLL_S = 0.05  # how often a lane waiting for its turn looks at the abort flag


class Turns:
    """Hands out batches with their sequence numbers and lets their outputs leave in that order."""

    def __init__(self, abort: Callable[[], bool]) -> None:
        self._abort = abort
        self._take = threading.Lock()
        self._cond = threading.Condition()
        self._taken = 0
        self._sent = 0
        self.failure: BaseException | None = None

    def aborted(self) -> bool:
        return self.failure is not None or self._abort()

    def take(self, get: Callable[[Callable[[], bool]], list[Item]]) -> tuple[int, list[Item]]:
        """The next batch (`get(abort)`) and its number; `EndOfInput` / `Aborted` as `get` raises them."""
        with self._take:
            if self.aborted():
                raise Aborted
            batch = get(self.aborted)
            self._taken += 1
            return self._taken - 1, batch

    def wait_turn(self, seq: int) -> None:
        """Until every batch taken before `seq` has sent its outputs; `Aborted` once a lane failed."""
        with self._cond:
            while self._sent != seq:
                if self.aborted():
                    raise Aborted
                self._cond.wait(POLL_S)

    def done(self, seq: int) -> None:
        with self._cond:
            self._sent = seq + 1
            self._cond.notify_all()

    def fail(self, exc: BaseException) -> bool:
        """Record `exc` as the failure unless one was recorded first; True when it is the first."""
        with self._cond:
            first = self.failure is None
            if first:
                self.failure = exc
            self._cond.notify_all()
            return first


def run_lanes(count: int, lane: Callable[[Turns], None], abort: Callable[[], bool]) -> None:
    """`lane(turns)` on `count` threads (this one included) until the input ends; re-raises the first
    failure of any lane here, after all of them stopped."""
    turns = Turns(abort)

    def guarded() -> None:
        try:
            lane(turns)
        except EndOfInput:
            pass
        except BaseException as exc:  # handed to the stage loop's thread, which reports it
            turns.fail(exc)

    threads = [threading.Thread(target=guarded, name=f"lane-{i}", daemon=True) for i in range(1, count)]
    for t in threads:
        t.start()
    guarded()
    for t in threads:
        t.join()
    if turns.failure is not None:
        raise turns.failure
