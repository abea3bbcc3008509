"""``driftline collect``: one Kafka consumer-group worker writing to the store (scale mode)."""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

from collector.consumer import KafkaCollector
from collector.group import GroupMembership, auto_instance_id
from collector.metrics import CollectorMetrics
from collector.writer import EventWriter
from driftline.config import Settings
from driftline.migrations import open_and_migrate

__all__ = ["run_collector"]

log = logging.getLogger("driftline.collect")


def membership_for(group_id: str, instance_id: str | None, session_timeout_s: float) -> GroupMembership:
    """``instance_id``: ``auto`` (the default) derives a static id from the host and a slot lock
    (:func:`collector.group.auto_instance_id`); ``none`` or empty makes a dynamic member."""
    ms = int(session_timeout_s * 1000)
    if instance_id is None or instance_id.strip().lower() == "auto":
        instance_id = auto_instance_id(group_id)
    elif instance_id.strip().lower() in ("", "none"):
        instance_id = None
    return GroupMembership(instance_id=instance_id, session_timeout_ms=ms,
                           heartbeat_interval_ms=max(100, min(3000, ms // 6)), request_timeout_ms=max(30000, ms + 5000))


def run_collector(settings: Settings, *, group_id: str = "driftline-collector", metrics_port: int = 0,
                  batch_max_events: int = 50_000, batch_max_s: float = 1.0, instance_id: str | None = None,
                  session_timeout_s: float = 6.0, stop: threading.Event | None = None) -> int:
    if not settings.kafka_bootstrap:
        raise ValueError("kafka: set --kafka (or DRIFTLINE_KAFKA_BOOTSTRAP) to the brokers to consume from")
    membership = membership_for(group_id, instance_id, session_timeout_s)
    # the store and its migrations only: the web stack (driftline.server) is not loaded into a collector
    store = open_and_migrate(settings)
    metrics = CollectorMetrics()
    if metrics_port:
        from prometheus_client import start_http_server

        start_http_server(metrics_port, addr="127.0.0.1", registry=metrics.registry)
    collector = KafkaCollector(EventWriter(store), bootstrap_servers=settings.kafka_bootstrap, group_id=group_id,
                               topic_prefix=settings.topic_prefix, batch_max_events=batch_max_events,
                               batch_max_s=batch_max_s, metrics=metrics, membership=membership,
                               limits=settings.decode_limits(), redaction=settings.ingest_redaction())

    def _on_signal(signum: int, _frame: Any) -> None:
        log.warning("signal %d: finishing the batch in hand, then leaving the group", signum)
        collector.stop()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_signal)
        signal.signal(signal.SIGINT, _on_signal)
    if stop is not None:
        def stop_when_set() -> None:
            stop.wait()
            collector.stop()

        threading.Thread(target=stop_when_set, daemon=True).start()
    member = f"static member {membership.instance_id!r}" if membership.instance_id else "dynamic member"
    print(f"driftline collect: group {group_id!r} ({member}, session {membership.session_timeout_ms} ms) "
          f"consuming {', '.join(collector.topics)} into {store.engine} ({settings.store_display})", flush=True)
    try:
        collector.run()
    finally:
        collector.close()
        print(f"driftline collect: stopped after {collector.stats.stored_events} events stored, "
              f"{collector.stats.dead_letters} dead letters", flush=True)
    return 0
