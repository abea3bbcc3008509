"""Kafka consumer group: event batches from Kafka into the store, no loss, no duplicates.

Offsets are committed only after every message polled so far is stored (good events and dead
letters). A crash between the insert and the commit redelivers the batch; the event tables dedup
by ``event_id`` (see :mod:`collector.writer`), so query results do not change.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from collector.ingest import Decoded, decode_message, store_decoded
from collector.writer import EventWriter
from serving_shim.contract import KINDS
from serving_shim.transport import topic_for

__all__ = ["KafkaCollector", "CollectorStats"]

log = logging.getLogger("driftline.collector")


@dataclass
class CollectorStats:
    consumed_messages: int = 0
    stored_events: int = 0
    dead_letters: int = 0
    batches: int = 0
    last_batch_s: float = 0.0
    errors: dict[str, int] = field(default_factory=dict)


class KafkaCollector:
    """One member of a consumer group reading the four event topics."""

    def __init__(
        self,
        writer: EventWriter,
        *,
        bootstrap_servers: str | Sequence[str],
        group_id: str = "driftline-collector",
        topic_prefix: str = "driftline",
        kinds: Sequence[str] = KINDS,
        batch_max_messages: int = 500,
        batch_max_s: float = 1.0,
        auto_offset_reset: str = "earliest",
        **consumer_config: object,
    ) -> None:
        from kafka import KafkaConsumer

        self.writer = writer
        self.batch_max_messages = batch_max_messages
        self.batch_max_s = batch_max_s
        self.stats = CollectorStats()
        self.topics = [topic_for(k, topic_prefix) for k in kinds]
        self._kind_of_topic = {topic_for(k, topic_prefix): k for k in kinds}
        self._consumer = KafkaConsumer(
            *self.topics,
            bootstrap_servers=bootstrap_servers,
            group_id=group_id,
            enable_auto_commit=False,
            auto_offset_reset=auto_offset_reset,
            max_poll_records=batch_max_messages,
            **consumer_config,
        )
        self._stop = threading.Event()

    def poll_batch(self) -> int:
        """Poll up to one batch, store it, commit its offsets. Returns the events stored."""
        deadline = time.monotonic() + self.batch_max_s
        decoded = Decoded()
        n_msgs = 0
        while n_msgs < self.batch_max_messages and not self._stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            polled = self._consumer.poll(timeout_ms=int(remaining * 1000) + 1, max_records=self.batch_max_messages - n_msgs)
            for tp, msgs in polled.items():
                kind = self._kind_of_topic.get(tp.topic)
                for m in msgs:
                    n_msgs += 1
                    decoded.extend(decode_message(m.value, source=f"kafka:{tp.topic}:{tp.partition}:{m.offset}", kind=kind))
        if n_msgs == 0:
            return 0
        t0 = time.monotonic()
        stored = store_decoded(self.writer, decoded)
        self._consumer.commit()
        self.stats.consumed_messages += n_msgs
        self.stats.stored_events += stored
        self.stats.dead_letters += len(decoded.dead)
        self.stats.batches += 1
        self.stats.last_batch_s = time.monotonic() - t0
        if decoded.dead:
            log.warning("batch of %d messages: %d events stored, %d dead letters", n_msgs, stored, len(decoded.dead))
        return stored

    def run(self) -> None:
        while not self._stop.is_set():
            self.poll_batch()

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        self._stop.set()
        self._consumer.close(autocommit=False)
