"""The wire codec of the event contract: batches to bytes and back.

On the wire a batch is an envelope ``{"schema_version": 1, "kind": "prediction", "events": [...]}``
(one Kafka message, or one HTTP body); readers also take a bare JSON array (the kind named by the
endpoint), one event object, or NDJSON lines, optionally gzip/zstd-compressed (:func:`compression_of`).

- :func:`encode_batch`: contract models, fast-path objects or plain dicts to one wire batch.
- :func:`read_batch`: a wire batch split into its events' raw JSON, counted while reading (the
  collector validates each one on its own, so one bad event never takes the others down).
- :func:`decode_batch`: a wire batch to Python objects, all or nothing.
- :func:`load_event` / :func:`loads`: one event's JSON (orjson, with json's error messages).

The models and their validation live in :mod:`serving_shim.contract`.
"""

from __future__ import annotations

import datetime as _dt
import json
from typing import Any

import msgspec as _ms
from pydantic import BaseModel

from serving_shim._internal.framing import MAX_DEPTH, Split, compression_of, is_ndjson, split_batch, too_deep
from serving_shim.contract import KINDS, MAX_BATCH_EVENTS, MODEL_FOR_KIND, SCHEMA_VERSION, EventError, as_utc
from serving_shim.exceptions import ContractError

__all__ = [
    "MAX_DEPTH",
    "Split",
    "compression_of",
    "is_ndjson",
    "encode_batch",
    "decode_batch",
    "read_batch",
    "load_event",
    "loads",
]


def _default(o: Any) -> Any:
    if isinstance(o, _dt.datetime):
        return as_utc(o).isoformat()
    if isinstance(o, BaseModel):
        return o.model_dump(mode="json", exclude_none=True)
    if isinstance(o, _ms.Struct):
        return {k: v for k, v in _ms.to_builtins(o).items() if v is not None}
    raise TypeError(f"cannot encode {type(o).__name__}")


def encode_batch(kind: str, events: list[Any]) -> bytes:
    """One wire batch (Kafka message value or HTTP body): events may be models or plain dicts."""
    if kind not in MODEL_FOR_KIND:
        raise ContractError(f"kind: unknown event kind {kind!r}")
    payload = {"schema_version": SCHEMA_VERSION, "kind": kind, "events": events}
    return json.dumps(payload, default=_default, separators=(",", ":")).encode()


try:  # orjson parses about 3x faster than json; both give the same objects
    import orjson as _orjson

    def loads(text: str) -> Any:
        try:
            return _orjson.loads(text)
        except _orjson.JSONDecodeError:
            return json.loads(text)  # for json's error message (line and column)
except ImportError:  # pragma: no cover - orjson is a dependency
    def loads(text: str) -> Any:
        return json.loads(text)


def decode_batch(data: bytes, kind: str | None = None, *, max_events: int = MAX_BATCH_EVENTS) -> tuple[str, list[Any]]:
    """Read a wire batch: an envelope, a bare JSON array (``kind`` required), one event, or NDJSON lines.

    Returns ``(kind, raw_events)`` as Python objects; events are validated separately with
    :func:`serving_shim.contract.validate_events`. Raises :class:`ContractError` when the batch, or any
    event in it, cannot be read (:func:`read_batch` and the collector's reader reject such events one by
    one instead).
    """
    kind, split = read_batch(data, kind, max_events=max_events)
    out = []
    for i, raw in enumerate(split.raws):
        item = load_event(raw)
        if isinstance(item, EventError):
            where = f"line {split.lines[i]}" if split.lines is not None else f"event {i}"
            raise ContractError(f"body: {where}: {item.reason}")
        out.append(item)
    return kind, out


def read_batch(data: bytes, kind: str | None = None, *, max_events: int = MAX_BATCH_EVENTS) -> tuple[str, Split]:
    """The kind and the events of a wire batch (envelope, array, one object or NDJSON), each event as its
    own bytes, counted while reading. Raises :class:`BatchTooLarge` past ``max_events`` and
    :class:`ContractError` for a batch that cannot be read at all (empty, not JSON, a wrong kind)."""
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")
    split = split_batch(bytes(data), max_events=max_events)
    env_kind = split.kind
    if env_kind is not None and not isinstance(env_kind, str):
        raise ContractError(f"kind: must be a string, got {type(env_kind).__name__}")
    if kind is not None and env_kind not in (None, kind):
        raise ContractError(f"kind: envelope says {env_kind!r}, endpoint is {kind!r}")
    kind = env_kind or kind
    if kind is None:
        raise ContractError("kind: missing (name it in the envelope or the endpoint)")
    if kind not in MODEL_FOR_KIND:
        raise ContractError(f"kind: unknown event kind {kind!r} (expected one of {', '.join(KINDS)})")
    return kind, split


def load_event(raw: Any) -> Any:
    """One event's JSON as Python objects, or the EventError that says why it cannot be read."""
    b = bytes(raw)
    try:
        text = b.decode("utf-8")
    except UnicodeDecodeError as exc:
        return EventError(-1, "(event)", f"not valid UTF-8 (byte 0x{b[exc.start]:02x} at position {exc.start})")
    if too_deep(b):
        return EventError(-1, "(event)", f"nested deeper than {MAX_DEPTH} levels")
    try:
        return loads(text)
    except json.JSONDecodeError as exc:
        return EventError(-1, "(event)", f"not valid JSON ({exc.msg}: column {exc.colno})")
    except RecursionError:
        return EventError(-1, "(event)", f"nested deeper than {MAX_DEPTH} levels")
