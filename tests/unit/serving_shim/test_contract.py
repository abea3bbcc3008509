from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import jsonschema
import pytest

from serving_shim.codec import decode_batch, encode_batch
from serving_shim.contract import (
    ContractError,
    LabelEvent,
    PredictionEvent,
    json_schema,
    validate_events,
)
from tests import factories as f


def test_good_batch_validates_to_models() -> None:
    good, errors = validate_events("prediction", [f.prediction(i) for i in range(5)])
    assert errors == []
    assert len(good) == 5 and all(isinstance(e, PredictionEvent) for e in good)
    assert good[0].ts.tzinfo is not None
    assert good[1].features["x"] == 1.0 and good[1].features["region"] == "us" and good[1].features["missing"] is None


@pytest.mark.parametrize(
    ("mutate", "field", "reason_part"),
    [
        (lambda e: e.pop("model"), "model", "Field required"),
        (lambda e: e.update(latency_ms="fast"), "latency_ms", "valid number"),
        (lambda e: e.update(schema_version=7), "schema_version", "unsupported schema_version 7"),
        (lambda e: e.update(schema_version="1"), "schema_version", "must be an integer"),
        (lambda e: e.update(features={"x": [1, 2]}), "features", "must be a finite number, a string or null"),
        (lambda e: e.update(features={"x": float("nan")}), "features", "finite"),
        (lambda e: e.update(status="meh"), "status", "'ok' or 'error'"),
        (lambda e: e.update(prediction={}), "prediction", "at least one of"),
        (lambda e: e.update(ts="yesterday"), "ts", "datetime"),
        (lambda e: e.update(surprise=1), "surprise", "Extra inputs are not permitted"),
        (lambda e: e.update(model="bad model name"), "model", "pattern"),
    ],
)
def test_bad_event_names_field_and_reason_and_keeps_neighbours(mutate: Callable[[dict[str, Any]], object], field: str,
                                                               reason_part: str) -> None:
    batch = [f.prediction(0), f.prediction(1), f.prediction(2)]
    mutate(batch[1])
    good, errors = validate_events("prediction", batch)
    assert [g.event_id for g in good] == [batch[0]["event_id"], batch[2]["event_id"]]
    assert len(errors) == 1
    err = errors[0]
    assert err.index == 1
    assert err.field.split(".")[0] == field
    assert reason_part in err.reason


def test_label_needs_value_or_label() -> None:
    ev = f.label("r1")
    ev.pop("label")
    good, errors = validate_events("label", [ev, f.label("r2")])
    assert len(good) == 1 and isinstance(good[0], LabelEvent)
    assert errors[0].field == "(event)" or "value" in errors[0].reason


def test_metric_window_sums_are_checked() -> None:
    w = f.metric_window(requests=10, errors=20)
    good, errors = validate_events("metric_window", [w])
    assert not good and "more than requests=10" in errors[0].reason
    w = f.metric_window()
    w["latency_buckets"] = [1, 2]
    _, errors = validate_events("metric_window", [w])
    assert errors[0].field == "(event)" or "latency_buckets" in errors[0].reason


def test_unknown_kind_raises() -> None:
    with pytest.raises(ContractError, match="unknown event kind"):
        validate_events("tweet", [])


def test_encode_decode_roundtrip_and_ndjson() -> None:
    evs = [f.prediction(i) for i in range(3)]
    kind, items = decode_batch(encode_batch("prediction", evs))
    assert kind == "prediction" and items[2]["event_id"] == evs[2]["event_id"]
    ndjson = "\n".join(json.dumps(e) for e in evs).encode()
    kind, items = decode_batch(ndjson, "prediction")
    assert len(items) == 3
    with pytest.raises(ContractError, match="not valid JSON"):
        decode_batch(b"{nope", "prediction")
    with pytest.raises(ContractError, match="envelope says"):
        decode_batch(encode_batch("label", [f.label("r")]), "prediction")


def test_json_schema_accepts_real_batches_and_rejects_bad_ones() -> None:
    schema = json_schema()
    batch = json.loads(encode_batch("prediction", [f.prediction(1)]))
    jsonschema.validate(batch, schema)
    batch["events"][0].pop("request_id")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(batch, schema)
    for kind in ("label", "metric_window", "deploy"):
        assert json_schema(kind)["type"] == "object"
