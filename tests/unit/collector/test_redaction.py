"""Server-side redaction of decoded batches: good events (fast-path objects and contract models alike),
dead letters (redacted copy + sha256, or raw on request), and the spec the server reads."""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from collector.ingest import decode_message
from collector.redaction import IngestRedaction, load_redaction
from serving_shim import Redaction, ShimConfigError
from serving_shim._internal.redaction import Redactor

SALT = b"server-salt-0123456789abcdef"
#: an event time the server accepts (its window is 7 days back by default)
TS = (_dt.datetime.now(_dt.UTC) - _dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S")


def _prediction(i: int, **extra: object) -> dict[str, object]:
    return {"schema_version": 1, "event_id": f"e{i}", "ts": TS + "+00:00", "model": "m",
            "model_version": "v1", "request_id": f"r{i}",
            "features": {"email": "jane.roe@example.com", "n": 3.0, "plan": "pro"},
            "prediction": {"label": "call 415-555-0132", "probabilities": {"a": 0.5, "bob@example.com": 0.5}},
            "slices": {"who": "ssn 536-22-1234"}, **extra}


@pytest.mark.parametrize("body", [
    [_prediction(0), _prediction(1)],                                              # the compiled fast path
    [_prediction(0, ts=TS), _prediction(1, latency_ms=1e400)],  # models (and a bad one)
])
def test_good_events_are_redacted_before_they_are_stored(body: list[dict[str, object]]) -> None:
    decoded = decode_message(json.dumps(body).encode(), source="http", kind="prediction")
    IngestRedaction(Redaction(categories={"plan": {"pro"}})).apply(decoded)
    (e, *_) = decoded.good["prediction"]
    assert e.features == {"email": "<EMAIL_ADDRESS>", "n": 3.0, "plan": "pro"}
    assert e.slices == {"who": "ssn <US_SSN>"} and e.prediction.label == "call <PHONE_NUMBER>"
    assert list(e.prediction.probabilities) == ["a", "_EMAIL_ADDRESS_"]


def test_strict_server_tokenizes_and_keeps_sdk_tokens() -> None:
    ir = IngestRedaction(Redaction(mode="strict", salt=SALT, categories={"plan": {"pro"}}))
    assert ir._red is not None
    token = ir._red.hash("jane.roe@example.com")
    body = [_prediction(0), {**_prediction(1), "features": {"email": token}}]
    decoded = ir.apply(decode_message(json.dumps(body).encode(), source="http", kind="prediction"))
    a, b = decoded.good["prediction"]
    assert a.features["email"] == token == b.features["email"] and a.features["plan"] == "pro"


def test_labels_deploys_and_metric_windows() -> None:
    ir = IngestRedaction(Redaction())
    labels = [{"schema_version": 1, "event_id": "l", "ts": TS + "Z", "model": "m", "request_id": "r",
               "label": "fraud by jane@example.com"}]
    (lab,) = ir.apply(decode_message(json.dumps(labels).encode(), source="http", kind="label")).good["label"]
    assert lab.label == "fraud by <EMAIL_ADDRESS>"
    deploys = [{"schema_version": 1, "event_id": "d", "ts": TS + "Z", "model": "m", "model_version": "v",
                "annotations": {"author": "jane@example.com", "sha": "abc123"}}]
    (dep,) = ir.apply(decode_message(json.dumps(deploys).encode(), source="http", kind="deploy")).good["deploy"]
    assert dict(dep.annotations) == {"author": "<EMAIL_ADDRESS>", "sha": "abc123"}
    windows = [{"schema_version": 1, "event_id": "w", "model": "m", "model_version": "v",
                "window_start": TS + "Z", "window_s": 10, "source": "s", "requests": 5,
                "errors": {"Timeout": 1, "Err_415-555-0132": 2}, "latency_buckets": [0] * 14, "latency_sum_ms": 0}]
    (w,) = ir.apply(decode_message(json.dumps(windows).encode(), source="http",
                                   kind="metric_window")).good["metric_window"]
    assert dict(w.errors) == {"Timeout": 1, "Err__PHONE_NUMBER_": 2}


def test_dead_letters_keep_a_redacted_copy_and_the_hash() -> None:
    bad = _prediction(0, latency_ms=-1.0, note="call +1-780-563-6083x7783")
    raw = json.dumps(bad)
    decoded = IngestRedaction(Redaction()).apply(decode_message(f"[{raw}]".encode(), source="http", kind="prediction"))
    (d,) = decoded.dead
    payload = json.loads(d.payload)
    assert payload["sha256"] == hashlib.sha256(raw.encode()).hexdigest()
    red = payload["redacted"]
    assert red["features"]["email"] == "<EMAIL_ADDRESS>" and red["note"] == "call <PHONE_NUMBER>"
    assert red["prediction"]["label"] == "call <PHONE_NUMBER>" and red["request_id"] == "r0"
    for secret in ("jane.roe", "415-555-0132", "536-22-1234", "563-6083", "bob@example.com"):
        assert secret.encode() not in d.payload and secret not in d.reason


def test_a_payload_that_is_not_json_is_redacted_as_text_or_left_out_in_strict_mode() -> None:
    body = b"mail jane@example.com {not json"
    (d,) = IngestRedaction(Redaction()).apply(decode_message(body, source="http", kind="prediction")).dead
    assert json.loads(d.payload) == {"sha256": hashlib.sha256(body).hexdigest(),
                                     "redacted": "mail <EMAIL_ADDRESS> {not json"}
    (s,) = IngestRedaction(Redaction(mode="strict", salt=SALT)).apply(
        decode_message(body, source="http", kind="prediction")).dead
    assert json.loads(s.payload)["redacted"] is None


def test_raw_dead_letters_only_when_the_operator_opts_in() -> None:
    raw = json.dumps(_prediction(0, latency_ms=-1.0))
    (d,) = IngestRedaction(Redaction(), raw_dead_letters=True).apply(
        decode_message(f"[{raw}]".encode(), source="http", kind="prediction")).dead
    assert d.payload == raw.encode()
    (n,) = IngestRedaction(None).apply(decode_message(f"[{raw}]".encode(), source="http", kind="prediction")).dead
    assert json.loads(n.payload) == {"sha256": hashlib.sha256(raw.encode()).hexdigest(), "redacted": None}


def test_load_redaction(tmp_path: Path) -> None:
    assert load_redaction("off") is None
    default = load_redaction("")
    assert default is not None and default.mode == "standard"
    f = tmp_path / "redaction.yaml"
    f.write_text("mode: strict\nfields:\n  note: text\ncategories:\n  region: [eu, us]\n")
    r = load_redaction(str(f), "a-salt-of-16-bytes-or-more")
    assert r is not None and r.mode == "strict" and r.categories["region"] == frozenset({"eu", "us"})
    with pytest.raises(ShimConfigError, match="salt"):
        load_redaction('{"mode": "strict"}')
    with pytest.raises(ShimConfigError, match="no spec file"):
        load_redaction("/nonexistent/spec.yaml")


def test_an_event_that_breaks_redaction_is_rejected_and_its_neighbours_go_on() -> None:
    class Broken(IngestRedaction):
        def _prediction(self, red: Redactor, e: Any) -> Any:
            if e.request_id == "r1":
                raise RuntimeError("jane@example.com")  # a message holding PII must not surface
            return super()._prediction(red, e)

    body = json.dumps([_prediction(0), _prediction(1), _prediction(2)]).encode()
    decoded = Broken(Redaction()).apply(decode_message(body, source="http", kind="prediction"))
    assert [e.request_id for e in decoded.good["prediction"]] == ["r0", "r2"]
    assert decoded.indices["prediction"] == [0, 2]
    (err,) = decoded.errors
    assert (err.index, err.field, err.reason) == (1, "(redaction)", "redaction failed (RuntimeError)")
    assert len(decoded.dead) == 1 and b"jane" not in decoded.dead[0].payload
