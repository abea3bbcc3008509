from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from collector.migrations import COLLECTOR_MIGRATIONS, migrate
from collector.sql import commas, ident, sql
from collector.store import ChdbStore
from collector.writer import EventWriter
from driftline.server import all_migrations
from serving_shim.contract import validate_events
from tests import factories as f
from tests.conftest import _CHDB_PATH


def _stored(store: ChdbStore, table: str = "predictions") -> int:
    return int(store.scalar(sql("SELECT count() FROM {db}.%(t)s FINAL", t=ident(table))))


def test_migrations_are_idempotent(store: ChdbStore) -> None:
    assert migrate(store, all_migrations()) == []
    tables = {r["name"] for r in store.rows("SELECT name FROM system.tables WHERE database = %(d)s",
                                            {"d": store.database})}
    assert {"predictions", "labels", "metric_windows", "deploys", "dead_letters", "schema_migrations"} <= tables
    engine = store.scalar("SELECT engine_full FROM system.tables WHERE database = %(d)s AND name = 'predictions'",
                          {"d": store.database})
    assert "ReplacingMergeTree" in engine and "PARTITION BY toDate(ts)" in engine and "TTL" in engine


def test_predictions_round_trip_field_by_field(store: ChdbStore) -> None:
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


def test_same_batch_twice_reads_back_once(store: ChdbStore) -> None:
    good, _ = validate_events("prediction", [f.prediction(i) for i in range(100)])
    w = EventWriter(store)
    w.write("prediction", good)
    w.write("prediction", good)
    w.write("prediction", good[:30])  # a partial redelivery, batched differently
    assert _stored(store) == 100
    assert int(store.scalar("SELECT count() FROM {db}.predictions")) == 230  # physically there, deduped by design


def test_other_kinds_store_and_dedup(store: ChdbStore) -> None:
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


def test_concurrent_inserts_from_threads_lose_nothing(store: ChdbStore) -> None:
    """Two collectors (or a collector and the API) in one process insert into one chDB session at once.

    chDB resolves ``Python(batch)`` while the query runs: unserialized, one thread's insert could read
    the other thread's batch, storing one batch twice and losing the other without an error.
    """
    import threading

    other = ChdbStore(store.path, database=store.database)  # another store object on the same session
    batches = [validate_events("prediction", [f.prediction(1000 * b + i) for i in range(500)])[0] for b in range(16)]
    errors: list[BaseException] = []

    def insert(s: ChdbStore, mine: list[list[Any]]) -> None:
        try:
            for good in mine:
                EventWriter(s).write("prediction", good)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=insert, args=(s, batches[k::4]))
               for k, s in enumerate((store, other, store, other))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors
    ids = [r["event_id"] for r in store.rows("SELECT event_id FROM {db}.predictions")]
    assert len(ids) == 16 * 500
    assert set(ids) == {e.event_id for good in batches for e in good}


@contextmanager
def _older_store(before: int) -> Iterator[ChdbStore]:
    """A store of its own database, made before collector migration ``before``; dropped afterwards."""
    old = ChdbStore(_CHDB_PATH, database=f"t_{uuid.uuid4().hex[:12]}")
    try:
        migrate(old, [m for m in COLLECTOR_MIGRATIONS if m.number < before])
        yield old
    finally:
        old.drop_database()


def test_dead_letters_of_an_older_store_move_to_the_deduplicated_table() -> None:
    with _older_store(3) as old:
        row = ("kafka:t.prediction:0:41", "prediction", 3, "e3", "ts", "Field required", '{"event_id":"e3"}')
        for _ in range(2):  # the old table kept a redelivered dead letter twice
            old.execute(sql("INSERT INTO {db}.dead_letters "
                            "(source, kind, event_index, event_id, field, reason, payload) VALUES (%(v)s)",
                            v=commas(row)))
        assert [m.number for m in migrate(old, all_migrations()) if m.component == "collector"] == [3, 4, 5]
        rows = old.rows("SELECT source, kind, event_index, event_id, field, reason, payload FROM {db}.dead_letters")
        assert [tuple(r.values()) for r in rows] == [row]
        # a migration cut short and run again (statements are re-runnable) changes nothing
        for m in COLLECTOR_MIGRATIONS:
            if m.number == 4:
                for stmt in m.statements:
                    old.execute(stmt)
        assert int(old.scalar("SELECT count() FROM {db}.dead_letters")) == 1
        assert old.scalar("SELECT engine FROM system.tables WHERE database = %(d)s AND name = 'dead_letters'",
                          {"d": old.database}) == "View"


def test_predictions_stored_before_the_layout_column_are_read_by_position() -> None:
    from detectors.drift_sql import grid_counts, grid_for, key_layouts, numeric_stats, window_source
    from tests.detector_data import T0, insert_predictions

    with _older_store(5) as old:
        feats = [{"a": float(i), "b": -float(i)} if i % 3 else {"b": 1.0} for i in range(30)]
        insert_predictions(old, start=T0, seconds=60, features=feats)
        assert [m.number for m in migrate(old, all_migrations()) if m.component == "collector"] == [5]
        src = window_source("m1", T0, T0 + dt.timedelta(minutes=5))
        lay = key_layouts(old, src)   # the signature of the older part is computed when read
        assert sorted((ks, n) for _, ks, n in lay.groups) == [(("a", "b"), 20), (("b",), 10)]
        st = numeric_stats(old, src)  # by key, for comparison
        ga, gb = grid_for(0.0, 29.0), grid_for(-29.0, 1.0)
        assert ga is not None and gb is not None
        g = {"a": ga, "b": gb}
        counts, stats = grid_counts(old, src, g, stats=["a", "b"], layouts=lay)
        assert {f: (s.n, s.lo, s.hi) for f, s in stats.items()} == {f: (s.n, s.lo, s.hi) for f, s in st.items()}
        assert stats["a"].mean == pytest.approx(st["a"].mean) and stats["b"].std == pytest.approx(st["b"].std)
        assert int(counts["a"].sum()) == 20 and int(counts["b"].sum()) == 30


def test_chdb_sessions_do_not_jit_compile_expressions(store: ChdbStore) -> None:
    # the detectors' expressions change with every reference: compiling them cost 0.2-0.6 s per run
    # and a wide model's scans (every feature's thresholds spelled out) pass the 256 KiB default query size
    got = {r["name"]: r["value"] for r in store.rows(
        "SELECT name, value FROM system.settings "
        "WHERE name IN ('compile_expressions', 'compile_aggregate_expressions', 'max_query_size')")}
    assert got == {"compile_expressions": "0", "compile_aggregate_expressions": "0", "max_query_size": str(16 << 20)}
