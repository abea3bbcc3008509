"""Kafka consumer group: event batches from Kafka into the store, no loss, no duplicates.

- Batches by size and time (``batch_max_events``, ``batch_max_s``): one columnar insert per kind.
- Offsets are committed, explicitly, only after the batch in hand is stored (good events and dead
  letters). A crash between insert and commit redelivers the batch; the event tables dedup by
  ``event_id`` and readers use ``FINAL`` (see :mod:`collector.writer`), so results do not change.
- Store failures are the three classes of :mod:`collector.exceptions`, the same on both engines. With
  the store unavailable it retries with exponential backoff and jitter, commits nothing and keeps the
  batch in hand; it resumes without loss when the store returns. Rows the store rejects become dead
  letters with its reason, the events beside them are stored (:func:`collector.ingest.store_isolating`).
  The same holds for an event the store's statement fails on (:class:`~collector.exceptions.QueryError`)
  while the events beside it are stored: a poison event must not stop its partition. A bug (the
  statement fails with nothing of the batch storable, or any other exception) is logged and raised:
  nothing is committed, so the batch is redelivered once it is fixed.
- A commit that fails (broker away, a rebalance under way) is retried with backoff and jitter until it
  succeeds or the partition is revoked (its next owner re-reads from the committed offset); consumption
  goes on meanwhile, and the lag gauge (committed offsets against the log end) shows it.
- On a rebalance, the batch in hand is released uncommitted (for the revoked partitions' sake; with the
  cooperative assignor the partitions kept are rewound to it); the next owner re-reads it from the
  committed offsets.
- Group membership (session, heartbeat, static id, assignor): :mod:`collector.group`. The topics are
  created, or checked, before subscribing.
- ``stop()`` (SIGTERM in ``driftline collect``) finishes the batch in hand, commits, then leaves the group.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from collector.backoff import Backoff
from collector.exceptions import QueryError, StoreRejected, StoreUnavailable
from collector.group import GroupMembership, await_topic_metadata, ensure_topics, group_lag, leave_group
from collector.ingest import (
    DEFAULT_LIMITS,
    DecodeLimits,
    Pending,
    decode_message,
    raise_if_bug,
    refuse_batch,
    store_isolating,
    store_pending,
)
from collector.metrics import CollectorMetrics
from collector.redaction import IngestRedaction
from collector.writer import DeadLetter, EventWriter
from serving_shim.contract import KINDS
from serving_shim.transport import topic_for

__all__ = ["KafkaCollector", "CollectorStats"]

log = logging.getLogger("driftline.collector")


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Decoding a message allocates thousands of objects, none of them in cycles, and storing a batch
    builds its Arrow columns; the cyclic collector would walk them again and again (about 10% of the
    collector's CPU). It is paused while one message is decoded and while a batch is written, and runs as
    usual in between (never across a wait)."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _keep_finished_joins(consumer: Any) -> None:
    """Work around a kafka-python 3.0.12 bug that leaves a member in its group with no partitions.

    A rejoin started because the subscribed topics' metadata changed (a topic created after the collector
    started, partitions added) runs as a task. When ``poll()`` stops waiting before the task is done, the
    next poll asks ``need_rejoin()``; the leader's assignment has by then recorded the new metadata, so the
    answer is "no", and the finished join is never completed: the group has handed this member its
    partitions, but the member does not fetch them until the next rebalance. Measured under CPU load on
    Kafka 4.1: 5 of 20 fresh consumer groups consumed nothing for 10 s.

    The fix, on this consumer's coordinator only: a join in flight (or finished, not yet completed) still
    needs the group loop, and a finished join is completed with its own result instead of being replaced
    by a new JoinGroup (which would start another rebalance for every member)."""
    from kafka import errors as kafka_errors
    from kafka.structs import MemberState

    coord = getattr(consumer, "_coordinator", None)
    if coord is None or not hasattr(coord, "_join_task") or not hasattr(coord, "join_group_async"):
        return  # another kafka-python: nothing to fix here
    need_rejoin = coord.need_rejoin
    join_group_async = coord.join_group_async

    def _need_rejoin() -> bool:
        return coord._join_task is not None or need_rejoin()

    async def _join_group_async(timeout_ms: Any = None) -> bool:
        task = coord._join_task
        if task is None or not task.is_done:
            return bool(await join_group_async(timeout_ms=timeout_ms))
        coord._join_task = None
        try:
            assignment = await task
        except kafka_errors.KafkaError:
            # a failed join: the library's own loop retries (or raises) as it would have
            coord.request_rejoin()
            return bool(await join_group_async(timeout_ms=timeout_ms))
        with coord._lock:
            coord.rejoining = False
            coord.rejoin_needed = False
            coord.state = MemberState.STABLE
            coord._enable_heartbeat()
        gen = coord._generation
        await coord._on_join_complete_async(gen.generation_id, gen.member_id, gen.protocol, assignment)
        log.info("completed a group join that finished between polls")
        return True

    coord.need_rejoin = _need_rejoin
    coord.join_group_async = _join_group_async


class _InHand:
    def __init__(self) -> None:
        self.pending = Pending()
        self.offsets: dict[Any, int] = {}
        self.first_offsets: dict[Any, int] = {}
        self.raw: list[tuple[str, bytes, str | None]] = []    # (source, bytes, kind) of every message
        self.messages = 0
        self.started = 0.0

    @property
    def empty(self) -> bool:
        return self.messages == 0


class KafkaCollector:
    """One member of a consumer group reading the event topics into the store."""

    def __init__(
        self,
        writer: EventWriter,
        *,
        bootstrap_servers: str | Sequence[str],
        group_id: str = "driftline-collector",
        topic_prefix: str = "driftline",
        kinds: Sequence[str] = KINDS,
        batch_max_events: int = 50_000,
        batch_max_s: float = 1.0,
        retry_initial_s: float = 0.2,
        retry_max_s: float = 10.0,
        shutdown_grace_s: float = 10.0,
        dead_letter_topic: bool = True,
        metrics: CollectorMetrics | None = None,
        redaction: IngestRedaction | None = None,
        auto_offset_reset: str = "earliest",
        limits: DecodeLimits = DEFAULT_LIMITS,
        membership: GroupMembership | None = None,
        lag_interval_s: float = 5.0,
        **consumer_config: Any,
    ) -> None:
        from kafka import ConsumerRebalanceListener, KafkaConsumer

        if batch_max_events < 1 or batch_max_s <= 0:
            raise ValueError("batch_max_events must be >= 1 and batch_max_s > 0")
        self.writer = writer
        self.limits = limits
        self.redaction = redaction  # applied to every decoded message (events from senders other than the SDK)
        self.batch_max_events = batch_max_events
        self.batch_max_s = batch_max_s
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        self.shutdown_grace_s = shutdown_grace_s
        self._stop_at = float("inf")
        self.stats = CollectorStats()
        self.metrics = metrics or CollectorMetrics()
        self.topics = [topic_for(k, topic_prefix) for k in kinds]
        self._kind_of_topic = {topic_for(k, topic_prefix): k for k in kinds}
        self._dlq_topic = f"{topic_prefix}.dead_letter" if dead_letter_topic else None
        self._stop = threading.Event()
        self._hand = _InHand()
        self._released: dict[Any, int] = {}
        self._to_commit: dict[Any, int] = {}   # stored, not yet committed (a failed commit waits here)
        self._commit_backoff = Backoff(retry_initial_s, retry_max_s)
        self._broker_backoff = Backoff(retry_initial_s, retry_max_s)
        self._corrupt_at: tuple[Any, int] = (None, 0)   # (partition, offset) of a batch failing its CRC, and how often
        self._commit_at = 0.0
        self.lag_interval_s = lag_interval_s
        self._lag_at = 0.0
        self._lag_labels: set[tuple[str, str]] = set()
        self._producer: Any = None
        self._bootstrap = bootstrap_servers
        self.membership = membership or GroupMembership()
        self._consumer = KafkaConsumer(
            bootstrap_servers=bootstrap_servers,
            group_id=group_id,
            enable_auto_commit=False,
            auto_offset_reset=auto_offset_reset,
            max_poll_records=2000,
            # kafka-python backs off reconnects and metadata refreshes up to 30 s: after a broker restart the
            # collector sat idle that long with the broker back. Java's default: 1 s.
            reconnect_backoff_max_ms=1000,
            **{**self.membership.consumer_config(), **consumer_config},
        )
        collector = self

        class _Listener(ConsumerRebalanceListener):
            def on_partitions_revoked(self, revoked: Any) -> None:
                # Runs inside kafka-python's IO loop (the caller's poll() waits for it), where a synchronous
                # commit is impossible. A batch in hand that holds messages of a revoked partition is
                # released uncommitted: whoever owns these partitions next (this member included) starts
                # again from the committed offsets, so nothing is lost and nothing is stored twice. Under the
                # cooperative assignor the partitions kept are not re-assigned: rewind them here.
                hand = collector._hand
                if hand.empty or not set(revoked) & set(hand.first_offsets):
                    return
                log.info("rebalance: releasing %d uncommitted messages for redelivery", hand.messages)
                kept = set(collector._consumer.assignment()) - set(revoked)
                for tp, off in hand.first_offsets.items():
                    if tp in kept:
                        collector._consumer.seek(tp, off)
                    else:
                        collector._released[tp] = off
                collector._hand = _InHand()

            def on_partitions_assigned(self, assigned: Any) -> None:
                # A partition we keep may keep its fetch position past the released messages: go back.
                for tp in assigned:
                    off = collector._released.pop(tp, None)
                    if off is not None:
                        collector._consumer.seek(tp, off)
                collector._released.clear()
                log.info("assigned %d partitions", len(assigned))

        _keep_finished_joins(self._consumer)
        self._topics_checked = self._ensure_topics(timeout_ms=15000)
        self._topics_check_at = time.monotonic() + 10
        self._consumer.subscribe(self.topics, listener=_Listener())
        if self._topics_checked:
            await_topic_metadata(self._consumer, self.topics)

    def _ensure_topics(self, timeout_ms: int) -> bool:
        topics = [*self.topics, *([self._dlq_topic] if self._dlq_topic else [])]
        return ensure_topics(self._bootstrap, topics, timeout_ms=timeout_ms) is not None

    # -- polling ---------------------------------------------------------------------------------

    def _take(self, polled: dict[Any, list[Any]]) -> None:
        hand = self._hand
        for tp, msgs in polled.items():
            kind = self._kind_of_topic.get(tp.topic)
            for m in msgs:
                if hand.empty:
                    hand.started = time.monotonic()
                hand.messages += 1
                src = f"kafka:{tp.topic}:{tp.partition}:{m.offset}"
                hand.raw.append((src, m.value, kind))
                decoded = self._decode(m.value, src, kind)
                hand.pending.add(self.redaction.apply(decoded) if self.redaction is not None else decoded)
                hand.offsets[tp] = m.offset + 1
                hand.first_offsets.setdefault(tp, m.offset)
                if hand.pending.n_events >= self.batch_max_events:
                    self.flush()  # full: store and commit what is in hand, then go on with the rest
                    hand = self._hand
        n = sum(len(v) for v in polled.values())
        self.metrics.consumed.inc(n)
        self.stats.consumed_messages += n

    def _decode(self, value: bytes | None, src: str, kind: str | None) -> Any:
        """One message's events, or its dead letter: a message the collector cannot read (a tombstone,
        empty, compressed by its producer, oversized, not JSON, not UTF-8) never stops the partition."""
        try:
            with _gc_paused():
                return decode_message(value, source=src, kind=kind, limits=self.limits)
        except Exception as exc:  # noqa: BLE001 - a message that breaks the decoder is a dead letter, not a crash loop
            log.error("could not decode %s (%s); kept as a dead letter", src, type(exc).__name__)
            return refuse_batch(src, kind, value, "(message)",
                                f"collector could not decode the message: {type(exc).__name__}")

    def _due(self) -> bool:
        h = self._hand
        if h.empty:
            return False
        events = h.pending.n_events
        return events >= self.batch_max_events or time.monotonic() - h.started >= self.batch_max_s

    def poll_once(self, timeout_s: float = 0.2) -> int:
        """Poll once; store and commit the batch in hand when it is full or old enough. Returns events stored."""
        polled = self._poll(int(timeout_s * 1000))
        if polled:
            self._take(polled)
        self._commit_due()
        self._update_lag()
        if not self._topics_checked and time.monotonic() >= self._topics_check_at:
            # the broker was away at start: create the missing topics once it answers (the
            # subscription picks them up with the next metadata refresh)
            self._topics_checked = self._ensure_topics(timeout_ms=2000)
            self._topics_check_at = time.monotonic() + 10
        if self._due():
            return self.flush()
        return 0

    def poll_batch(self, max_wait_s: float | None = None) -> int:
        """Poll until a batch is due (or ``max_wait_s``), then store and commit it."""
        deadline = time.monotonic() + (self.batch_max_s if max_wait_s is None else max_wait_s)
        while not self._stop.is_set() and time.monotonic() < deadline:
            polled = self._poll(100)
            if polled:
                self._take(polled)
            self._commit_due()
            if self._due():
                break
        self._update_lag()
        return self.flush()

    def _poll(self, timeout_ms: int) -> dict[Any, list[Any]]:
        """One poll; a broker that is away is waited for (with backoff), never fatal."""
        from kafka.errors import KafkaError

        try:
            polled: dict[Any, list[Any]] = self._consumer.poll(timeout_ms=timeout_ms, max_records=2000)
            self._broker_backoff.reset()
            return polled
        except KafkaError as exc:
            if self._skip_undecodable(exc):
                return {}
            self.metrics.broker_errors.inc()
            delay = self._broker_backoff.next()
            log.warning("broker unavailable (%s); retrying in %.2fs", type(exc).__name__, delay)
            self._stop.wait(delay)
            return {}

    def _skip_undecodable(self, exc: Exception) -> bool:
        """A record batch this client cannot decode (compressed with a codec it lacks, such as zstd or
        snappy without their Python packages; or failing its checksum three fetches in a row) would stop
        its partition for good: each of its messages becomes a dead letter (no bytes: none could be read),
        one offset per poll, and consumption goes on. False for every other error."""
        from kafka.errors import CorruptRecordError, UnsupportedCodecError

        if not isinstance(exc, (UnsupportedCodecError, CorruptRecordError)):
            return False
        part = getattr(getattr(self._consumer, "_fetcher", None), "_next_partition_records", None)
        tp, offset = getattr(part, "topic_partition", None), getattr(part, "next_fetch_offset", None)
        if tp is None or offset is None or tp not in self._consumer.assignment():
            return False
        if isinstance(exc, CorruptRecordError):  # a checksum can fail in transit: fetch again twice first
            at, n = self._corrupt_at
            n = n + 1 if at == (tp, offset) else 1
            self._corrupt_at = ((tp, offset), n)
            if n < 3:
                return False
        what = "compressed with a codec this collector cannot read" if isinstance(exc, UnsupportedCodecError) \
            else "a record batch that fails its checksum"
        src = f"kafka:{tp.topic}:{tp.partition}:{offset}"
        log.error("%s: %s (%s); kept as a dead letter", src, what, exc)
        hand = self._hand
        if hand.empty:
            hand.started = time.monotonic()
        hand.messages += 1
        hand.raw.append((src, b"", None))
        hand.pending.add(refuse_batch(src, self._kind_of_topic.get(tp.topic), b"", "(record batch)",
                                      f"record batch: {what}: {exc}"))
        hand.offsets[tp] = offset + 1
        hand.first_offsets.setdefault(tp, offset)
        self._consumer.seek(tp, offset + 1)
        return True

    def _update_lag(self) -> None:
        """Every ``lag_interval_s``: the lag gauge of each assigned partition, from the group's committed
        offset (:func:`collector.group.group_lag`); partitions no longer assigned leave the gauge."""
        now = time.monotonic()
        if now < self._lag_at or self._broker_backoff.failures:
            return  # not due, or the broker is away (the poll is backing off)
        self._lag_at = now + self.lag_interval_s
        try:
            lag = group_lag(self._consumer, self._consumer.assignment(), timeout_ms=1000)
        except Exception as exc:  # noqa: BLE001 - lag is best effort; never stops consumption
            log.debug("lag not updated: %s", exc)
            return
        labels = {(tp.topic, str(tp.partition)): n for tp, n in lag.items()}
        for gone in self._lag_labels - set(labels):
            self.metrics.lag.remove(*gone)
        for key, n in labels.items():
            self.metrics.lag.labels(*key).set(n)
        self._lag_labels = set(labels)

    def lag(self) -> dict[Any, int]:
        """The lag now (committed offsets against the log end) of each partition this member holds."""
        return group_lag(self._consumer, self._consumer.assignment())

    # -- committing ------------------------------------------------------------------------------

    @property
    def uncommitted(self) -> dict[Any, int]:
        """Offsets stored in the store whose commit has not succeeded yet (retried by every poll)."""
        return dict(self._to_commit)

    def _commit_due(self) -> None:
        if self._to_commit and time.monotonic() >= self._commit_at:
            self._commit()

    def _commit(self) -> bool:
        """Commit what is stored and not yet committed. On failure, retry later (exponential backoff with
        jitter, from every poll) until it succeeds or the partition is no longer ours: its next owner
        re-reads from the committed offset, and the dedup keeps the re-read events once."""
        from kafka.errors import KafkaError
        from kafka.structs import OffsetAndMetadata

        mine = set(self._consumer.assignment())
        gone = [tp for tp in self._to_commit if tp not in mine]
        for tp in gone:
            log.info("partition %s:%d was revoked before its commit succeeded: its next owner re-reads "
                     "from the committed offset", tp.topic, tp.partition)
            del self._to_commit[tp]
        if not self._to_commit:
            return True
        offsets = dict(self._to_commit)
        try:
            self._consumer.commit({tp: OffsetAndMetadata(off, "", -1) for tp, off in offsets.items()},
                                  timeout_ms=min(5000, self.membership.request_timeout_ms))
        except (KafkaError, RuntimeError) as exc:
            self.metrics.commit_failures.inc()
            wait = self._commit_backoff.next()
            self._commit_at = time.monotonic() + wait
            log.warning("commit of %d partitions failed (%s); retrying in %.2fs", len(offsets), type(exc).__name__,
                        wait)
            return False
        for tp, off in offsets.items():
            if self._to_commit.get(tp) == off:
                del self._to_commit[tp]
        self.metrics.commits.inc()
        self._commit_backoff.reset()
        self._commit_at = 0.0
        return True

    # -- storing ---------------------------------------------------------------------------------

    def flush(self) -> int:
        """Store the batch in hand (retrying while the store is down), then commit its offsets.

        If stop is requested while the store is still down, nothing is committed: the batch is
        redelivered to whoever consumes these partitions next.
        """
        hand = self._hand
        if hand.empty:
            return 0
        backoff = Backoff(self.retry_initial_s, self.retry_max_s)
        t0 = time.monotonic()
        isolate = False
        refused: Exception | None = None
        while True:
            try:
                with _gc_paused():
                    stored = self._store_isolating(hand) if isolate else store_pending(self.writer, hand.pending)
                self.metrics.store_up.set(1)
                break
            except (StoreRejected, QueryError) as exc:
                # rows the store refuses, or a statement failing: store message by message; refused rows, and
                # events the statement fails on while others are stored, become dead letters
                if isolate:     # the dead letters refused, or nothing of the batch storable: not the events' fault
                    self.metrics.store_errors.inc()
                    log.exception("store write failed on a bug; %d messages left uncommitted", hand.messages)
                    raise
                log.warning("store %s a batch of %d messages (%s); storing message by message",
                            "rejected rows of" if isinstance(exc, StoreRejected) else "failed on",
                            hand.messages, str(exc).split("\n", 1)[0][:200])
                isolate = True
                continue
            except StoreUnavailable as exc:
                refused = exc
            except Exception:
                # a bug of the collector: not an outage to wait out, not the events' fault; nothing is committed
                self.metrics.store_errors.inc()
                log.exception("store write failed on a bug; %d messages left uncommitted", hand.messages)
                raise
            # retry with backoff; nothing is committed meanwhile
            self.metrics.store_errors.inc()
            self.metrics.store_up.set(0)
            if self._stop.is_set() and time.monotonic() >= self._stop_at + self.shutdown_grace_s:
                log.warning("store unavailable at shutdown; %d messages left uncommitted for redelivery", hand.messages)
                self._hand = _InHand()
                return 0
            sleep = backoff.next()
            log.warning("store write failed (%s); retrying in %.2fs, nothing committed", type(refused).__name__, sleep)
            time.sleep(sleep)
        self.metrics.batch_seconds.observe(time.monotonic() - t0)
        self.metrics.batch_events.observe(stored)
        for kind, n in hand.pending.counts.items():
            self.metrics.stored.labels(kind).inc(n)
        self.stats.stored_events += stored
        self.stats.batches += 1
        if hand.pending.dead:
            self.metrics.dead.inc(len(hand.pending.dead))
            self.stats.dead_letters += len(hand.pending.dead)
            self._publish_dead_letters(hand.pending.dead)
        for tp, off in hand.offsets.items():
            self._to_commit[tp] = max(off, self._to_commit.get(tp, off))
        self._hand = _InHand()
        self._commit()
        return stored

    def _store_isolating(self, hand: _InHand) -> int:
        """The store rejected rows of the batch in hand, or its statement failed: store it message by message
        (each decoded again), so only the events the store refuses or fails on become dead letters (with its
        reason); those join the batch's dead letters, which are written last. Statement failures with nothing
        stored are a bug and raised (:func:`collector.ingest.raise_if_bug`)."""
        refused: list[DeadLetter] = []
        failures: list[QueryError] = []
        n = 0
        for src, raw, kind in hand.raw:
            decoded = self._decode(raw, src, kind)
            if self.redaction is not None:
                self.redaction.apply(decoded)
            known = len(decoded.dead)       # the decoder's own dead letters are in hand.pending.dead already
            n += store_isolating(self.writer, decoded, failures)
            refused.extend(decoded.dead[known:])
        raise_if_bug(n, failures)
        if refused and self.redaction is not None:
            refused = self.redaction.dead_letters(refused)
        dead = hand.pending.dead + refused
        self.writer.write_dead_letters(dead)
        hand.pending.dead = dead
        return n

    def _publish_dead_letters(self, dead: list[DeadLetter]) -> None:
        if not self._dlq_topic:
            return
        try:
            if self._producer is None:
                from kafka import KafkaProducer

                self._producer = KafkaProducer(bootstrap_servers=self._bootstrap, compression_type="lz4",
                                               max_block_ms=2000)
            for d in dead:
                self._producer.send(self._dlq_topic, value=d.payload, headers=[
                    ("source", d.source.encode()), ("index", str(d.index).encode()), ("kind", d.kind.encode()),
                    ("field", d.field.encode()),
                    ("reason", d.reason.encode()[:1000])])
        except Exception as exc:  # noqa: BLE001 - the table has them; the topic is a copy
            log.warning("dead-letter topic unavailable (%s); dead letters are in the table", type(exc).__name__)

    # -- lifecycle -------------------------------------------------------------------------------

    def assignment(self) -> set[Any]:
        return set(self._consumer.assignment())

    def run(self) -> None:
        """Consume until :meth:`stop`; then store the batch in hand and leave the group."""
        while not self._stop.is_set():
            self.poll_once()
        self.flush()
        self._final_commit()

    def _final_commit(self) -> None:
        """At a clean stop: keep retrying a failed commit for ``shutdown_grace_s``, so what is stored is
        committed before the group hands the partitions on (else the next owner re-reads it)."""
        deadline = time.monotonic() + self.shutdown_grace_s
        while self._to_commit and not self._commit() and time.monotonic() < deadline:
            time.sleep(max(0.0, min(self._commit_at, deadline) - time.monotonic()))
        if self._to_commit:
            log.warning("stopping with %d partitions stored but not committed: their next owner re-reads them",
                        len(self._to_commit))

    def stop(self) -> None:
        """Ask :meth:`run` to finish the batch in hand (retrying the store for ``shutdown_grace_s``) and return."""
        self._stop_at = time.monotonic()
        self._stop.set()

    def close(self) -> None:
        self._stop.set()
        try:
            self._final_commit()
            leave_group(self._consumer)   # a static member too: hand the partitions on now, not after the session
            self._consumer.close(autocommit=False)
        finally:
            if self._producer is not None:
                self._producer.close(timeout=2)


@dataclass
class CollectorStats:
    consumed_messages: int = 0
    stored_events: int = 0
    dead_letters: int = 0
    batches: int = 0
