"""The contract's limits: finite numbers, counts of every map and list, bounded counts, the time window,
nesting depth, reasons that name the right field, and events counted while a batch is read."""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Any

import pytest

from collector._fastdecode import validate_batch_fast, validate_raw_events
from serving_shim.codec import decode_batch, read_batch
from serving_shim.contract import (
    LATENCY_BUCKETS_MS,
    MAX_COUNT,
    ContractError,
    TimeWindow,
    validate_events,
)
from serving_shim.exceptions import BatchTooLarge
from tests import factories as f

NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)
FIXED = TimeWindow(clock=lambda: NOW)


def _both(kind: str, ev: dict[str, Any], window: TimeWindow | None = FIXED) -> list[tuple[str, str]]:
    """The verdict of the models and of the collector's reading (fast path first): they must agree."""
    _, slow = validate_events(kind, [ev], window=window)
    _, _, fast = validate_raw_events(kind, [json.dumps(ev).encode()], window=window)
    assert [(e.field, e.reason) for e in fast] == [(e.field, e.reason) for e in slow]
    return [(e.field, e.reason) for e in slow]


def _pred(**kw: Any) -> dict[str, Any]:
    return f.prediction(1, ts=NOW) | kw


@pytest.mark.parametrize("where", ["latency_ms", "value", "score", "probabilities", "features"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_numbers_must_be_finite_and_the_field_is_named(where: str, bad: float) -> None:
    ev = _pred()
    if where == "latency_ms":
        ev["latency_ms"] = bad
    elif where in ("value", "score"):
        ev["prediction"] = {"label": "y", where: bad}
    elif where == "probabilities":
        ev["prediction"] = {"label": "y", "probabilities": {"yes": bad}}
    else:
        ev["features"] = {"x": bad}
    errors = _both("prediction", ev)
    assert len(errors) == 1
    fld, reason = errors[0]
    assert where in fld and "finite" in reason, errors


def test_metric_window_counts_are_bounded_and_finite() -> None:
    w = f.metric_window()
    w["window_start"] = NOW.isoformat()
    assert _both("metric_window", w) == []
    for field, value, words in (("requests", 2**63, "less than or equal to"), ("requests", MAX_COUNT + 1, "less than"),
                                ("latency_sum_ms", float("inf"), "finite"), ("latency_sum_ms", float("nan"), "finite")):
        errors = _both("metric_window", w | {field: value})
        assert errors and errors[0][0] == field and words in errors[0][1], errors
    errors = _both("metric_window", w | {"errors": {"timeout": 2**63}})
    assert errors[0][0] == "errors.timeout"


@pytest.mark.parametrize(("kind", "path", "limit"), [
    ("prediction", "features", 1000), ("prediction", "prediction.probabilities", 1000),
    ("prediction", "slices", 64), ("deploy", "annotations", 64), ("metric_window", "errors", 64),
])
def test_every_map_has_a_count_limit(kind: str, path: str, limit: int) -> None:
    ev: dict[str, Any] = {"prediction": _pred(), "deploy": f.deploy(), "metric_window": f.metric_window()}[kind]
    for k in ("ts", "window_start"):
        if k in ev:
            ev[k] = NOW.isoformat()
    value: Any = {"features": 1.0, "prediction.probabilities": 0.001, "slices": "s", "annotations": "a",
                  "errors": 0}[path]

    def with_n(n: int) -> dict[str, Any]:
        e = json.loads(json.dumps(ev))
        m = {f"k{i}": value for i in range(n)}
        if path == "prediction.probabilities":
            e["prediction"]["probabilities"] = m
        else:
            e[path] = m
        return e

    assert _both(kind, with_n(limit)) == []
    errors = _both(kind, with_n(limit + 1))
    assert errors[0][0] == path and f"at most {limit} items" in errors[0][1], errors


def test_latency_buckets_have_one_length() -> None:
    w = f.metric_window()
    w["window_start"] = NOW.isoformat()
    n = len(LATENCY_BUCKETS_MS) + 1
    for buckets in ([0] * (n + 1), [0] * 100_000):
        errors = _both("metric_window", w | {"latency_buckets": buckets})
        assert errors[0][0] == "latency_buckets" and f"at most {n} items" in errors[0][1]
    errors = _both("metric_window", w | {"latency_buckets": [0] * (n - 1)})
    assert f"must have {n} counts" in errors[0][1]


@pytest.mark.parametrize(("kind", "field"), [("prediction", "ts"), ("label", "ts"), ("deploy", "ts"),
                                              ("metric_window", "window_start")])
def test_times_outside_the_window_are_refused_naming_the_field_and_the_window(kind: str, field: str) -> None:
    ev = {"prediction": _pred(), "label": f.label("r"), "deploy": f.deploy(), "metric_window": f.metric_window()}[kind]
    for t, ok in ((NOW, True), (NOW - dt.timedelta(days=7) + dt.timedelta(seconds=1), True),
                  (NOW + dt.timedelta(minutes=59), True), (NOW - dt.timedelta(days=7, seconds=1), False),
                  (NOW + dt.timedelta(minutes=61), False), (dt.datetime(9998, 1, 1, tzinfo=dt.UTC), False),
                  (dt.datetime(2300, 1, 1, tzinfo=dt.UTC), False), (dt.datetime(1970, 1, 2, tzinfo=dt.UTC), False)):
        stamp = t.isoformat() if kind != "metric_window" else t.replace(microsecond=0).isoformat()
        errors = _both(kind, ev | {field: stamp})
        if ok:
            assert errors == [], (t, errors)
        else:
            assert len(errors) == 1 and errors[0][0] == field, (t, errors)
            assert "outside the accepted window of 7 days before to 1 hour after the server's clock" in errors[0][1]
    # the window is configurable, and None turns it off
    wide = TimeWindow(clock=lambda: NOW, max_age_s=30 * 86400, max_ahead_s=0)
    old = ev | {field: (NOW - dt.timedelta(days=20)).replace(microsecond=0).isoformat()}
    assert _both(kind, old, wide) == [] and _both(kind, old, None) == [] and _both(kind, old) != []
    errors = _both(kind, ev | {field: (NOW + dt.timedelta(seconds=5)).isoformat()}, wide)
    assert "30 days before to 0 seconds after" in errors[0][1]


def test_a_naive_or_offset_time_is_read_as_the_same_instant() -> None:
    local = (NOW + dt.timedelta(hours=5, minutes=30)).replace(tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=30)))
    assert _both("prediction", _pred(ts=local.isoformat())) == []
    assert _both("prediction", _pred(ts=NOW.replace(tzinfo=None).isoformat())) == []
    errors = _both("label", f.label("r") | {"ts": "0001-01-01T00:00:00+01:00"})
    assert errors[0][0] == "ts"


def test_window_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="max_age_s"):
        TimeWindow(max_age_s=-1)


def test_over_long_values_name_the_right_reason() -> None:
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"features": {"a": "x" * 8193}}, "features.a", "at most 8192 characters"),
        ({"features": {"k" * 129: 1.0}}, "features." + "k" * 129 + ".[key]", "at most 128 characters"),
        ({"slices": {"a": "x" * 8193}}, "slices.a", "at most 8192 characters"),
        ({"event_id": "x" * 257}, "event_id", "at most 256 characters"),
        ({"model": "m" * 129}, "model", "at most 128 characters"),
        ({"prediction": {"label": "x" * 8193}}, "prediction.label", "at most 8192 characters"),
        ({"features": {"a": [1]}}, "features.a", "a finite number, a string or null"),
    ]
    for change, fld, words in cases:
        errors = _both("prediction", _pred(**change))
        assert errors[0][0] == fld and words in errors[0][1], (change, errors)


def test_a_deep_event_is_rejected_alone_and_the_reader_never_recurses() -> None:
    good = json.dumps(_pred()).encode()
    for deep in (b"[" * 1000 + b"]" * 1000, b'{"a":' * 5000 + b"1" + b"}" * 5000, b"[" * 20 + b"]" * 20):
        for body in (b"[" + good + b"," + deep + b"," + good + b"]",
                     b'{"kind":"prediction","events":[' + good + b"," + deep + b"," + good + b"]}",
                     good + b"\n" + deep + b"\n" + good):
            kind, split = read_batch(body, "prediction")
            assert kind == "prediction" and len(split.raws) == 3
            ok, idx, errors = validate_raw_events("prediction", split.raws, window=FIXED, lines=split.lines)
            assert idx == [0, 2] and [(e.index, e.field) for e in errors] == [(1, "(event)")], body[:80]
            assert "nested deeper than 16 levels" in errors[0].reason
    # a whole body that deep is one (rejected) event, never a RecursionError
    _, split = read_batch(b"[" * 100_000 + b"]" * 100_000, "prediction")
    _, _, errors = validate_raw_events("prediction", split.raws)
    assert [e.reason for e in errors] == ["nested deeper than 16 levels"]
    with pytest.raises(ContractError, match="line 2: nested deeper"):
        decode_batch(good + b"\n" + b"[" * 2000 + b"]" * 2000, "prediction")


def test_ndjson_errors_name_the_line() -> None:
    good = json.dumps(_pred())
    body = "\n".join(["", good, "", good[:-5], good, json.dumps(_pred(model="bad name")), "  ", good, ""]).encode()
    _, split = read_batch(body, "prediction")
    ok, idx, errors = validate_raw_events("prediction", split.raws, window=FIXED, lines=split.lines)
    assert idx == [0, 2, 4]
    assert [(e.index, e.line, e.field) for e in errors] == [(1, 4, "(event)"), (3, 6, "model")]
    assert "not valid JSON" in errors[0].reason and errors[0].as_dict()["line"] == 4
    # CRLF line ends, and a pretty-printed envelope is not NDJSON
    _, split = read_batch((good + "\r\n" + good + "\r\n").encode(), "prediction")
    assert split.lines == [1, 2]
    pretty = json.dumps({"kind": "prediction", "events": [_pred(), _pred()]}, indent=2).encode()
    _, split = read_batch(pretty, "prediction")
    assert len(split.raws) == 2 and split.lines is None


def test_invalid_utf8_rejects_only_its_event() -> None:
    good = json.dumps(_pred()).encode()
    bad = json.dumps(_pred(request_id="BAD")).encode().replace(b"BAD", b"B\xffD")
    for body, lines in ((b"[" + good + b"," + bad + b"," + good + b"]", None),
                        (good + b"\n" + bad + b"\n" + good, [1, 2, 3])):
        _, split = read_batch(body, "prediction")
        _, idx, errors = validate_raw_events("prediction", split.raws, window=FIXED, lines=split.lines)
        assert idx == [0, 2] and errors[0].index == 1 and errors[0].line == (lines[1] if lines else None)
        assert errors[0].reason.startswith("not valid UTF-8 (byte 0xff")


def test_non_standard_numbers_are_read_per_event() -> None:
    good = json.dumps(_pred()).encode()
    bad = json.dumps(_pred(latency_ms=float("nan"))).encode()  # NaN: what Python's json writes
    _, split = read_batch(b"[" + good + b"," + bad + b"]", "prediction")
    _, idx, errors = validate_raw_events("prediction", split.raws, window=FIXED)
    assert idx == [0] and errors[0].field == "latency_ms" and "finite" in errors[0].reason


@pytest.mark.parametrize("body", [
    b"[" + b",".join([b"0"] * 5_200_000) + b"]",
    b'{"kind": "prediction", "events": [' + b",".join([b"{}"] * 3_000_000) + b"]}",
    b"\n".join([b'{"a":1}'] * 1_500_000),
    b"[" + b'"x",' * 3_000_000 + b"[" * 2000 + b"]" * 2000 + b"]",
])
def test_event_counts_are_checked_while_reading(body: bytes) -> None:
    t0 = time.perf_counter()
    with pytest.raises(BatchTooLarge, match="over the limit of 10000|the limit is 10000"):
        read_batch(body, "prediction")
    assert time.perf_counter() - t0 < 10  # (figures: bench/ingest_limits.py) a generous bound, never 44 s
    with pytest.raises(BatchTooLarge):
        read_batch(body, "prediction", max_events=10)
    assert validate_batch_fast(body, "prediction") is None


def test_a_batch_at_the_limit_is_read() -> None:
    evs = [_pred() for _ in range(50)]
    for body in (json.dumps(evs).encode(), "\n".join(json.dumps(e) for e in evs).encode(),
                 json.dumps({"kind": "prediction", "events": evs}).encode()):
        assert len(read_batch(body, "prediction", max_events=50)[1].raws) == 50
        with pytest.raises(BatchTooLarge):
            read_batch(body, "prediction", max_events=49)
        assert validate_batch_fast(body, "prediction", max_events=49, window=FIXED) is None
    assert len(validate_batch_fast(json.dumps(evs).encode(), "prediction", max_events=50, window=FIXED) or []) == 50


@pytest.mark.parametrize(("body", "words"), [
    (b"", "body: empty batch"), (b"  \n ", "body: empty batch"), (b"5", "got int"), (b'"x"', "got str"),
    (b"[1, 2", "not valid JSON"), (b"\xff\xfe", "not valid JSON"),
    (b'{"kind": "prediction", "events": 5}', "events: must be"),
    (b'{"kind": 5, "events": []}', "kind: must be a string"),
    (b'{"kind": "tweet", "events": []}', "unknown event kind"),
])
def test_unreadable_batches_say_why(body: bytes, words: str) -> None:
    with pytest.raises(ContractError, match=words):
        read_batch(body, None if b"kind" in body else "prediction")


def test_a_body_msgspec_cannot_read_is_split_by_its_brackets_not_by_its_strings() -> None:
    good = json.dumps(_pred(request_id='r "]}, [{ \\" ,')).encode()  # brackets, commas and quotes inside a string
    deep = b"[" * 1500 + b"]" * 1500
    env = (b'{"note": "\\"events\\": [1, 2]", "kind": "prediction", "schema_version": 1, "events": ['
           + good + b", {broken json}, " + deep + b", " + good + b"]}")
    kind, split = read_batch(env, None)
    assert kind == "prediction" and len(split.raws) == 4 and split.raws[0] == good and split.raws[1] == b"{broken json}"
    _, idx, errors = validate_raw_events("prediction", split.raws, window=FIXED)
    assert idx == [0, 3] and [(e.index, e.reason.split(" (")[0]) for e in errors] == [
        (1, "not valid JSON"), (2, "nested deeper than 16 levels")]
    assert read_batch(b"[NaN, 1, " + deep + b"]", "prediction")[1].raws[:2] == [b"NaN", b"1"]
    assert read_batch(b"[NaN]", "prediction")[1].raws == [b"NaN"]
    with pytest.raises(ContractError, match="kind: envelope says 'label'"):
        read_batch(b'{"kind": "label", "events": [' + deep + b"]}", "prediction")
    for broken in (b"[" + deep, b"[NaN, " + b"[" * 3000, b'{"events": [NaN}'):
        with pytest.raises(ContractError, match="body: not valid JSON"):
            read_batch(broken, "prediction")
    with pytest.raises(BatchTooLarge):
        read_batch(b"[" + b"NaN," * 20_000 + deep + b"]", "prediction")
    with pytest.raises(ContractError, match="events: must be a JSON array"):
        read_batch(b'{"kind": "prediction", "events": {"a": ' + deep + b"}}", "prediction")
