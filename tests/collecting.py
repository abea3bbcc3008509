"""Drain Kafka into a store with a real KafkaCollector until a condition on the store holds."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from collector.consumer import KafkaCollector
from collector.writer import EventWriter


def collect_until(store: Any, bootstrap: str, topic_prefix: str, done: Callable[[], bool], *,
                  timeout_s: float = 60) -> None:
    """Consume the prefix's topics (group ``<prefix>-g``) into ``store`` until ``done()`` or the timeout."""
    collector = KafkaCollector(EventWriter(store), bootstrap_servers=bootstrap, group_id=f"{topic_prefix}-g",
                               topic_prefix=topic_prefix, batch_max_s=0.5)
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            collector.poll_batch()
            if done():
                break
    finally:
        collector.close()
