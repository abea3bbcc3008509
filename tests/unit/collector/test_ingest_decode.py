"""decode_message never raises: every batch it cannot read is one dead letter with its original bytes and a
reason; every bad event in a readable batch is its own dead letter; the good events are kept."""

from __future__ import annotations

import gzip
import json
from typing import Any

import pytest

from collector.ingest import DecodeLimits, decode_message
from collector.writer import MAX_DEAD_LETTER_PAYLOAD, DeadLetter, dead_letter_payload
from tests import factories as f

SRC = "kafka:driftline.prediction:3:41"


def _good(n: int) -> list[dict[str, Any]]:
    return [f.prediction(i) for i in range(n)]


@pytest.mark.parametrize(("value", "field", "words"), [
    (None, "value", "null value (a tombstone)"),
    (b"", "body", "empty batch"),
    (b"   \n", "body", "empty batch"),
    (gzip.compress(json.dumps([f.prediction(0)]).encode()), "body", "compressed with gzip"),
    (b"\x04\x22\x4d\x18garbage that is not lz4", "body", "compressed with lz4"),
    (b"\x28\xb5\x2f\xfd\x00garbage", "body", "compressed with zstd"),
    (b"\x00not json", "body", "not valid JSON"),
    (b"\xff\xfe\xfd", "body", "not valid JSON"),
    (b"<html>502</html>", "body", "not valid JSON"),
    (b"[1, 2", "body", "not valid JSON"),
    (b"42", "body", "must be a JSON array"),
])
def test_a_message_that_cannot_be_read_is_one_dead_letter(value: bytes | None, field: str, words: str) -> None:
    d = decode_message(value, source=SRC, kind="prediction")
    assert not d.n_good and len(d.errors) == 1 and len(d.dead) == 1
    e, dead = d.errors[0], d.dead[0]
    assert e.index == -1 and e.field == field and words in e.reason, e
    assert dead.source == SRC and dead.kind == "prediction" and dead.index == -1 and dead.reason == e.reason
    assert dead.payload == (value or b"")  # the original bytes, not a decoded copy


def test_an_oversized_message_is_refused_before_it_is_read() -> None:
    body = json.dumps(_good(200)).encode()
    d = decode_message(body, source=SRC, kind="prediction", limits=DecodeLimits(max_bytes=len(body) - 1))
    assert d.too_large and d.errors[0].field == "body" and f"{len(body)} bytes is over the limit" in d.errors[0].reason
    assert d.dead[0].payload == body[:MAX_DEAD_LETTER_PAYLOAD]
    assert decode_message(body, source=SRC, kind="prediction", limits=DecodeLimits(max_bytes=len(body))).n_good == 200


def test_too_many_events_is_one_dead_letter_marked_too_large() -> None:
    d = decode_message(b"[" + b",".join([b"0"] * 100_000) + b"]", source="http", kind="prediction")
    assert d.too_large and d.errors[0].field == "events" and "the limit is 10000" in d.errors[0].reason
    body = json.dumps(_good(30)).encode()
    d = decode_message(body, source="http", kind="prediction", limits=DecodeLimits(max_events=29))
    assert d.too_large and not d.n_good


def test_invalid_utf8_in_one_event_rejects_that_event_only() -> None:
    evs = _good(5)
    body = json.dumps({"kind": "prediction", "events": evs}).encode()
    rid = evs[2]["request_id"].encode()
    body = body.replace(rid, rid + b"\xc3\x28")
    d = decode_message(body, source=SRC, kind="prediction")
    assert [e.event_id for e in d.good["prediction"]] == [evs[i]["event_id"] for i in (0, 1, 3, 4)]
    assert [(e.index, e.field) for e in d.errors] == [(2, "(event)")] and "not valid UTF-8" in d.errors[0].reason
    assert rid + b"\xc3\x28" in d.dead[0].payload and d.dead[0].index == 2  # the event's own bytes


def test_deep_events_and_bad_lines_are_rejected_one_by_one() -> None:
    evs = _good(3)
    deep = b"[" * 3000 + b"]" * 3000
    lines = [json.dumps(evs[0]).encode(), deep, b"{not json", json.dumps(evs[1]).encode(), b"",
             json.dumps(evs[2]).encode()]
    d = decode_message(b"\n".join(lines), source="http", kind="prediction")
    assert d.n_good == 3
    assert [(e.index, e.line, e.reason.split(" (")[0]) for e in d.errors] == [
        (1, 2, "nested deeper than 16 levels"), (2, 3, "not valid JSON")]
    assert [x.payload for x in d.dead] == [deep, b"{not json"]
    body = b"[" + json.dumps(evs[0]).encode() + b"," + deep + b"," + json.dumps(evs[1]).encode() + b"]"
    d = decode_message(body, source="http", kind="prediction")
    assert d.n_good == 2 and [(e.index, e.field) for e in d.errors] == [(1, "(event)")]


def test_times_outside_the_window_are_dead_letters_and_the_window_is_passed_in() -> None:
    from serving_shim.contract import TimeWindow

    evs = _good(3)
    evs[1]["ts"] = "9998-01-01T00:00:00+00:00"
    d = decode_message(json.dumps(evs).encode(), source=SRC, kind="prediction")
    assert d.n_good == 2 and d.errors[0].field == "ts" and "outside the accepted window" in d.errors[0].reason
    d = decode_message(json.dumps(evs).encode(), source=SRC, kind="prediction", limits=DecodeLimits(window=None))
    assert d.n_good == 3
    tight = TimeWindow(max_age_s=0, max_ahead_s=0)
    d = decode_message(json.dumps(_good(2)).encode(), source=SRC, kind="prediction", limits=DecodeLimits(window=tight))
    assert d.n_good == 0 and {e.field for e in d.errors} == {"ts"}


def test_every_dead_letter_payload_is_made_by_one_function() -> None:
    assert dead_letter_payload(None) == b""
    assert dead_letter_payload(b"x" * (MAX_DEAD_LETTER_PAYLOAD + 10)) == b"x" * MAX_DEAD_LETTER_PAYLOAD
    import msgspec

    assert dead_letter_payload(msgspec.Raw(b'{"a":1}')) == b'{"a":1}'
    from serving_shim.contract import EventError

    dl = DeadLetter.from_error("http", "label", EventError(3, "ts", "bad", "e1"), b"\xff")
    assert (dl.index, dl.event_id, dl.field, dl.payload) == (3, "e1", "ts", b"\xff")
