"""The batch processor: a bounded queue on the caller's side, one daemon worker on the other.

Caller side (:meth:`BatchProcessor.submit`): a length check and a ``deque.append``; the worker is
woken when a batch is full. Nothing on this side blocks, allocates more than the item, or does I/O.

Worker side: wakes on the event or every ``schedule_delay_s``; drains the closed metric windows from the
:class:`WindowCounter` (closing the open one when it is over, and at shutdown), and hands the windows,
then the queued items in batches, to its one :class:`Exporter` (which builds the events and sends
them). A failed export ends the round, so a dead sink costs one timeout per round while the queue,
bounded, absorbs or drops (``queue_full``) what comes. Metric windows are kept (bounded) and sent
again until the exporter takes them: their ids are deterministic, so a re-send is deduplicated.

Shutdown drains what it can within ``shutdown_timeout_s`` (also at interpreter exit); what is
left is counted (``shutdown``). In a forked child the queue is emptied (the parent sends its own
events) and a new worker starts.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import weakref
from collections import deque
from typing import Any, Protocol

from serving_shim._internal.config import BatchConfig
from serving_shim._internal.metrics import ShimMetrics
from serving_shim._internal.windows import ClosedWindow, WindowCounter

__all__ = ["BatchProcessor", "Exporter"]

log = logging.getLogger("driftline.shim")


class Exporter(Protocol):
    """Where the worker hands what it drained; it counts its own exports, failures and drops."""

    def export(self, items: list[Any], *, timeout: float) -> bool:
        """Queued items; False when an export failed (the exporter counted what it dropped)."""
        ...

    def export_windows(self, windows: list[ClosedWindow], *, timeout: float) -> bool:
        """Closed metric windows; False when they were not taken (the processor keeps them to send again)."""
        ...

    def flush(self, timeout: float) -> bool: ...

    def shutdown(self, timeout: float) -> None: ...


class BatchProcessor:
    def __init__(
        self,
        exporter: Exporter,
        *,
        windows: WindowCounter,
        config: BatchConfig,
        metrics: ShimMetrics,
        name: str = "driftline-shim",
    ) -> None:
        self.exporter = exporter
        self._counter = windows
        self.cfg = config
        self.metrics = metrics
        self._name = name
        self._queue: deque[Any] = deque()
        self._windows: deque[ClosedWindow] = deque()
        self._max = config.max_queue_size
        self._batch = config.max_export_batch_size
        metrics.queue_depth = self._queue.__len__
        metrics.pending_windows = lambda: len(self._windows) + len(windows.closed)
        self._init_thread()
        ref = weakref.WeakMethod(self._after_fork)
        os.register_at_fork(after_in_child=lambda: (m := ref()) is not None and m())
        atexit.register(_shutdown_at_exit, weakref.ref(self))

    def _init_thread(self) -> None:
        self._wake = threading.Event()
        self._flush_waiters: list[threading.Event] = []
        self._waiters_lock = threading.Lock()
        self._stopping = False
        self._last_ok = True
        self.is_shutdown = False
        self._worker = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._worker.start()

    def _after_fork(self) -> None:
        if self.is_shutdown:
            return
        self._queue.clear()
        self._windows.clear()
        self.metrics.reset_after_fork()
        self._init_thread()

    # -- caller side -------------------------------------------------------------------------
    def submit(self, item: Any) -> bool:
        """Queue one item; never blocks. False (and a counted drop) when full or shut down."""
        q = self._queue
        if self._stopping:
            self.metrics.drop("shutdown")
            return False
        if len(q) >= self._max:
            self.metrics.drop("queue_full")
            return False
        q.append(item)
        if len(q) >= self._batch:
            self._wake.set()
        return True

    # -- control -----------------------------------------------------------------------------
    def force_flush(self, timeout: float | None = None) -> bool:
        """Export everything queued now; True when all of it was exported within ``timeout``."""
        timeout = self.cfg.export_timeout_s if timeout is None else timeout
        if self.is_shutdown or not self._worker.is_alive():
            return False
        done = threading.Event()
        with self._waiters_lock:
            self._flush_waiters.append(done)
        self._wake.set()
        return done.wait(timeout) and self._last_ok and self.exporter.flush(timeout)

    def shutdown(self, timeout: float | None = None) -> None:
        if self.is_shutdown:
            return
        timeout = self.cfg.shutdown_timeout_s if timeout is None else timeout
        self._stopping = True
        self._wake.set()
        self._worker.join(timeout)
        self.is_shutdown = True
        left = len(self._queue) + len(self._windows) + len(self._counter.closed)
        if left:
            self.metrics.drop("shutdown", left)
            self._queue.clear()
            self._windows.clear()
            self._counter.closed.clear()
        self.exporter.shutdown(max(0.1, timeout / 2))

    # -- worker side -------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            self._wake.wait(self.cfg.schedule_delay_s)
            self._wake.clear()
            stopping = self._stopping
            try:
                self._take_windows(stopping)  # at shutdown this also closes the open metric window
                self._last_ok = self._export_round()
            except Exception as exc:  # noqa: BLE001 - the worker must survive anything
                self._last_ok = False
                log.error("driftline shim worker error: %s", type(exc).__name__)
            with self._waiters_lock:
                waiters, self._flush_waiters = self._flush_waiters, []
            for w in waiters:
                w.set()
            if stopping:
                return

    def _take_windows(self, force: bool) -> None:
        for w in self._counter.drain(force=force):
            if len(self._windows) >= self.cfg.max_pending_windows:  # oldest go first
                self._windows.popleft()
                self.metrics.drop("window_overflow")
            self._windows.append(w)

    def _export_round(self) -> bool:
        """Export the pending windows, then everything queued; False when an export failed."""
        timeout = self.cfg.export_timeout_s
        if self._windows:
            pending = list(self._windows)
            self._windows.clear()
            if not self.exporter.export_windows(pending, timeout=timeout):
                self._windows.extendleft(reversed(pending))
                return False
        while self._queue:
            items = [self._queue.popleft() for _ in range(min(self._batch, len(self._queue)))]
            if not self.exporter.export(items, timeout=timeout):
                return False
        return True


def _shutdown_at_exit(ref: weakref.ref[BatchProcessor]) -> None:
    p = ref()
    if p is not None and not p.is_shutdown:
        p.shutdown()
