"""The collector's compiled reading of the event contract (msgspec): private to the collector.

The collector reads tens of thousands of events a second on one core, so the high-volume kinds have a
second, compiled reading of the contract of :mod:`serving_shim.contract`. It is strictly narrower than the
pydantic models: it accepts only events that the models accept too (names end in ``\\Z``, not ``$``;
no coercion from strings or booleans; finite numbers only), and turns them into objects with the
same attributes and the same values. Whatever it does not accept goes through the models, which
give the verdict and the error message. tests/unit/serving_shim/test_contract_fastpath.py checks both
properties on generated events, valid and broken.
"""

from __future__ import annotations

import datetime as _dt
import re as _re
from types import GenericAlias
from typing import Annotated, Any, Literal

import msgspec as _ms

from serving_shim.codec import is_ndjson, load_event
from serving_shim.contract import (
    DEFAULT_WINDOW,
    MAX_BATCH_EVENTS,
    MAX_CLASSES,
    MAX_FEATURES,
    MAX_NAME_LEN,
    MAX_SLICES,
    MAX_STRING_LEN,
    EventError,
    TimeWindow,
    apply_window,
    outside_window,
    validate_indexed,
)

__all__ = ["validate_batch_fast", "validate_raw_events"]

#: model, model_version, error_type: checked after decoding, against a cache (they repeat in every event)
_F_NAME = str
_NAME_RE = _re.compile(rf"[A-Za-z0-9_.:\-/]{{1,{MAX_NAME_LEN}}}")
_names_ok: dict[str, bool] = {}


def _name_ok(s: str) -> bool:
    ok = _names_ok.get(s)
    if ok is None:
        if len(_names_ok) > 10_000:
            _names_ok.clear()
        ok = _names_ok[s] = _NAME_RE.fullmatch(s) is not None
    return ok

_F_KEY = Annotated[str, _ms.Meta(min_length=1, max_length=MAX_NAME_LEN)]
_F_ID = Annotated[str, _ms.Meta(min_length=1, max_length=256)]
_F_SHORT = Annotated[str, _ms.Meta(max_length=MAX_STRING_LEN)]
#: ISO 8601 with at most microseconds (more digits are rounded by one parser and cut by the other)
_F_TS = Annotated[str, _ms.Meta(
    pattern=r"^\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d{1,6})?(Z|[+-](?:[01]\d|2[0-3]):[0-5]\d)?\Z")]
_F_FLOAT = Annotated[float, _ms.Meta(ge=-1.7976931348623157e308, le=1.7976931348623157e308)]  # finite


class _FastPrediction(_ms.Struct, forbid_unknown_fields=True, gc=False):
    value: _F_FLOAT | None = None
    label: _F_SHORT | None = None
    score: _F_FLOAT | None = None
    probabilities: Annotated[dict[_F_KEY, _F_FLOAT], _ms.Meta(max_length=MAX_CLASSES)] | None = None


class _FastPredictionEvent(_ms.Struct, forbid_unknown_fields=True, gc=False):
    schema_version: Literal[1]
    event_id: _F_ID
    model: _F_NAME
    ts: _F_TS
    model_version: _F_NAME
    request_id: _F_ID
    prediction: _FastPrediction
    features: Annotated[dict[_F_KEY, _F_FLOAT | _F_SHORT | None], _ms.Meta(max_length=MAX_FEATURES)] = {}
    slices: Annotated[dict[_F_KEY, _F_SHORT], _ms.Meta(max_length=MAX_SLICES)] = {}
    latency_ms: Annotated[float, _ms.Meta(ge=0, le=1.7976931348623157e308)] | None = None
    status: Literal["ok", "error"] = "ok"
    error_type: _F_NAME | None = None
    subject: _F_ID | None = None
    kind: Literal["prediction"] = "prediction"


class _FastLabelEvent(_ms.Struct, forbid_unknown_fields=True, gc=False):
    schema_version: Literal[1]
    event_id: _F_ID
    model: _F_NAME
    ts: _F_TS
    request_id: _F_ID
    value: _F_FLOAT | None = None
    label: _F_SHORT | None = None
    subject: _F_ID | None = None
    kind: Literal["label"] = "label"


_fromiso = _dt.datetime.fromisoformat


def _prediction_ok(e: Any) -> bool:
    if not (_name_ok(e.model) and _name_ok(e.model_version)):
        return False
    if e.error_type is not None and not _name_ok(e.error_type):
        return False
    p = e.prediction
    if p.value is None and p.label is None and p.score is None and not p.probabilities:
        return False
    if e.status == "ok" and e.error_type is not None:
        return False
    return _parse_ts(e)


def _label_ok(e: Any) -> bool:
    if not _name_ok(e.model):
        return False
    if e.value is None and e.label is None:
        return False
    return _parse_ts(e)


def _parse_ts(e: Any) -> bool:
    """The event's ISO time string becomes a datetime, as the models would make it (the first and the last
    years, where an offset can leave the calendar, are left to the models)."""
    try:
        t = _fromiso(e.ts)
    except ValueError:
        return False
    e.ts = t
    return 1 < t.year < 9999


_FAST: dict[str, tuple[Any, Any]] = {
    "prediction": (_ms.json.Decoder(_FastPredictionEvent), _prediction_ok),
    "label": (_ms.json.Decoder(_FastLabelEvent), _label_ok),
}


#: for each fast kind, decoders of a whole envelope / array of its events in one pass
#: (``GenericAlias(list, ...)`` is ``list[...]`` of a type known only at run time, which mypy cannot read)
_WHOLE: dict[str, tuple[Any, Any]] = {
    kind: (_ms.json.Decoder(_ms.defstruct(f"_Envelope_{kind}", [("events", GenericAlias(list, dec.type)),
                                                                ("kind", Any, None)])),
           _ms.json.Decoder(GenericAlias(list, dec.type)))
    for kind, (dec, _) in _FAST.items()
}


def validate_batch_fast(data: bytes, kind: str, *, max_events: int = MAX_BATCH_EVENTS,
                        window: TimeWindow | None = DEFAULT_WINDOW) -> list[Any] | None:
    """All the events of a wire batch of ``kind`` in one pass, if every one of them passes the fast
    path (times inside ``window`` included); ``None`` otherwise (then :func:`serving_shim.codec.read_batch`
    and :func:`validate_raw_events` sort the good from the bad, and count the events while reading)."""
    whole = _WHOLE.get(kind)
    if whole is None or not isinstance(data, (bytes, bytearray)):
        return None
    # every event of a good batch has one "event_id" key: no more of them, no more events than allowed
    if data.count(b'"event_id"') > max_events:
        return None
    stripped = data.lstrip()
    if not stripped or is_ndjson(stripped):
        return None
    env_dec, arr_dec = whole
    try:
        if stripped[:1] == b"{":
            env = env_dec.decode(stripped)
            if env.kind not in (None, kind):
                return None
            events = env.events
        else:
            events = arr_dec.decode(stripped)
    except (_ms.DecodeError, _ms.ValidationError, UnicodeDecodeError, RecursionError):  # bad UTF-8: the last but one
        return None
    ok = _FAST[kind][1]
    for e in events:
        if not ok(e):
            return None
    if outside_window(kind, events, window):
        return None
    return events


def validate_raw_events(kind: str, raws: list[Any], *, window: TimeWindow | None = DEFAULT_WINDOW,
                        lines: list[int] | None = None) -> tuple[list[Any], list[int], list[EventError]]:
    """Validate a batch of raw events (JSON bytes or ``msgspec.Raw`` each) of one kind.

    Returns ``(good, indices, errors)``: the good events (fast-path objects or contract models, with
    the same attributes), their positions in the batch, and one :class:`EventError` per rejected event
    (with its NDJSON line when ``lines`` gives them). Each event is read on its own: one that is not
    UTF-8, not JSON or nested too deep is rejected alone.
    """
    fast = _FAST.get(kind)
    good: list[Any] = []
    indices: list[int] = []
    errors: list[EventError] = []
    slow: list[tuple[int, Any]] = []
    if fast is not None:
        decoder, ok = fast
        for i, raw in enumerate(raws):
            try:
                ev = decoder.decode(raw)
            except (_ms.ValidationError, _ms.DecodeError, UnicodeDecodeError, RecursionError):
                slow.append((i, raw))
                continue
            if ok(ev):
                good.append(ev)
                indices.append(i)
            else:
                slow.append((i, raw))
    else:
        slow = list(enumerate(raws))
    if slow:
        items, positions = [], []
        for i, raw in slow:
            item = load_event(raw)
            if isinstance(item, EventError):
                errors.append(EventError(i, item.field, item.reason))
            else:
                items.append(item)
                positions.append(i)
        g, gi, errs = validate_indexed(kind, items)
        good.extend(g)
        indices.extend(positions[j] for j in gi)
        errors.extend(EventError(positions[e.index], e.field, e.reason, e.event_id) for e in errs)
        if good and indices != sorted(indices):
            order = sorted(range(len(indices)), key=indices.__getitem__)
            good = [good[j] for j in order]
            indices = [indices[j] for j in order]
        errors.sort(key=lambda e: e.index)
    good, indices, errors = apply_window(kind, good, indices, errors, window)
    if lines is not None and errors:
        errors = [EventError(e.index, e.field, e.reason, e.event_id, lines[e.index]) for e in errors]
    return good, indices, errors
