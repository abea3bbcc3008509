"""The shim's own metrics: readable from code (:meth:`ShimMetrics.snapshot`) and in Prometheus format.

Counters are plain integers written by one thread each (the worker) or under a lock (drops on the
caller's thread), so reading them costs nothing on the hot path. Prometheus sees them through a
collector registered on the registry it is given (the global one only by default); the values are
read at scrape time.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ShimMetrics", "MetricsSnapshot", "register_prometheus", "EXPORT_LATENCY_BUCKETS_S"]

EXPORT_LATENCY_BUCKETS_S = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0)
DROP_REASONS = ("queue_full", "shutdown", "redaction_error", "invalid", "export_error", "window_overflow")


@dataclass(frozen=True)
class MetricsSnapshot:
    """A consistent-enough copy of the counters at one moment."""

    requests: int
    sampled: int
    dropped: dict[str, int]
    exported: dict[str, int]
    export_failures: int
    export_latency_s_sum: float
    export_latency_s_count: int
    queue_depth: int
    pending_windows: int


@dataclass
class ShimMetrics:
    requests: int = 0
    sampled: int = 0
    dropped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DROP_REASONS, 0))
    exported: dict[str, int] = field(default_factory=dict)
    export_failures: int = 0
    latency_buckets: list[int] = field(default_factory=lambda: [0] * (len(EXPORT_LATENCY_BUCKETS_S) + 1))
    latency_sum_s: float = 0.0
    latency_count: int = 0
    queue_depth: Callable[[], int] = lambda: 0
    pending_windows: Callable[[], int] = lambda: 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def drop(self, reason: str, n: int = 1) -> None:
        with self._lock:
            self.dropped[reason] = self.dropped.get(reason, 0) + n

    def exported_batch(self, kind: str, n: int, seconds: float) -> None:
        with self._lock:
            self.exported[kind] = self.exported.get(kind, 0) + n
            self._observe(seconds)

    def failed_batch(self, seconds: float) -> None:
        with self._lock:
            self.export_failures += 1
            self._observe(seconds)

    def _observe(self, seconds: float) -> None:
        i = 0
        while i < len(EXPORT_LATENCY_BUCKETS_S) and seconds > EXPORT_LATENCY_BUCKETS_S[i]:
            i += 1
        self.latency_buckets[i] += 1
        self.latency_sum_s += seconds
        self.latency_count += 1

    def reset_after_fork(self) -> None:
        """A forked child is a new replica: its counters start from zero."""
        self._lock = threading.Lock()
        self.requests = self.sampled = self.export_failures = self.latency_count = 0
        self.latency_sum_s = 0.0
        self.dropped = dict.fromkeys(DROP_REASONS, 0)
        self.exported = {}
        self.latency_buckets = [0] * (len(EXPORT_LATENCY_BUCKETS_S) + 1)

    def snapshot(self) -> MetricsSnapshot:
        with self._lock:
            return MetricsSnapshot(
                requests=self.requests, sampled=self.sampled, dropped=dict(self.dropped),
                exported=dict(self.exported), export_failures=self.export_failures,
                export_latency_s_sum=self.latency_sum_s, export_latency_s_count=self.latency_count,
                queue_depth=self.queue_depth(), pending_windows=self.pending_windows(),
            )


class _ShimCollector:
    """One per registry; reports every live monitor registered on it, labelled by model and version."""

    def __init__(self) -> None:
        self._sources: weakref.WeakSet[Any] = weakref.WeakSet()

    def add(self, source: Any) -> None:
        self._sources.add(source)

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

        labels = ["model", "model_version"]
        req = CounterMetricFamily("driftline_shim_requests", "Requests counted into metric windows", labels=labels)
        smp = CounterMetricFamily("driftline_shim_sampled", "Requests whose payload was sampled", labels=labels)
        drp = CounterMetricFamily("driftline_shim_dropped", "Events dropped, by reason", labels=[*labels, "reason"])
        exp = CounterMetricFamily("driftline_shim_exported", "Events exported, by kind", labels=[*labels, "kind"])
        fail = CounterMetricFamily("driftline_shim_export_failures", "Batches whose export failed", labels=labels)
        lat = HistogramMetricFamily("driftline_shim_export_latency_seconds", "Time to export one batch", labels=labels)
        qd = GaugeMetricFamily("driftline_shim_queue_depth", "Sampled events waiting for export", labels=labels)
        pw = GaugeMetricFamily("driftline_shim_pending_windows", "Metric windows waiting for export", labels=labels)
        for src in list(self._sources):
            lv = [src.model, src.version]
            m: ShimMetrics = src._metrics
            s = m.snapshot()
            req.add_metric(lv, s.requests)
            smp.add_metric(lv, s.sampled)
            for reason, n in s.dropped.items():
                drp.add_metric([*lv, reason], n)
            for kind, n in s.exported.items():
                exp.add_metric([*lv, kind], n)
            fail.add_metric(lv, s.export_failures)
            cum, buckets = 0, []
            for bound, n in zip((*map(str, EXPORT_LATENCY_BUCKETS_S), "+Inf"), list(m.latency_buckets), strict=True):
                cum += n
                buckets.append((bound, cum))
            lat.add_metric(lv, buckets, s.export_latency_s_sum)
            qd.add_metric(lv, s.queue_depth)
            pw.add_metric(lv, s.pending_windows)
        yield from (req, smp, drp, exp, fail, lat, qd, pw)


_COLLECTORS: weakref.WeakKeyDictionary[Any, _ShimCollector] = weakref.WeakKeyDictionary()
_COLLECTORS_LOCK = threading.Lock()


def register_prometheus(source: Any, registry: Any = None) -> Any:
    """Expose ``source`` (a Monitor) on ``registry`` (prometheus_client's global one by default)."""
    if registry is None:
        from prometheus_client import REGISTRY as registry
    with _COLLECTORS_LOCK:
        col = _COLLECTORS.get(registry)
        if col is None:
            col = _COLLECTORS[registry] = _ShimCollector()
            registry.register(col)
        col.add(source)
    return registry
