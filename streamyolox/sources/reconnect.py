"""Keep a live source delivering: reconnect with exponential backoff and jitter.

`reconnecting_frames` wraps `AvReader` connections into one endless frame iterator. When a connection
fails, times out, stalls or ends, it waits ``backoff = min(backoff_max_s, backoff_initial_s * 2**k)``
scaled by a random factor in [0.5, 1] (so many cameras that drop together do not reconnect in lockstep),
then tries again, forever or until `max_retries` consecutive attempts have failed. A server that refuses
the request (RTSP/HTTP 404, 401) is retried the same way: it is logged at every attempt and named in the
final error; only a URL FFmpeg cannot read at all (`SourceUnsupported`) fails at once. Every attempt and
outcome is logged; the counters `reconnect_attempts`, `reconnects`, `reconnect_gap_s` (sum) and the gauge
`last_reconnect_gap_s` go to the stage metrics.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field

from streamyolox.sources.av_reader import AvOptions, AvReader, RawFrame, SourceUnsupported, StreamLost
from streamyolox.sources.spec import SourceError, SourceSpec


@dataclass
class RetryPolicy:
    """When and how fast to reconnect. `max_retries` None retries forever."""

    reconnect: bool = True
    max_retries: int | None = None
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 10.0
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, attempt: int) -> float:
        """Seconds to wait before reconnect attempt `attempt` (1-based)."""
        base = min(self.backoff_max_s, self.backoff_initial_s * 2 ** min(attempt - 1, 30))
        return base * self.rng.uniform(0.5, 1.0)


@dataclass
class SourceHooks:
    """What the reconnect loop reports to: the stage's logger, counters, gauges and stop flag."""

    log: logging.Logger
    count: Callable[[str, float], None]
    set_value: Callable[[str, float], None]
    should_stop: Callable[[], bool]
    # (state, error): "down" with the error when a connection is lost or an attempt fails, "up" once
    # frames flow again (a multi-stream source shows each stream's state)
    report: Callable[[str, str | None], None] = lambda state, error: None


def sleep_unless_stopped(seconds: float, should_stop: Callable[[], bool], tick: float = 0.1) -> bool:
    """Sleep `seconds` in short ticks; returns False as soon as `should_stop()` is true."""
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        if should_stop():
            return False
        time.sleep(min(tick, left))
    return not should_stop()


def reconnecting_frames(spec: SourceSpec, opts: AvOptions, policy: RetryPolicy,
                        hooks: SourceHooks, first: AvReader | None = None) -> Generator[RawFrame, None, None]:
    """Frames of a live source across reconnects.

    Ends on stop, or when the stream ends and reconnect is off; raises `SourceError` (one line) when
    `max_retries` is spent or the connection fails with reconnect off. `first` is an already opened
    connection (the stage opens one eagerly to fail fast when reconnect is off).
    """
    reader = first
    failures = 0  # the loss plus failed attempts since frames last flowed; retry number = failures
    lost_at: float | None = None  # monotonic time of the last frame before the loss
    last_error = "not connected yet"
    while not hooks.should_stop():
        if reader is None:
            if failures:
                if not _wait_before_attempt(policy, hooks, spec, failures, last_error):
                    return
                hooks.count("reconnect_attempts", 1)
            reader = AvReader(spec, opts, hooks.log, lambda i, r: hooks.count("corrupt_frames", 1))
            try:
                reader.open()
            except SourceUnsupported:
                raise  # FFmpeg cannot read this URL at all: no retry can change that
            except SourceError as exc:
                # A refusal (404, 401) is retried like any failure: a camera that reboots, or a media
                # server that answers 404 until its publisher connects, serves the path again later.
                reader, last_error, failures = None, str(exc), failures + 1
                hooks.log.warning("connect attempt failed: %s", last_error)
                hooks.report("down", last_error)
                continue
        last_frame_at: float | None = None
        try:
            for frame in reader.frames():
                if last_frame_at is None:
                    _connected(hooks, spec, lost_at, failures)
                    hooks.report("up", None)
                    failures, lost_at = 0, None
                last_frame_at = time.monotonic()
                yield frame
                if hooks.should_stop():
                    return
            hooks.log.info("%s: stream ended (finite media)", spec.url)
            return
        except StreamLost as exc:
            # Log the text, never the exception: a handler that keeps records (pytest's, a memory handler)
            # would keep its traceback, and with it the decoder and the last frames, alive.
            last_error = str(exc)
            if exc.cause == "ended" and not policy.reconnect:
                hooks.log.info("%s", last_error)
                return
            hooks.log.warning("connection lost: %s", last_error)
            hooks.report("down", last_error)
            hooks.count("stalls" if exc.cause == "stalled" else "disconnects", 1)
        finally:
            reader.close()
            reader = None
        failures += 1
        if last_frame_at is not None:
            lost_at = last_frame_at


def _wait_before_attempt(policy: RetryPolicy, hooks: SourceHooks, spec: SourceSpec,
                         retry: int, last_error: str) -> bool:
    """Back off before reconnect attempt `retry`; raises when `max_retries` is spent, False when stopped."""
    if not policy.reconnect:
        raise SourceError(f"{last_error} (reconnect is off)")
    if policy.max_retries is not None and retry > policy.max_retries:
        raise SourceError(f"{spec.url}: gave up after {policy.max_retries} reconnect attempts "
                          f"(max_retries={policy.max_retries}); last error: {last_error}")
    delay = policy.delay(retry)
    of = "" if policy.max_retries is None else f" of {policy.max_retries}"
    hooks.log.info("%s: reconnect attempt %d%s in %.2f s", spec.url, retry, of, delay)
    return sleep_unless_stopped(delay, hooks.should_stop)


def _connected(hooks: SourceHooks, spec: SourceSpec, lost_at: float | None, failures: int) -> None:
    """Log and count a (re)connection that delivers frames again."""
    if lost_at is None:
        hooks.log.info("%s: connected", spec.url)
        return
    gap = time.monotonic() - lost_at
    hooks.count("reconnects", 1)
    hooks.count("reconnect_gap_s", gap)
    hooks.set_value("last_reconnect_gap_s", gap)
    hooks.log.info("%s: reconnected after a %.2f s gap (%d attempts)", spec.url, gap, failures)
