"""The collector's own metrics, in a Prometheus registry that is passed in (a fresh one by default)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["CollectorMetrics"]


class CollectorMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.consumed = Counter("driftline_collector_consumed_messages", "Kafka messages consumed", registry=r)
        self.stored = Counter("driftline_collector_stored_events", "Events stored", ["kind"], registry=r)
        self.dead = Counter("driftline_collector_dead_letters", "Events or messages sent to dead letters", registry=r)
        self.store_errors = Counter("driftline_collector_store_errors", "Failed store attempts (retried)", registry=r)
        self.broker_errors = Counter("driftline_collector_broker_errors", "Failed polls while the broker was away",
                                     registry=r)
        self.commits = Counter("driftline_collector_commits", "Offset commits after a stored batch", registry=r)
        self.commit_failures = Counter("driftline_collector_commit_failures",
                                       "Failed commit attempts (retried with backoff until committed "
                                       "or the partition is revoked)",
                                       registry=r)
        self.batch_seconds = Histogram("driftline_collector_batch_seconds", "Time to store one batch", registry=r,
                                       buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
        self.batch_events = Histogram("driftline_collector_batch_events", "Events per stored batch", registry=r,
                                      buckets=(10, 100, 1000, 5000, 10000, 20000, 50000, 100000))
        self.lag = Gauge("driftline_collector_lag", "Messages behind: the log end minus the group's committed offset",
                         ["topic", "partition"], registry=r)
        self.store_up = Gauge("driftline_collector_store_up", "1 while the store accepts writes", registry=r)
        self.store_up.set(1)
