from __future__ import annotations

import datetime as dt

from collector.migrations import migrate
from collector.writer import EventWriter
from driftline.server import all_migrations
from serving_shim.contract import validate_events
from tests import factories as f


def _stored(store, table: str = "predictions") -> int:  # type: ignore[no-untyped-def]
    return int(store.scalar(f"SELECT count() FROM {{db}}.{table} FINAL"))


def test_migrations_are_idempotent(store) -> None:  # type: ignore[no-untyped-def]
    assert migrate(store, all_migrations()) == []
    tables = {r["name"] for r in store.rows("SELECT name FROM system.tables WHERE database = %(d)s", {"d": store.database})}
    assert {"predictions", "labels", "metric_windows", "deploys", "dead_letters", "schema_migrations"} <= tables
    engine = store.scalar("SELECT engine_full FROM system.tables WHERE database = %(d)s AND name = 'predictions'", {"d": store.database})
    assert "ReplacingMergeTree" in engine and "PARTITION BY toDate(ts)" in engine and "TTL" in engine


def test_predictions_round_trip_field_by_field(store) -> None:  # type: ignore[no-untyped-def]
    raw = [f.prediction(i) for i in range(50)]
    good, errors = validate_events("prediction", raw)
    assert not errors
    assert EventWriter(store).write("prediction", good) == 50
    rows = {r["event_id"]: r for r in store.rows("SELECT * FROM {db}.predictions FINAL")}
    assert len(rows) == 50
    for ev in raw:
        r = rows[ev["event_id"]]
        assert r["ts"] == dt.datetime.fromisoformat(ev["ts"])
        assert (r["model"], r["model_version"], r["request_id"]) == (ev["model"], ev["model_version"], ev["request_id"])
        assert r["features_num"] == {"x": ev["features"]["x"], "y": ev["features"]["y"]}
        assert r["features_cat"] == {"region": ev["features"]["region"]}
        assert r["features_null"] == ["missing"]
        assert r["pred_label"] == ev["prediction"]["label"] and r["pred_score"] == ev["prediction"]["score"]
        assert r["pred_value"] is None and r["pred_probs"] == ev["prediction"]["probabilities"]
        assert r["slices"] == ev["slices"] and r["latency_ms"] == ev["latency_ms"]
        assert r["status"] == "ok" and r["error_type"] == "" and r["schema_version"] == 1


def test_same_batch_twice_reads_back_once(store) -> None:  # type: ignore[no-untyped-def]
    good, _ = validate_events("prediction", [f.prediction(i) for i in range(100)])
    w = EventWriter(store)
    w.write("prediction", good)
    w.write("prediction", good)
    w.write("prediction", good[:30])  # a partial redelivery, batched differently
    assert _stored(store) == 100
    assert int(store.scalar("SELECT count() FROM {db}.predictions")) == 230  # physically there, deduped by design


def test_other_kinds_store_and_dedup(store) -> None:  # type: ignore[no-untyped-def]
    w = EventWriter(store)
    for kind, table, raw in (
        ("label", "labels", [f.label(f"r{i}") for i in range(5)]),
        ("metric_window", "metric_windows", [f.metric_window() for _ in range(3)]),
        ("deploy", "deploys", [f.deploy()]),
    ):
        good, errors = validate_events(kind, raw)
        assert not errors
        w.write(kind, good)
        w.write(kind, good)
        assert _stored(store, table) == len(raw)
    mw = store.rows("SELECT requests, errors, latency_buckets FROM {db}.metric_windows FINAL LIMIT 1")[0]
    assert mw["requests"] == 100 and mw["errors"] == {"timeout": 2} and sum(mw["latency_buckets"]) == 100
