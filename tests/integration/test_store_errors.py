"""The collector and the ingest API behave the same on both engines, chDB and a real ClickHouse server,
because both engines raise the same three store errors (:mod:`collector.exceptions`):

- an outage (the server stopped, the chDB store closed) is retried: nothing is lost, nothing is
  dead-lettered, nothing is committed until it is stored;
- a row the store refuses becomes a dead letter with the reason, and the events beside it are stored;
- so does an event the statement fails on (a poison value) while the events beside it are stored;
- a bug (the statement is wrong, nothing of the batch storable) is raised, not retried away or dead-lettered.

Debian's clickhouse-server is 18.16, older than the schema needs (no Map, no DateTime64): on the server
the test creates the two tables it writes (labels, dead letters) in types 18.16 knows (``DateTime`` for
``DateTime64``, ``String`` for ``LowCardinality(String)``) and lowers the version floor. The store's insert
conversion still comes from the declared schema (:mod:`collector.schema`), as on chDB.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

import collector.store as store_mod
from collector.api import StoreIngestSink, ingest_router
from collector.consumer import KafkaCollector
from collector.exceptions import QueryError
from collector.ingest import DecodeLimits, decode_message
from collector.migrations import migrate
from collector.store import ChdbStore, ClickHouseStore, Store
from collector.writer import EventWriter
from driftline.migrations import all_migrations
from serving_shim.codec import encode_batch
from tests import factories as f
from tests.brokers import group_offsets, produce_predictions
from tests.clickhouse import ClickHouseServer, server_binary
from tests.conftest import _CHDB_PATH

_OLD_SERVER_TABLES = (
    """CREATE TABLE {db}.labels (event_id String, ts DateTime, model String, request_id String,
       label_value Nullable(Float64), label_class Nullable(String), schema_version UInt16,
       ingested_at DateTime DEFAULT now(), subject_hash String DEFAULT '')
       ENGINE = ReplacingMergeTree() ORDER BY (model, request_id, event_id)""",
    """CREATE TABLE {db}.dead_letters_v2 (received_at DateTime DEFAULT now(), source String, kind String,
       event_index Int32, event_id String, field String, reason String, payload String,
       subject_hashes Array(String) DEFAULT [])
       ENGINE = ReplacingMergeTree() ORDER BY (source, event_index, field, cityHash64(payload))""",
    "CREATE VIEW {db}.dead_letters AS SELECT * FROM {db}.dead_letters_v2 FINAL",
)

NO_WINDOW = DecodeLimits(window=None)   # the contract's time window off: a time the column cannot hold gets through


@dataclass
class Engine:
    name: str
    store: Store
    down: Callable[[], None]        # the outage
    up: Callable[[], Store]         # the store back (the store object to use from now on)


@pytest.fixture(params=["chdb", "clickhouse"])
def engine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    db = f"t_{uuid.uuid4().hex[:12]}"
    if request.param == "chdb":
        s: Store = ChdbStore(_CHDB_PATH, database=db)
        migrate(s, all_migrations())
        yield Engine("chdb", s, s.close, lambda: ChdbStore(_CHDB_PATH, database=db))
        ChdbStore(_CHDB_PATH, database=db).drop_database()
        return
    binary = server_binary()
    if binary is None:
        pytest.fail("clickhouse-server is not installed (scripts/setup.sh installs Debian's package)", pytrace=False)
    server = ClickHouseServer(binary)       # a private server: this test stops and starts it
    server.start()
    monkeypatch.setattr(store_mod, "MIN_SERVER_VERSION", (18, 1))
    s = ClickHouseStore(host=server.host, port=server.port, database=db, connect_timeout=1, send_receive_timeout=10)
    for stmt in _OLD_SERVER_TABLES:
        s.execute(stmt)

    def up() -> Store:
        server.start()
        return s

    try:
        yield Engine("clickhouse", s, server.stop, up)
    finally:
        s.close()
        server.remove()


def _collector(store: Store, bootstrap: str, prefix: str) -> KafkaCollector:
    return KafkaCollector(EventWriter(store), bootstrap_servers=bootstrap, group_id=f"{prefix}-g",
                          topic_prefix=prefix, kinds=("label",), batch_max_s=0.3, retry_initial_s=0.05,
                          retry_max_s=0.2, shutdown_grace_s=1.0, dead_letter_topic=False, limits=NO_WINDOW)


def _committed(bootstrap: str, prefix: str) -> int:
    committed, _ = group_offsets(bootstrap, f"{prefix}-g", f"{prefix}.label")
    return sum(committed.values())


def _drain(c: KafkaCollector, done: Callable[[], bool], timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        assert time.monotonic() < deadline, "the collector did not get there in time"
        c.poll_batch()


def _label_ids(store: Store) -> list[str]:
    return sorted(r["event_id"] for r in store.rows("SELECT event_id FROM {db}.labels FINAL"))


def test_an_outage_is_retried_and_nothing_is_lost_or_dead_lettered(engine: Engine, kafka_bootstrap: str,
                                                                    topic_prefix: str) -> None:
    labels = [f.label(f"r{i}") for i in range(40)]
    produce_predictions(kafka_bootstrap, topic_prefix, labels, per_msg=10, kind="label")
    engine.down()
    first = _collector(engine.store, kafka_bootstrap, topic_prefix)
    th = threading.Thread(target=first.run, daemon=True)
    th.start()
    try:
        deadline = time.monotonic() + 90
        while (first.metrics.registry.get_sample_value("driftline_collector_store_errors_total") or 0) < 3:
            assert th.is_alive(), "the collector stopped on an outage instead of retrying"
            assert time.monotonic() < deadline, "the collector never tried the store"
            time.sleep(0.05)
    finally:
        first.stop()
        th.join(60)
        first.close()
    assert not th.is_alive()
    assert (first.stats.stored_events, first.stats.dead_letters) == (0, 0)
    assert _committed(kafka_bootstrap, topic_prefix) == 0        # nothing committed while the store was away

    store = engine.up()
    second = _collector(store, kafka_bootstrap, topic_prefix)
    try:
        _drain(second, lambda: len(_label_ids(store)) >= len(labels))
    finally:
        second.close()
    assert _label_ids(store) == sorted(e["event_id"] for e in labels)     # nothing lost
    assert store.scalar("SELECT count() FROM {db}.dead_letters") == 0     # nothing dead-lettered
    assert second.stats.dead_letters == 0


def test_a_row_the_store_refuses_is_a_dead_letter_and_the_rows_beside_it_are_stored(
        engine: Engine, kafka_bootstrap: str, topic_prefix: str) -> None:
    good = [f.label(f"r{i}") for i in range(12)]
    bad = f.label("r-bad") | {"ts": "2500-01-01T00:00:00+00:00"}   # the contract's window is off; DateTime64 ends 2299
    produce_predictions(kafka_bootstrap, topic_prefix, [*good[:5], bad, *good[5:]], per_msg=6, kind="label")
    c = _collector(engine.store, kafka_bootstrap, topic_prefix)
    try:
        _drain(c, lambda: c.stats.dead_letters >= 1 and len(_label_ids(engine.store)) >= len(good))
    finally:
        c.close()
    assert _label_ids(engine.store) == sorted(e["event_id"] for e in good)
    rows = engine.store.rows("SELECT event_id, event_index, field, reason, payload FROM {db}.dead_letters")
    assert [(r["event_id"], r["event_index"], r["field"]) for r in rows] == [(bad["event_id"], 5, "(store)")]
    assert "labels.ts" in rows[0]["reason"] and "2299" in rows[0]["reason"], rows[0]["reason"]
    assert bad["event_id"].encode() in rows[0]["payload"].encode()    # the message's own bytes are kept
    assert _committed(kafka_bootstrap, topic_prefix) == 3            # and the partition moved on


def test_an_event_the_statement_fails_on_is_a_dead_letter_when_the_events_beside_it_are_stored(
        engine: Engine, kafka_bootstrap: str, topic_prefix: str) -> None:
    # a real failure of the store's own on one event's data: a column computed on insert that throws for it
    # (code 395, not a refusal the error table knows: a QueryError), which retrying would meet forever
    engine.store.execute("ALTER TABLE {db}.labels ADD COLUMN poison UInt8 MATERIALIZED throwIf(request_id = 'r-x')")
    good = [f.label(f"r{i}") for i in range(8)]
    bad = f.label("r-x")
    produce_predictions(kafka_bootstrap, topic_prefix, [*good[:3], bad, *good[3:]], per_msg=3, kind="label")
    c = _collector(engine.store, kafka_bootstrap, topic_prefix)
    try:
        _drain(c, lambda: c.stats.dead_letters >= 1 and len(_label_ids(engine.store)) >= len(good))
    finally:
        c.close()
    assert _label_ids(engine.store) == sorted(e["event_id"] for e in good)
    rows = engine.store.rows("SELECT event_id, event_index, field, reason FROM {db}.dead_letters")
    assert [(r["event_id"], r["event_index"], r["field"]) for r in rows] == [(bad["event_id"], 0, "(store)")]
    assert "failed on the event" in rows[0]["reason"] and "395" in rows[0]["reason"], rows[0]["reason"]
    assert _committed(kafka_bootstrap, topic_prefix) == 3            # the partition moved on past the poison

    decoded = decode_message(encode_batch("label", [f.label("h0"), f.label("r-x"), f.label("h1")]), source="http",
                             kind="label", limits=NO_WINDOW)
    assert StoreIngestSink(engine.store).accept(decoded) == 2       # the ingest API: the same
    assert [(e.index, e.field) for e in decoded.errors] == [(1, "(store)")]


def test_a_bug_is_raised_neither_retried_away_nor_dead_lettered(engine: Engine, kafka_bootstrap: str,
                                                                 topic_prefix: str) -> None:
    engine.store.execute("ALTER TABLE {db}.labels DROP COLUMN label_class")   # the writer's statement is now wrong
    produce_predictions(kafka_bootstrap, topic_prefix, [f.label(f"r{i}") for i in range(5)], kind="label")
    c = _collector(engine.store, kafka_bootstrap, topic_prefix)
    try:
        with pytest.raises(QueryError, match="label_class"):
            _drain(c, lambda: False)
    finally:
        c.close()
    assert c.stats.dead_letters == 0 and engine.store.scalar("SELECT count() FROM {db}.dead_letters") == 0
    assert _committed(kafka_bootstrap, topic_prefix) == 0            # redelivered once the bug is fixed


def test_the_ingest_api_answers_an_outage_with_503_and_stores_beside_a_refused_row(engine: Engine) -> None:
    good = [f.label(f"h{i}") for i in range(4)]
    bad = f.label("h-bad") | {"ts": "1850-01-01T00:00:00+00:00"}
    decoded = decode_message(encode_batch("label", [*good, bad]), source="http", kind="label", limits=NO_WINDOW)
    assert StoreIngestSink(engine.store).accept(decoded) == len(good)
    assert [(e.index, e.field) for e in decoded.errors] == [(4, "(store)")]
    assert _label_ids(engine.store) == sorted(e["event_id"] for e in good)
    assert engine.store.scalar("SELECT count() FROM {db}.dead_letters WHERE field = '(store)'") == 1

    app = FastAPI()
    app.include_router(ingest_router(StoreIngestSink(engine.store)))
    engine.down()
    with TestClient(app) as client:
        r = client.post("/v1/labels", content=encode_batch("label", [f.label("h-later")]))
    assert r.status_code == 503 and r.headers["retry-after"] == "1", r.text
    store = engine.up()
    assert len(_label_ids(store)) == len(good)
