"""The batch processor: a bounded queue on the caller's side, one daemon worker on the other.

Caller side (:meth:`BatchProcessor.submit`): a length check and a ``deque.append``; the worker is
woken when a batch is full. Nothing on this side blocks, allocates more than the item, or does I/O.

Worker side: wakes on the event or every ``schedule_delay_s``; runs the ``tick`` hook (closes
finished metric windows, and the open one at shutdown), turns queued items into batches with ``prepare`` (redaction,
validation), and exports them through the sink. A failed export drops that batch (reason
``export_error``) and ends the round, so a dead sink costs one timeout per round while the queue,
bounded, absorbs or drops (``queue_full``) what comes. Metric windows are kept (bounded) and sent
again until the sink takes them: their ids are deterministic, so a re-send is deduplicated.

Shutdown drains what it can within ``shutdown_timeout_s`` (also at interpreter exit); what is
left is counted (``shutdown``). In a forked child the queue is emptied (the parent sends its own
events) and a new worker starts.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any

from serving_shim._internal.config import BatchConfig
from serving_shim._internal.metrics import ShimMetrics
from serving_shim._internal.sinks import Batch, ExportResult, Sink

__all__ = ["BatchProcessor"]

log = logging.getLogger("driftline.shim")


class BatchProcessor:
    def __init__(
        self,
        sink: Sink,
        *,
        prepare: Callable[[list[Any]], list[Batch]],
        windows: Callable[[list[Any]], list[Batch]],
        tick: Callable[[bool], None],
        config: BatchConfig,
        metrics: ShimMetrics,
        name: str = "driftline-shim",
    ) -> None:
        self.sink = sink
        self._prepare = prepare
        self._prepare_windows = windows
        self._tick = tick
        self.cfg = config
        self.metrics = metrics
        self._name = name
        self._queue: deque[Any] = deque()
        self._windows: deque[Any] = deque()
        self._max = config.max_queue_size
        self._batch = config.max_export_batch_size
        metrics.queue_depth = self._queue.__len__
        metrics.pending_windows = self._windows.__len__
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

    def submit_window(self, window: Any) -> None:
        if len(self._windows) >= self.cfg.max_pending_windows:
            self._windows.popleft()
            self.metrics.drop("window_overflow")
        self._windows.append(window)

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
        return done.wait(timeout) and self._last_ok and self.sink.flush(timeout)

    def shutdown(self, timeout: float | None = None) -> None:
        if self.is_shutdown:
            return
        timeout = self.cfg.shutdown_timeout_s if timeout is None else timeout
        self._stopping = True
        self._wake.set()
        self._worker.join(timeout)
        self.is_shutdown = True
        left = len(self._queue) + len(self._windows)
        if left:
            self.metrics.drop("shutdown", left)
            self._queue.clear()
            self._windows.clear()
        self.sink.shutdown(timeout=max(0.1, timeout / 2))

    # -- worker side -------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            self._wake.wait(self.cfg.schedule_delay_s)
            self._wake.clear()
            stopping = self._stopping
            try:
                self._tick(stopping)  # at shutdown this also closes the open metric window
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

    def _export_round(self) -> bool:
        """Export the pending windows, then everything queued; False when an export failed."""
        if self._windows:
            pending = []
            while self._windows:  # the caller's thread may pop the oldest concurrently (overflow)
                try:
                    pending.append(self._windows.popleft())
                except IndexError:
                    break
            for batch in self._prepare_windows(pending):
                if not self._export(batch):
                    self._windows.extendleft(reversed(pending))
                    while len(self._windows) > self.cfg.max_pending_windows:  # oldest go first
                        self._windows.popleft()
                        self.metrics.drop("window_overflow")
                    return False
        while self._queue:
            items = [self._queue.popleft() for _ in range(min(self._batch, len(self._queue)))]
            batches = list(self._prepare(items))
            for i, batch in enumerate(batches):
                if not self._export(batch):  # this batch and the other kinds of the same items are dropped
                    self.metrics.drop("export_error", sum(len(b.events) for b in batches[i:]))
                    return False
        return True

    def _export(self, batch: Batch) -> bool:
        t0 = time.perf_counter()
        try:
            res = self.sink.export(batch, timeout=self.cfg.export_timeout_s)
        except Exception as exc:  # noqa: BLE001 - a sink that raises counts as a failed export
            log.warning("sink export raised %s", type(exc).__name__)
            res = ExportResult.FAILURE
        dt = time.perf_counter() - t0
        if res is ExportResult.SUCCESS:
            self.metrics.exported_batch(batch.kind, len(batch.events), dt)
            return True
        self.metrics.failed_batch(dt)
        return False


def _shutdown_at_exit(ref: weakref.ref[BatchProcessor]) -> None:
    p = ref()
    if p is not None and not p.is_shutdown:
        p.shutdown()
