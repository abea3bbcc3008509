"""From raw bytes to stored rows: decode, validate, split good from bad, store both.

Shared by the Kafka consumer and the HTTP ingest API so both treat bad input the same way:
the good events of a batch are stored, each bad one becomes a dead letter naming the field
and the reason, and nothing raw is logged. An event the store itself refuses (a value its column cannot
hold: :class:`~collector.exceptions.StoreRejected`) becomes a dead letter too, with the store's reason,
and the good events beside it are stored (:func:`store_isolating`). So does an event on which the store's
statement itself fails (:class:`~collector.exceptions.QueryError`) when events beside it were stored: that
failure is the event's, and retrying it forever would stop every partition behind it. When nothing of a
batch can be stored the failure is a bug: it is raised, and nothing is dead-lettered or committed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from collector._fastdecode import validate_batch_fast, validate_raw_events
from collector.exceptions import QueryError, StoreRejected
from collector.writer import DeadLetter, EventWriter, to_columns
from serving_shim.codec import compression_of, read_batch
from serving_shim.contract import DEFAULT_WINDOW, MAX_BATCH_EVENTS, EventError, TimeWindow
from serving_shim.exceptions import BatchTooLarge, ContractError

__all__ = ["Decoded", "DecodeLimits", "Pending", "decode_message", "refuse_batch", "store_decoded", "store_pending",
           "store_isolating", "raise_if_bug"]


@dataclass(frozen=True, kw_only=True)
class DecodeLimits:
    """What one batch (an HTTP body, a Kafka message) may hold: its bytes (``None``: capped before it got
    here, as HTTP bodies are by :class:`collector.authz.Authorize`), its events (counted while reading) and
    the times of its events (``window``; ``None``: any time)."""

    max_bytes: int | None = 10 * 1024 * 1024
    max_events: int = MAX_BATCH_EVENTS
    window: TimeWindow | None = DEFAULT_WINDOW


DEFAULT_LIMITS = DecodeLimits()


@dataclass
class Decoded:
    """Good events grouped by kind, and dead letters for what was rejected."""

    good: dict[str, list[Any]] = field(default_factory=lambda: defaultdict(list))
    dead: list[DeadLetter] = field(default_factory=list)
    errors: list[EventError] = field(default_factory=list)
    #: for each kind, the batch index of each good event (parallel to ``good[kind]``)
    indices: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    #: the whole batch was refused for its size (bytes or events): HTTP 413
    too_large: bool = False
    #: where the batch came from and its bytes (for the dead letter of an event the store refuses)
    source: str = ""
    raw: Any = b""

    @property
    def n_good(self) -> int:
        return sum(len(v) for v in self.good.values())


class Pending:
    """What a collector holds between two offset commits: the good events of many messages as columns
    per kind (each message's event objects are turned into columns and dropped as it arrives, which
    keeps the batch small in memory and costs half as much as holding thousands of objects), and the
    dead letters."""

    def __init__(self) -> None:
        self.columns: dict[str, dict[str, Any]] = {}
        self.counts: dict[str, int] = {}
        self.dead: list[DeadLetter] = []

    def add(self, decoded: Decoded) -> None:
        for kind, events in decoded.good.items():
            if events:
                self.columns[kind] = to_columns(kind, events, into=self.columns.get(kind))[1]
                self.counts[kind] = self.counts.get(kind, 0) + len(events)
        self.dead.extend(decoded.dead)

    @property
    def n_events(self) -> int:
        return sum(self.counts.values()) + len(self.dead)


def decode_message(data: bytes | None, *, source: str, kind: str | None = None,
                   limits: DecodeLimits = DEFAULT_LIMITS) -> Decoded:
    """Decode one wire batch (Kafka message value or HTTP body). Never raises for bad input: a batch that
    cannot be read at all (a null value, empty, compressed by its producer, over ``limits``, not JSON, a
    wrong kind) becomes one dead letter with index -1; each bad event in a readable batch becomes its own."""
    out = _decode(data, source=source, kind=kind, limits=limits)
    out.source, out.raw = source, data or b""
    return out


def _decode(data: bytes | None, *, source: str, kind: str | None, limits: DecodeLimits) -> Decoded:
    if data is None:
        return refuse_batch(source, kind, b"", "value", "null value (a tombstone): no batch to read")
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")
    if limits.max_bytes is not None and len(data) > limits.max_bytes:
        return refuse_batch(source, kind, data, "body",
                            f"body: {len(data)} bytes is over the limit of {limits.max_bytes}", too_large=True)
    codec = compression_of(data)
    if codec is not None:
        return refuse_batch(source, kind, data, "body", f"body: compressed with {codec} by its producer; a batch is "
                            "JSON (compress with the Kafka producer's compression_type instead)")
    if kind is not None and (whole := validate_batch_fast(data, kind, max_events=limits.max_events,
                                                          window=limits.window)) is not None:
        return _decoded(source, kind, whole, range(len(whole)), [], lambda i: b"")  # every event good: one pass
    try:
        kind, split = read_batch(data, kind, max_events=limits.max_events)
    except ContractError as exc:
        reason = str(exc)
        return refuse_batch(source, kind, data, reason.split(":", 1)[0], reason,
                            too_large=isinstance(exc, BatchTooLarge))
    good, indices, errors = validate_raw_events(kind, split.raws, window=limits.window, lines=split.lines)
    return _decoded(source, kind, good, indices, errors, lambda i: split.raws[i])


def refuse_batch(source: str, kind: str | None, data: Any, fld: str, reason: str, *,
                 too_large: bool = False) -> Decoded:
    """The whole batch refused: one error and one dead letter (index -1) with its bytes."""
    out = Decoded(too_large=too_large)
    out.errors.append(EventError(-1, fld, reason))
    out.dead.append(DeadLetter.from_error(source, kind or "", out.errors[0], data))
    return out


def _decoded(source: str, kind: str, good: list[Any], indices: Iterable[int], errors: list[EventError],
             raw: Callable[[int], Any]) -> Decoded:
    """The good events with their batch positions, and a dead letter (with the bytes ``raw(index)``) per error."""
    out = Decoded()
    out.good[kind].extend(good)
    out.indices[kind].extend(indices)
    out.errors.extend(errors)
    out.dead.extend(DeadLetter.from_error(source, kind, e, raw(e.index)) for e in errors)
    return out


def store_decoded(writer: EventWriter, decoded: Decoded,
                  redact: Callable[[list[DeadLetter]], list[DeadLetter]] | None = None) -> int:
    """Store good events (one columnar insert per kind) and the dead letters. Returns the count stored.

    Rows the store rejects, and events the store's statement fails on while others are stored, become
    errors and dead letters of ``decoded`` (:func:`store_isolating`; their dead letters through ``redact``);
    an outage (:class:`StoreUnavailable`) or a bug (nothing storable: :func:`raise_if_bug`) propagates."""
    pending = Pending()
    pending.add(decoded)
    try:
        return store_pending(writer, pending)
    except (StoreRejected, QueryError):
        known = len(decoded.dead)
        failures: list[QueryError] = []
        n = store_isolating(writer, decoded, failures)
        raise_if_bug(n, failures)
        if redact is not None:
            decoded.dead[known:] = redact(decoded.dead[known:])
        writer.write_dead_letters(decoded.dead)
        return n


def raise_if_bug(stored: int, failures: list[QueryError]) -> None:
    """After :func:`store_isolating`: statement failures with nothing of the batch stored are a bug (the
    statement fails on any event), not the events' fault: raise the first."""
    if failures and stored == 0:
        raise failures[0]


def store_isolating(writer: EventWriter, decoded: Decoded, failures: list[QueryError] | None = None) -> int:
    """Store the good events of ``decoded`` apart from the rows the store rejects: a rejected insert is
    halved until each refused event is alone, and each refused event becomes an error and a dead letter
    (with the store's reason and ``decoded.raw``) appended to ``decoded``. Returns the count stored; does
    not write the dead letters. Outages propagate (what is stored by then is stored again on a retry, and
    collapses by ``event_id``). With ``failures`` given, a statement failure (:class:`QueryError`) is
    isolated the same way and also appended there, for the caller to tell a bug from a bad event
    (:func:`raise_if_bug`); without it, it propagates."""
    n = 0
    for kind, events in decoded.good.items():
        n += _store_halves(writer, decoded, kind, events, decoded.indices[kind], failures)
    if len(decoded.errors) > 1:
        decoded.errors.sort(key=lambda e: e.index)
    return n


def _store_halves(writer: EventWriter, decoded: Decoded, kind: str, events: list[Any], indices: list[int],
                  failures: list[QueryError] | None) -> int:
    if not events:
        return 0
    try:
        return writer.write(kind, events)
    except (StoreRejected, QueryError) as exc:
        if isinstance(exc, QueryError):
            if failures is None:
                raise
            if len(events) == 1:
                failures.append(exc)
        if len(events) > 1:
            mid = len(events) // 2
            return (_store_halves(writer, decoded, kind, events[:mid], indices[:mid], failures)
                    + _store_halves(writer, decoded, kind, events[mid:], indices[mid:], failures))
        what = "refused the event" if isinstance(exc, StoreRejected) else "failed on the event"
        err = EventError(indices[0], "(store)", f"the store {what}: {str(exc)[:500]}", events[0].event_id)
        decoded.errors.append(err)
        decoded.dead.append(DeadLetter.from_error(decoded.source, kind, err, decoded.raw))
        return 0


def store_pending(writer: EventWriter, pending: Pending) -> int:
    """Store a collector's batch in hand (one columnar insert per kind) and its dead letters."""
    n = 0
    for kind, cols in pending.columns.items():
        n += writer.write_columns(kind, cols)
    writer.write_dead_letters(pending.dead)
    return n
