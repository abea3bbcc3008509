"""Metric windows: every request counted into the current interval, on the caller's thread.

One :class:`WindowCounter` per monitor. :meth:`WindowCounter.count` is the hot path (a short lock, a few
additions); a window is closed when a request (or the worker's :meth:`WindowCounter.drain`) passes its end,
and kept in :attr:`WindowCounter.closed` until the worker drains it. The counter also counts the monitor's
``requests`` and ``sampled`` metrics under the same lock.
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left
from collections import deque
from typing import Any, NamedTuple

from serving_shim._internal.limits import LATENCY_BUCKETS_MS
from serving_shim._internal.metrics import ShimMetrics

__all__ = ["ClosedWindow", "WindowCounter"]


class ClosedWindow(NamedTuple):
    start: float
    part: int
    requests: int
    errors: dict[str, int]
    buckets: list[int]
    latency_sum_ms: float


class WindowCounter:
    def __init__(self, window_s: int, metrics: ShimMetrics, *, max_closed: int) -> None:
        self.window_s = window_s
        self._metrics = metrics
        self._max_closed = max_closed
        self.closed: deque[ClosedWindow] = deque()
        self.reset(time.time())

    def reset(self, now: float) -> None:
        """A new lock and an empty open window (at start, and in a forked child: the parent exports its own)."""
        self._lock = threading.Lock()
        self.closed.clear()
        self._open(now)

    def _open(self, now: float) -> None:
        start = now - now % self.window_s
        # a window closed early (flush) and reopened for the same interval is a new part: its own id
        self._part: int = self._part + 1 if start == getattr(self, "_start", None) else 0
        self._start, self._end = start, start + self.window_s
        self._n, self._lat_sum = 0, 0.0
        self._errors: dict[str, int] = {}
        self._buckets = [0] * (len(LATENCY_BUCKETS_MS) + 1)

    def _rotate(self, now: float) -> None:
        """Close the current window (under the lock), keeping it for the worker."""
        if self._n:
            if len(self.closed) >= self._max_closed:
                self.closed.popleft()
                self._metrics.drop("window_overflow")
            self.closed.append(ClosedWindow(self._start, self._part, self._n, self._errors, self._buckets,
                                            self._lat_sum))
        self._open(now)

    # -- caller side -------------------------------------------------------------------------
    def count(self, now: float, latency_ms: Any, error_type: str | None, *, counted: bool, sampled: bool) -> None:
        """One request (``counted``: into the window; ``error_type``: it failed) and one sampling decision."""
        with self._lock:
            if now >= self._end:
                self._rotate(now)
            m = self._metrics
            if counted:
                m.requests += 1
                self._n += 1
                if latency_ms is not None and latency_ms >= 0:  # NaN and negatives are not latencies
                    self._buckets[bisect_left(LATENCY_BUCKETS_MS, latency_ms)] += 1
                    self._lat_sum += latency_ms
                if error_type is not None:
                    self._errors[error_type] = self._errors.get(error_type, 0) + 1
            if sampled:
                m.sampled += 1

    def close_now(self) -> None:
        """Close the open window now (a flush): the worker's next drain takes it."""
        with self._lock:
            self._rotate(time.time())

    # -- worker side -------------------------------------------------------------------------
    def drain(self, *, force: bool = False) -> list[ClosedWindow]:
        """The closed windows, oldest first, after closing the open one when it is over (or ``force``)."""
        now = time.time()
        with self._lock:
            if force or now >= self._end:
                self._rotate(now)
            out = list(self.closed)
            self.closed.clear()
        return out
