"""The contract's compiled fast path against the pydantic models, on generated events.

Two properties, for every generated event (valid ones, and ones broken in the ways senders break them):
1. the fast path accepts exactly the events the models accept (it hands the ones it is unsure of to
   the models, so the verdicts and the error messages are the models');
2. an accepted event becomes the same stored columns either way.

The suite draws fewer examples than the full run (``scripts/test.sh --slow``, see tests/sizes.py).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from collector._fastdecode import validate_batch_fast, validate_raw_events
from collector.ingest import DecodeLimits, decode_message
from collector.writer import DeadLetter, to_columns
from serving_shim.codec import decode_batch, encode_batch, loads
from serving_shim.contract import TimeWindow, validate_events
from tests.sizes import size

#: the generated times span 1970-2200: a window from 1970 to 2150 accepts most and refuses some
WINDOW = TimeWindow(clock=lambda: dt.datetime(2100, 1, 1, tzinfo=dt.UTC), max_age_s=130 * 365.25 * 86400,
                    max_ahead_s=50 * 365.25 * 86400)

GOOD_NAMES = st.sampled_from(["m", "model-1", "a/b:c.d_e", "x" * 128])
NAMES = st.one_of(GOOD_NAMES, GOOD_NAMES, GOOD_NAMES,
                  st.sampled_from(["x" * 129, "", "bad name", "m\n", "m\t", "é", "📈"]))
TEXT = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["", "x" * 8192, "x" * 8193, "📈" * 3, "\n", "line\n", "\u0000", "1.5", "true", "null"]),
)
NUMBERS = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0, -0.0, 1e308, -1e308, 5e-324, 2**53 + 1]),
)
RAW_NUMBERS = st.sampled_from(["1e999", "-1e999", "1E2", "1.0e-5", "-0", "1.5000000000000000001", "NaN", "Infinity"])
TIMES = st.one_of(
    st.datetimes(min_value=dt.datetime(1970, 1, 1), max_value=dt.datetime(2200, 1, 1)).map(lambda d: d.isoformat()),
    st.datetimes(
        min_value=dt.datetime(1970, 1, 1), max_value=dt.datetime(2200, 1, 1),
        timezones=st.sampled_from([dt.UTC, dt.timezone(dt.timedelta(hours=5, minutes=30)),
                                   dt.timezone(dt.timedelta(hours=-8))]),
    ).map(lambda d: d.isoformat()),
    st.sampled_from([
        "2026-11-25T10:00:00Z", "2026-11-25T10:00:00.1234567Z", "2026-11-25T10:00:00.123456789+02:00",
        "2026-11-25T10:00:00.9999999Z", "2026-11-25 10:00:00", "2026-11-25", "2026-11-25T10:00", "20261125T100000Z",
        "2026-02-30T00:00:00Z", "2026-11-25T24:00:00Z", "2026-11-25T10:00:60Z", "yesterday", "", "0001-01-01T00:00:00",
        "9999-12-31T23:59:59.999999Z", "2026-11-25T10:00:00+25:00", "2026-11-25T10:00:00.5-00:00",
        "2024-05-01T10:00:00+00:60", "2024-05-01T10:00:00-00:99", "2024-05-01T10:00:00+05:60",
        "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00Z",
    ]),
    st.integers(min_value=0, max_value=2**33),
)
ANY = st.recursive(
    st.one_of(st.none(), st.booleans(), NUMBERS, TEXT),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(TEXT, inner, max_size=3)),
    max_leaves=6,
)
FEATURE_VALUES = st.one_of(NUMBERS, TEXT, st.none(), NUMBERS, TEXT, st.none(), st.booleans(), st.just([1]),
                           st.just({"a": 1}))
KEYS = st.one_of(st.text(min_size=1, max_size=6), st.sampled_from(["x", "k" * 128, "a b", "ü", "", "k" * 129]))


def LIMIT_MAPS(limit: int, value: Any, other: Any) -> Any:  # noqa: N802 - a strategy, named like the others
    """Maps at a count limit and one past it."""
    return st.sampled_from([{f"k{i}": value for i in range(n)} | ({"z": other} if n < limit else {})
                            for n in (limit - 1, limit, limit + 1)])


GOOD_TIMES = st.one_of(
    st.datetimes(min_value=dt.datetime(1970, 1, 1), max_value=dt.datetime(2200, 1, 1)).map(lambda d: d.isoformat()),
    st.datetimes(
        min_value=dt.datetime(1970, 1, 1), max_value=dt.datetime(2200, 1, 1),
        timezones=st.sampled_from([dt.UTC, dt.timezone(dt.timedelta(hours=5, minutes=30))]),
    ).map(lambda d: d.isoformat().replace("+00:00", "Z")),
)
GOOD_KEYS = st.text(min_size=1, max_size=6)
GOOD_VALUES = st.one_of(st.integers(-(2**60), 2**60), st.floats(allow_nan=False, allow_infinity=False),
                        st.text(max_size=8), st.none())


@st.composite
def _mutated(draw: Any, e: dict[str, Any], broken: dict[str, Any]) -> dict[str, Any]:
    """Usually the valid event as it is; else one field set to something odd (or removed, or one unknown added)."""
    if draw(st.integers(0, 2)) > 0:
        return e
    key = draw(st.sampled_from(sorted(broken) + ["surprise", "remove"]))
    if key == "remove":
        e.pop(draw(st.sampled_from(sorted(e))))
    elif key == "surprise":
        e["surprise"] = draw(ANY)
    else:
        e[key] = draw(st.one_of(broken[key], ANY))
    return e


# the strategies are built once (a strategy built inside a draw is built and validated again for every example)
PREDICTION = st.fixed_dictionaries({}, optional={
    "value": st.one_of(st.none(), NUMBERS), "label": st.one_of(st.none(), st.text(max_size=5)),
    "score": st.one_of(st.none(), NUMBERS),
    "probabilities": st.one_of(st.none(), st.dictionaries(GOOD_KEYS, NUMBERS, max_size=3)),
}).filter(lambda p: any(v for v in p.values() if v is not None) or p.get("value") == 0)
PREDICTION_OPTIONAL = (("features", st.dictionaries(GOOD_KEYS, GOOD_VALUES, max_size=6)),
                       ("slices", st.dictionaries(GOOD_KEYS, st.text(max_size=5), max_size=3)),
                       ("latency_ms", st.one_of(st.none(), st.floats(0, 1e9))), ("status", st.just("ok")),
                       ("kind", st.just("prediction")))
PREDICTION_BROKEN = {
    "schema_version": st.sampled_from([2, True, 1.0, "1"]), "event_id": st.sampled_from(["", "x" * 257]),
    "ts": TIMES, "model": NAMES, "model_version": NAMES, "request_id": st.sampled_from(["", 5]),
    "features": st.one_of(st.dictionaries(KEYS, FEATURE_VALUES, max_size=5), LIMIT_MAPS(1000, 1, 0.5)),
    "prediction": st.fixed_dictionaries({}, optional={
        "value": st.one_of(st.none(), NUMBERS, st.booleans(), TEXT), "label": st.one_of(st.none(), TEXT, NUMBERS),
        "score": st.one_of(st.none(), NUMBERS),
        "probabilities": st.one_of(st.dictionaries(KEYS, st.one_of(NUMBERS, TEXT), max_size=3),
                                   LIMIT_MAPS(1000, 0.5, 0.1)),
        "extra": st.just(1)}),
    "slices": st.one_of(st.dictionaries(KEYS, st.one_of(TEXT, NUMBERS), max_size=3), LIMIT_MAPS(64, "a", "b")),
    "latency_ms": st.one_of(NUMBERS, TEXT, st.booleans()), "status": st.sampled_from(["error", "OK", ""]),
    "error_type": NAMES, "kind": st.sampled_from(["label", "prediction"]),
}


@st.composite
def predictions(draw: Any) -> dict[str, Any]:
    e: dict[str, Any] = {
        "schema_version": 1, "event_id": draw(st.sampled_from(["e1", "x" * 256])), "ts": draw(GOOD_TIMES),
        "model": draw(GOOD_NAMES), "model_version": draw(GOOD_NAMES), "request_id": "r1",
        "prediction": draw(PREDICTION),
    }
    for name, strat in PREDICTION_OPTIONAL:
        if draw(st.booleans()):
            e[name] = draw(strat)
    if draw(st.integers(0, 4)) == 0:
        e["status"], e["error_type"] = "error", draw(GOOD_NAMES)
    return draw(_mutated(e, PREDICTION_BROKEN))


LABEL_BROKEN = {
    "schema_version": st.sampled_from([2, True, 1.0, "1"]), "event_id": st.sampled_from(["", "x" * 257]),
    "ts": TIMES, "model": NAMES, "request_id": st.sampled_from(["", 5]),
    "value": st.one_of(st.none(), NUMBERS, st.booleans(), TEXT), "label": st.one_of(st.none(), TEXT, NUMBERS),
    "kind": st.sampled_from(["label", "prediction"]),
}


@st.composite
def labels(draw: Any) -> dict[str, Any]:
    e: dict[str, Any] = {"schema_version": 1, "event_id": "l1", "ts": draw(GOOD_TIMES), "model": draw(GOOD_NAMES),
                         "request_id": "r1"}
    which = draw(st.sampled_from(["value", "label", "both"]))
    if which in ("value", "both"):
        e["value"] = draw(NUMBERS)
    if which in ("label", "both"):
        e["label"] = draw(st.text(max_size=6))
    if draw(st.booleans()):
        e["kind"] = "label"
    return draw(_mutated(e, LABEL_BROKEN))


def _raw(e: dict[str, Any], number: str | None) -> bytes:
    text = json.dumps(e, ensure_ascii=False)
    if number is not None and '"latency_ms": 1' in text:  # numbers Python would not write: 1e999, NaN, 1E2...
        text = text.replace('"latency_ms": 1', f'"latency_ms": {number}', 1)
    return text.encode()


def _columns(kind: str, events: list[Any]) -> dict[str, Any]:
    _, cols = to_columns(kind, events)
    return {k: (v.to_dicts() if hasattr(v, "to_dicts") else v) for k, v in cols.items()}


def _same_verdict_and_columns(kind: str, raw: bytes, in_hypothesis: bool = True) -> None:
    obj = loads(raw.decode())  # the collector's JSON reader (orjson, json where orjson refuses)
    slow_good, slow_errors = validate_events(kind, [obj], window=WINDOW)
    fast_good, fast_idx, fast_errors = validate_raw_events(kind, [raw], window=WINDOW)
    assert [(e.field, e.reason) for e in fast_errors] == [(e.field, e.reason) for e in slow_errors], raw
    assert len(fast_good) == len(slow_good), raw
    if in_hypothesis:
        event("accepted" if slow_good else "rejected")
    whole = validate_batch_fast(b'{"kind": "%s", "events": [%s]}' % (kind.encode(), raw), kind, window=WINDOW)
    assert whole is None or len(whole) == len(slow_good) == 1, raw  # the one-pass reading of a whole batch
    if slow_good:
        assert fast_idx == [0]
        if whole is not None:
            assert _columns(kind, whole) == _columns(kind, slow_good), raw
        fast_cols, slow_cols = _columns(kind, fast_good), _columns(kind, slow_good)
        assert fast_cols == slow_cols, raw
        # the same instant, and the same type of every number (a float stays a float)
        for name, col in fast_cols.items():
            for a, b in zip(col, slow_cols[name], strict=True):
                assert type(a) is type(b) or isinstance(a, dict), (name, a, b, raw)


@settings(max_examples=size(ci=600, full=1500), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(predictions(), st.one_of(st.none(), RAW_NUMBERS))
def test_prediction_fast_path_matches_the_models(e: dict[str, Any], number: str | None) -> None:
    if number is not None:
        e["latency_ms"] = 1
    _same_verdict_and_columns("prediction", _raw(e, number))


@settings(max_examples=size(ci=300, full=800), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(labels())
def test_label_fast_path_matches_the_models(e: dict[str, Any]) -> None:
    _same_verdict_and_columns("label", _raw(e, None))


def _old_decode(data: bytes, kind: str) -> tuple[list[Any], list[Any]]:
    """What the collector did before the fast path: decode_batch, then the models."""
    kind, items = decode_batch(data, kind)
    good, errors = validate_events(kind, items, window=WINDOW)
    return good, errors


@settings(max_examples=size(ci=80, full=200), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(predictions(), min_size=1, max_size=8))
def test_a_mixed_batch_decodes_as_before(events: list[dict[str, Any]]) -> None:
    data = encode_batch("prediction", events)
    decoded = decode_message(data, source="kafka:t:0:7", kind="prediction", limits=DecodeLimits(window=WINDOW))
    old_good, old_errors = _old_decode(data, "prediction")
    assert [(e.index, e.field, e.reason) for e in decoded.errors] == [(e.index, e.field, e.reason) for e in old_errors]
    assert _columns("prediction", decoded.good["prediction"]) == _columns("prediction", old_good)
    bad = {e.index for e in old_errors}
    assert decoded.indices["prediction"] == [i for i in range(len(events)) if i not in bad]
    # a dead letter keeps the event's own bytes, and says where it came from
    for d, e in zip(decoded.dead, decoded.errors, strict=True):
        assert isinstance(d, DeadLetter) and d.source == "kafka:t:0:7" and d.index == e.index
        assert json.loads(d.payload) == json.loads(json.dumps(events[e.index]))


def _recent() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()


def test_batches_the_fast_path_leaves_to_decode_batch() -> None:
    good = {"schema_version": 1, "event_id": "e", "ts": _recent(), "model": "m", "model_version": "v",
            "request_id": "r", "prediction": {"label": "y"}}
    ndjson = (json.dumps(good) + "\n" + json.dumps(good | {"event_id": "f"})).encode()
    d = decode_message(ndjson, source="http", kind="prediction")
    assert [e.event_id for e in d.good["prediction"]] == ["e", "f"]
    d = decode_message(json.dumps({"kind": "label", "events": [good]}).encode(), source="http", kind="prediction")
    assert d.errors[0].index == -1 and "envelope says 'label'" in d.errors[0].reason
    d = decode_message(b'{"kind": "prediction", "events": [1, "x", null]}', source="http")
    assert [(e.index, e.field) for e in d.errors] == [(0, "(event)"), (1, "(event)"), (2, "(event)")]
    d = decode_message(b"\xff\xfe", source="http", kind="prediction")
    assert d.errors[0].index == -1 and d.errors[0].field == "body"
    # bad UTF-8 inside one event rejects that event only, its good neighbours are kept, and its dead letter
    # holds its original bytes; an envelope field nobody reads does not matter
    label = {"schema_version": 1, "event_id": "l", "ts": _recent(), "model": "m", "request_id": "r", "value": 1}
    for kind, body in (
            ("prediction", json.dumps([good, good | {"event_id": "x"}, good]).encode().replace(b'"x"', b'"x\xff"')),
            ("label", json.dumps([label, label | {"request_id": "x"}, label]).encode().replace(b'"x"', b'"x\xff"'))):
        d = decode_message(body, source="http", kind=kind)
        assert d.n_good == 2 and [(e.index, e.field) for e in d.errors] == [(1, "(event)")], body
        assert "not valid UTF-8" in d.errors[0].reason
        assert b'"x\xff"' in d.dead[0].payload and json.loads(d.dead[0].payload.replace(b"\xff", b""))
    d = decode_message(b'{"note":"\xff","events":' + json.dumps([good]).encode() + b"}", source="http",
                       kind="prediction")
    assert d.n_good == 1 and not d.errors


def test_times_at_the_edges_get_the_models_verdict() -> None:
    base = {"schema_version": 1, "event_id": "e", "model": "m", "model_version": "v", "request_id": "r",
            "prediction": {"label": "y"}}
    label = {"schema_version": 1, "event_id": "l", "model": "m", "request_id": "r", "value": 1.0}
    for ts in ("2024-05-01T10:00:00+00:60", "2024-05-01T10:00:00-00:99", "2024-05-01T10:00:00+23:59",
               "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "2024-02-29T00:00:00Z",
               "2023-02-29T00:00:00Z", "2024-05-01T23:59:60Z", "2024-05-01T10:00:00.1234567Z"):
        _same_verdict_and_columns("prediction", json.dumps(base | {"ts": ts}).encode(), in_hypothesis=False)
        _same_verdict_and_columns("label", json.dumps(label | {"ts": ts}).encode(), in_hypothesis=False)
    # a label time with no UTC equivalent is a rejection naming ts, not a crash
    good, errors = validate_events("label", [label | {"ts": "0001-01-01T00:00:00+01:00"}])
    assert not good and errors[0].field == "ts" and "out of range" in errors[0].reason
