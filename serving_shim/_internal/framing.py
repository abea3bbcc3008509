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
  RecursionError; then a non-recursive tokenizer splits the batch instead, and each event deeper
  than ``MAX_DEPTH`` levels is rejected on its own (:func:`too_deep`).

Nothing here raises anything but :class:`~serving_shim.exceptions.ContractError` (and its subclass
:class:`~serving_shim.exceptions.BatchTooLarge`) for a batch that cannot be read at all.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

import msgspec as _ms

from serving_shim.exceptions import BatchTooLarge, ContractError

__all__ = ["MAX_DEPTH", "Split", "split_batch", "too_deep", "compression_of", "is_ndjson"]

#: Nesting levels one event may use (an event is level 1; a prediction's probabilities are level 3).
MAX_DEPTH = 16

_ABSENT = _ms.Raw(b"")  # an empty slot of a capped array (a real element is never empty)


@lru_cache(maxsize=8)
def _capped(max_events: int) -> tuple[Any, Any, Any]:
    """Decoders of an array of at most ``max_events`` raw elements, of an envelope holding one, and of a
    single-object body (array_like struct: msgspec refuses the first element past the last slot)."""
    cap = _ms.defstruct(f"_Cap{max_events}", [(f"e{i}", _ms.Raw, _ABSENT) for i in range(max_events)],
                        array_like=True, forbid_unknown_fields=True, gc=False)
    env = _ms.defstruct(f"_CapEnvelope{max_events}", [("events", cap), ("kind", Any, None)], gc=False)
    return _ms.json.Decoder(cap), _ms.json.Decoder(env), cap


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


def _too_many(max_events: int, n: int | None = None) -> BatchTooLarge:
    if n is None:
        return BatchTooLarge(f"events: more than {max_events} in one batch (the limit is {max_events})")
    return BatchTooLarge(f"events: {n} events is over the limit of {max_events} per batch")


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
    arr_dec, env_dec, _ = _capped(max_events)
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
    import json

    try:
        json.loads(data.decode("utf-8", "replace"))
    except json.JSONDecodeError as exc:
        return f"not valid JSON or NDJSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
    except RecursionError:
        return f"not valid JSON: nested deeper than {MAX_DEPTH} levels"
    return "not valid JSON or NDJSON"


_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*+"|[\[\]{},:]')


def _split_flat(data: bytes, max_events: int) -> Split:
    """:func:`split_batch` without recursion, for bodies too deep for msgspec: a tokenizer walks the
    brackets, strings, commas and colons (Python speed; only hostile or broken bodies come here)."""
    import json

    top = data[:1]
    base = 1 if top == b"[" else 2  # the depth just inside the events array
    depth = 0
    raws: list[bytes] = []
    kind: Any = None
    seg = -1          # where the current element of the events array starts (-1: not in that array)
    key = b""         # the envelope key whose value comes next
    prev = b""
    seen_events = top == b"["
    for m in _TOKENS.finditer(data):
        tok = m.group()
        c = tok[:1]
        if c in b"[{":
            depth += 1
            if c == b"[" and ((top == b"[" and depth == 1) or (depth == 2 and prev == b":" and key == b'"events"')):
                seg, seen_events = m.end(), True
        elif c in b"]}":
            if depth == base and seg >= 0:
                if c == b"]":
                    el = data[seg:m.start()].strip()
                    if el:
                        raws.append(el)
                    seg = -1
            depth -= 1
            if depth < 0:
                raise ContractError("body: not valid JSON (unbalanced brackets)")
        elif c == b",":
            if depth == base and seg >= 0:
                raws.append(data[seg:m.start()].strip())
                seg = m.end()
        elif c == b'"' and depth == 1 and top == b"{":
            if prev == b":" and key == b'"kind"':
                try:
                    kind = json.loads(tok)
                except ValueError:
                    raise ContractError("kind: not valid UTF-8") from None
            elif prev in (b"{", b","):
                key = tok
        if len(raws) > max_events:
            raise _too_many(max_events)
        prev = b'"' if c == b'"' else tok
    if depth != 0:
        raise ContractError("body: not valid JSON (unbalanced brackets)")
    if not seen_events:  # an object without an events array: one event (too deep, as it came here)
        return Split([data])
    return Split(raws, kind)


_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*+"')
_NOT_BRACKETS = bytes(c for c in range(256) if c not in b"[]{}")


def too_deep(raw: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether the JSON ``raw`` nests deeper than ``limit`` levels (never recurses)."""
    b = bytes(raw)
    if b.count(b"[") + b.count(b"{") <= limit:
        return False
    depth = 0
    for c in _STRINGS.sub(b"", b).translate(None, _NOT_BRACKETS):
        if c in (91, 123):
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False
