"""From raw bytes to stored rows: decode, validate, split good from bad, store both.

Shared by the Kafka consumer and the HTTP ingest API so both treat bad input the same way:
the good events of a batch are stored, each bad one becomes a dead letter naming the field
and the reason, and nothing raw is logged.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from collector.writer import DeadLetter, EventWriter
from serving_shim.contract import ContractError, EventError, decode_batch, validate_events

__all__ = ["Decoded", "decode_message", "store_decoded"]

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

    def extend(self, other: Decoded) -> None:
        for k, v in other.good.items():
            self.good[k].extend(v)
            self.indices[k].extend(other.indices[k])
        self.dead.extend(other.dead)
        self.errors.extend(other.errors)


def _payload(raw: Any) -> str:
    s = raw if isinstance(raw, str) else json.dumps(raw, separators=(",", ":"), default=str)
    return s[:MAX_DEAD_LETTER_PAYLOAD]


def decode_message(data: bytes, *, source: str, kind: str | None = None) -> Decoded:
    """Decode one wire batch (Kafka message value or HTTP body)."""
    out = Decoded()
    try:
        kind, items = decode_batch(data, kind)
    except (ContractError, UnicodeDecodeError) as exc:
        reason = str(exc)
        fld = reason.split(":", 1)[0] if isinstance(exc, ContractError) else "body"
        err = EventError(-1, fld, reason)
        out.errors.append(err)
        out.dead.append(DeadLetter(source, kind or "", -1, "", fld, reason, data[:MAX_DEAD_LETTER_PAYLOAD].decode("utf-8", "replace")))
        return out
    good, errors = validate_events(kind, items)
    out.good[kind].extend(good)
    bad = {e.index for e in errors}
    out.indices[kind].extend(i for i in range(len(items)) if i not in bad)
    out.errors.extend(errors)
    for e in errors:
        out.dead.append(DeadLetter.from_error(source, kind, e, _payload(items[e.index])))
    return out


def store_decoded(writer: EventWriter, decoded: Decoded) -> int:
    """Store good events (one columnar insert per kind) and the dead letters. Returns good count."""
    n = 0
    for kind, events in decoded.good.items():
        n += writer.write(kind, events)
    writer.write_dead_letters(decoded.dead)
    return n
