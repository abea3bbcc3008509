"""Splitting a wire batch into its events' raw JSON, with the limits checked while reading.

A batch is an envelope ``{"kind": ..., "events": [...]}``, a bare JSON array, a single event object,
or NDJSON (one event per line). :func:`split_batch` returns each event's own bytes without building
it, so every event gets its own verdict: a line or an array element that is not JSON, not UTF-8 or
nested too deep rejects that event only, and the good events beside it are kept.

Limits checked while reading, before any event is validated:

- the number of events: an array is read into a struct of ``max_events`` slots (msgspec, in C), which
  fails at the first element past the limit, so a body of millions of tiny items costs microseconds,
  not one object per item (NDJSON: blank runs are squeezed and newlines counted, also in C);
- nesting: msgspec and the json module recurse, so a body nested ~1,000 levels deep raises
  RecursionError; then (as for a body that is not JSON somewhere, such as a ``NaN``) the elements are
  found from the nesting depth after each byte, computed with numpy (no recursion, no loop per byte),
  and each event deeper than ``MAX_DEPTH`` levels is rejected on its own (:func:`too_deep`).

Nothing here raises anything but :class:`~serving_shim.exceptions.ContractError` (and its subclass
:class:`~serving_shim.exceptions.BatchTooLarge`) for a batch that cannot be read at all.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import msgspec as _ms

from serving_shim._internal.extras import require
from serving_shim.exceptions import BatchTooLarge, ContractError

if TYPE_CHECKING:
    import numpy as np

__all__ = ["MAX_DEPTH", "Split", "split_batch", "too_deep", "compression_of", "is_ndjson"]

#: Nesting levels one event may use (an event is level 1; a prediction's probabilities are level 3).
MAX_DEPTH = 16

_ABSENT = _ms.Raw(b"")  # an empty slot of a capped array (a real element is never empty)


@lru_cache(maxsize=8)
def _capped(max_events: int) -> tuple[Any, Any]:
    """Decoders of an array of at most ``max_events`` raw elements, of an envelope holding one, and of a
    single-object body (array_like struct: msgspec refuses the first element past the last slot)."""
    cap = _ms.defstruct(f"_Cap{max_events}", [(f"e{i}", _ms.Raw, _ABSENT) for i in range(max_events)],
                        array_like=True, forbid_unknown_fields=True, gc=False)
    env = _ms.defstruct(f"_CapEnvelope{max_events}", [("events", cap), ("kind", Any, None)], gc=False)
    return _ms.json.Decoder(cap), _ms.json.Decoder(env)


def _elements(capped: Any) -> list[Any]:
    """The filled slots of a capped array (a prefix): binary search for the first empty one."""
    t = _ms.structs.astuple(capped)
    lo, hi = 0, len(t)
    while lo < hi:
        mid = (lo + hi) // 2
        if t[mid] is _ABSENT:
            hi = mid
        else:
            lo = mid + 1
    return list(t[:lo])


class Split:
    """The events of a batch: ``raws`` (bytes-like, one per event), the envelope's ``kind`` (None if it
    names none) and, for NDJSON, the line number of each event (else None)."""

    __slots__ = ("raws", "kind", "lines")

    def __init__(self, raws: list[Any], kind: Any = None, lines: list[int] | None = None) -> None:
        self.raws = raws
        self.kind = kind
        self.lines = lines


_MAGIC = (
    (b"\x1f\x8b", "gzip"), (b"\x28\xb5\x2f\xfd", "zstd"), (b"\x04\x22\x4d\x18", "lz4"),
    (b"\xff\x06\x00\x00sNaPpY", "snappy"), (b"\x82SNAPPY\x00", "snappy"), (b"BZh", "bzip2"),
    (b"\x78\x01", "zlib"), (b"\x78\x5e", "zlib"), (b"\x78\x9c", "zlib"), (b"\x78\xda", "zlib"),
)


def compression_of(data: bytes) -> str | None:
    """The codec whose magic bytes start ``data`` (a value compressed by its producer), or None."""
    for magic, name in _MAGIC:
        if data.startswith(magic):
            return name
    return None


def _too_many(max_events: int) -> BatchTooLarge:
    return BatchTooLarge(f"events: more than {max_events} in one batch (the limit is {max_events})")


_LINE_START = re.compile(rb"^[ \t\r]*\S", re.M)


def is_ndjson(stripped: bytes) -> bool:
    """An object on the first line, complete there, and more after it (a pretty-printed object's first
    line is not a complete value)."""
    if stripped[:1] != b"{":
        return False
    nl = stripped.find(b"\n")
    if nl < 0 or not stripped[nl:].strip():
        return False
    first = stripped[:nl].rstrip()
    if not first.endswith(b"}"):
        return False
    try:
        _ms.json.decode(first)
    except (_ms.DecodeError, RecursionError, UnicodeDecodeError):
        return False
    return True


def _ndjson(data: bytes, max_events: int) -> Split:
    if data.count(b"\n") + 1 > max_events:  # blank lines are not events: count the others, up to the limit
        n = 0
        for _ in _LINE_START.finditer(data):
            n += 1
            if n > max_events:
                raise _too_many(max_events)
    raws, lines = [], []
    for no, line in enumerate(data.split(b"\n"), start=1):
        line = line.strip()
        if line:
            raws.append(line)
            lines.append(no)
    return Split(raws, None, lines)


def split_batch(data: bytes, *, max_events: int) -> Split:
    """The events of a wire batch, each as its own bytes (see the module text)."""
    stripped = data.strip()
    if not stripped:
        raise ContractError("body: empty batch")
    if is_ndjson(stripped):
        return _ndjson(data, max_events)
    arr_dec, env_dec = _capped(max_events)
    try:
        if stripped[:1] == b"[":
            return Split(_elements(arr_dec.decode(stripped)))
        if stripped[:1] == b"{":
            env = env_dec.decode(stripped)
            return Split(_elements(env.events), env.kind)
    except _ms.ValidationError as exc:
        msg = str(exc)
        if msg.startswith("Expected `array` of at most length"):
            raise _too_many(max_events) from None
        if "missing required field `events`" in msg and "$." not in msg:
            return Split([stripped])  # one event object, not an envelope
        if "`events`" in msg or "at `$.events`" in msg:
            raise ContractError("events: must be a JSON array") from None
        raise ContractError(f"body: {msg}") from None
    except UnicodeDecodeError:  # not UTF-8 in the envelope's kind
        raise ContractError("kind: not valid UTF-8") from None
    except (RecursionError, _ms.DecodeError):
        # nested too deep for the recursive readers, or not JSON somewhere (NaN, a broken event): split it
        # without recursion and without reading the events, so each gets its own verdict
        try:
            return _split_flat(stripped, max_events)
        except BatchTooLarge:
            raise
        except ContractError:
            raise ContractError(f"body: {_json_error(stripped)}") from None
    try:
        value = _ms.json.decode(stripped)
    except (_ms.DecodeError, RecursionError, UnicodeDecodeError):
        raise ContractError(f"body: {_json_error(stripped)}") from None
    raise ContractError(f"body: must be a JSON array, an envelope object or NDJSON, got {type(value).__name__}")


def _json_error(data: bytes) -> str:
    """The json module's account of why ``data`` is not JSON (line and column), without recursing."""

    try:
        json.loads(data.decode("utf-8", "replace"))
    except json.JSONDecodeError as exc:
        return f"not valid JSON or NDJSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
    except RecursionError:
        return f"not valid JSON: nested deeper than {MAX_DEPTH} levels"
    return "not valid JSON or NDJSON"


def _split_flat(data: bytes, max_events: int) -> Split:
    """:func:`split_batch` without recursion, for bodies msgspec cannot read (too deep, or not JSON
    somewhere): the events array's elements are found from the nesting depth after each byte (numpy, not
    a loop per byte), so each element gets its own verdict."""
    np = require("numpy", "server", "Reading a malformed wire batch")
    blank, depth, opens = _depths(data)
    if depth[-1] != 0:
        raise ContractError("body: not valid JSON (unbalanced brackets)")
    if data[:1] == b"[":
        lo, base, kind = 0, 1, None
    else:
        found = _value_at_depth_1(data, depth, opens, b"events")
        if found is None:  # an object without an events array: one event
            return Split([data])
        lo = found
        if data[lo:lo + 1] != b"[":
            raise ContractError("events: must be a JSON array")
        base = 2
        k = _value_at_depth_1(data, depth, opens, b"kind")
        kind = None
        if k is not None:
            m = _STRINGS.match(data, k)
            try:
                kind = json.loads(m.group() if m else data[k:k + 64].split(b",")[0].split(b"}")[0])
            except (ValueError, UnicodeDecodeError):
                raise ContractError("kind: not a readable value") from None
    closes = np.flatnonzero(depth[lo + 1:] == base - 1)
    if not len(closes):
        raise ContractError("body: not valid JSON (unbalanced brackets)")
    hi = lo + 1 + int(closes[0])
    inner = slice(lo + 1, hi)
    commas = lo + 1 + np.flatnonzero((blank[inner] == 44) & (depth[inner] == base))
    if len(commas) + 1 > max_events:
        raise _too_many(max_events)
    bounds = [lo, *commas.tolist(), hi]
    raws = [data[bounds[i] + 1:bounds[i + 1]].strip() for i in range(len(bounds) - 1)]
    if len(raws) == 1 and not raws[0]:
        raws = []  # []
    return Split(raws, kind)


_ESCAPES = re.compile(rb"\\.", re.S)


def _depths(data: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each byte of the JSON ``data``: the byte with strings blanked (quotes included), the nesting
    depth after it, and whether it opens a string."""
    np = require("numpy", "server", "Reading a malformed wire batch")
    a = np.frombuffer(_ESCAPES.sub(b"__", data), dtype=np.uint8)  # an escaped quote is no quote (same length)
    q = a == 34
    parity = np.cumsum(q, dtype=np.uint8) & 1  # (wraps at 256: the parity stays right)
    blank = np.where(q | (parity == 1), np.uint8(32), a)
    step = (blank == 91).astype(np.int8) + (blank == 123) - (blank == 93) - (blank == 125)
    opens = q & (parity == 1)
    return blank, np.cumsum(step, dtype=np.int32), opens


def _value_at_depth_1(data: bytes, depth: np.ndarray, opens: np.ndarray, key: bytes) -> int | None:
    """Where the value of the top-level object's ``key`` starts, if the object has that key."""
    for m in re.finditer(rb'"' + key + rb'"\s*:\s*', data):
        i = m.start()
        if opens[i] and depth[i] == 1:
            return m.end()
    return None


_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*+"')


def too_deep(raw: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether the JSON ``raw`` nests deeper than ``limit`` levels (never recurses; numpy, no loop per byte)."""
    b = bytes(raw)
    if b.count(b"[") + b.count(b"{") <= limit:
        return False
    return bool(_depths(b)[1].max() > limit)
