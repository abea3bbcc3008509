"""From raw bytes to stored rows: decode, validate, split good from bad, store both.

Shared by the Kafka consumer and the HTTP ingest API so both treat bad input the same way:
the good events of a batch are stored, each bad one becomes a dead letter naming the field
and the reason, and nothing raw is logged.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from collector.writer import DeadLetter, EventWriter, to_columns
from serving_shim.contract import (
    ContractError,
    EventError,
    decode_batch,
    decode_raw_batch,
    validate_batch_fast,
    validate_events,
    validate_raw_events,
)

__all__ = ["Decoded", "Pending", "decode_message", "store_decoded", "store_pending"]

MAX_DEAD_LETTER_PAYLOAD = 64 * 1024


@dataclass
class Decoded:
    """Good events grouped by kind, and dead letters for what was rejected."""

    good: dict[str, list[Any]] = field(default_factory=lambda: defaultdict(list))
    dead: list[DeadLetter] = field(default_factory=list)
    errors: list[EventError] = field(default_factory=list)
    #: for each kind, the batch index of each good event (parallel to ``good[kind]``)
    indices: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))

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


def _payload(raw: Any) -> str:
    s = raw if isinstance(raw, str) else json.dumps(raw, separators=(",", ":"), default=str)
    return s[:MAX_DEAD_LETTER_PAYLOAD]


def decode_message(data: bytes, *, source: str, kind: str | None = None) -> Decoded:
    """Decode one wire batch (Kafka message value or HTTP body)."""
    if kind is not None and (whole := validate_batch_fast(data, kind)) is not None:
        return _decoded(source, kind, whole, range(len(whole)), [], str)  # every event good: one compiled pass
    fast = decode_raw_batch(data, kind)
    if fast is not None:  # an envelope or array of a high-volume kind: compiled validation, see the contract
        kind, raws = fast
        good, indices, errors = validate_raw_events(kind, raws)
        return _decoded(source, kind, good, indices, errors,
                        lambda i: bytes(raws[i])[:MAX_DEAD_LETTER_PAYLOAD].decode("utf-8", "replace"))
    try:
        kind, items = decode_batch(data, kind)
    except (ContractError, UnicodeDecodeError) as exc:
        reason = str(exc)
        fld = reason.split(":", 1)[0] if isinstance(exc, ContractError) else "body"
        out = Decoded()
        out.errors.append(EventError(-1, fld, reason))
        out.dead.append(DeadLetter(source, kind or "", -1, "", fld, reason, data[:MAX_DEAD_LETTER_PAYLOAD].decode("utf-8", "replace")))
        return out
    good, errors = validate_events(kind, items)
    bad = {e.index for e in errors}
    return _decoded(source, kind, good, [i for i in range(len(items)) if i not in bad], errors,
                    lambda i: _payload(items[i]))


def _decoded(source: str, kind: str, good: list[Any], indices: Iterable[int], errors: list[EventError],
             payload: Callable[[int], str]) -> Decoded:
    """The good events with their batch positions, and a dead letter (with ``payload(index)``) per error."""
    out = Decoded()
    out.good[kind].extend(good)
    out.indices[kind].extend(indices)
    out.errors.extend(errors)
    out.dead.extend(DeadLetter.from_error(source, kind, e, payload(e.index)) for e in errors)
    return out


def store_decoded(writer: EventWriter, decoded: Decoded) -> int:
    """Store good events (one columnar insert per kind) and the dead letters. Returns good count."""
    pending = Pending()
    pending.add(decoded)
    return store_pending(writer, pending)


def store_pending(writer: EventWriter, pending: Pending) -> int:
    """Store a collector's batch in hand (one columnar insert per kind) and its dead letters."""
    n = 0
    for kind, cols in pending.columns.items():
        n += writer.write_columns(kind, cols)
    writer.write_dead_letters(pending.dead)
    return n
