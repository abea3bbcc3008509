"""Numbered, idempotent schema migrations, applied at start.

Each package that owns tables ships its own list of :class:`Migration` under its own ``component``
name (``collector`` here; ``detectors`` and ``slo_engine`` have theirs), and the composition root
(``driftline``) applies them all with :func:`migrate`. Applied migrations are recorded in
``schema_migrations``; statements use ``IF NOT EXISTS`` so a half-applied migration can be re-run.

A fresh database (no migration recorded) is created from the declared schema instead
(:mod:`collector.schema`): its tables in one step, and the migrations it stands for
(:data:`collector.schema.BASELINE`) recorded as applied; later migrations then run as usual. The
migrations are frozen: an existing install goes through them exactly as before.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from collector.schema import BASELINE, SCHEMA_MIGRATIONS, ddl_of
from collector.store import Store

__all__ = ["Migration", "migrate", "COLLECTOR_MIGRATIONS", "GOVERNANCE_MIGRATIONS"]


@dataclass(frozen=True, kw_only=True)
class Migration:
    component: str
    number: int
    name: str
    statements: tuple[str, ...]


def migrate(store: Store, migrations: Iterable[Migration]) -> list[Migration]:
    """Apply what is not applied yet, in (component, number) order. Returns what was applied (on a fresh
    database, the migrations the declared schema stands for count as applied)."""
    store.create_database()
    store.execute(SCHEMA_MIGRATIONS.ddl())
    done = {
        (r["component"], int(r["number"]))
        for r in store.rows("SELECT component, number FROM {db}.schema_migrations FINAL")
    }
    ordered = sorted(migrations, key=lambda m: (m.component, m.number))
    seen: set[tuple[str, int]] = set()
    for m in ordered:
        key = (m.component, m.number)
        if key in seen:
            raise ValueError(f"migration {m.component}#{m.number} is defined twice")
        seen.add(key)
    applied: list[Migration] = []
    if not done:
        applied = _create_from_schema(store, ordered)
        done = {(m.component, m.number) for m in applied}
    for m in ordered:
        if (m.component, m.number) in done:
            continue
        for stmt in m.statements:
            store.execute(stmt)
        _record(store, [m])
        applied.append(m)
    return applied


def _record(store: Store, done: list[Migration]) -> None:
    store.insert(SCHEMA_MIGRATIONS, {"component": [m.component for m in done], "number": [m.number for m in done],
                                     "name": [m.name for m in done]})


def _create_from_schema(store: Store, ordered: list[Migration]) -> list[Migration]:
    """A fresh database: the tables of every component whose migrations 1..BASELINE are all here, from
    their declaration; those migrations recorded as applied."""
    numbers: dict[str, set[int]] = {}
    for m in ordered:
        numbers.setdefault(m.component, set()).add(m.number)
    components = [c for c, ns in numbers.items() if c in BASELINE and set(range(1, BASELINE[c] + 1)) <= ns]
    for stmt in ddl_of(components):
        store.execute(stmt)
    covered = [m for m in ordered if m.component in components and m.number <= BASELINE[m.component]]
    if covered:
        _record(store, covered)
    return covered


# Retention is set per table by TTL; change it with `driftline retention set TABLE DAYS` (collector.retention).
COLLECTOR_MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        component="collector",
        number=1,
        name="event tables",
        statements=(
            """
            CREATE TABLE IF NOT EXISTS {db}.predictions (
                event_id String,
                ts DateTime64(3, 'UTC'),
                model LowCardinality(String),
                model_version LowCardinality(String),
                request_id String,
                features_num Map(LowCardinality(String), Float64),
                features_cat Map(LowCardinality(String), String),
                features_null Array(LowCardinality(String)),
                pred_value Nullable(Float64),
                pred_label Nullable(String),
                pred_score Nullable(Float64),
                pred_probs Map(LowCardinality(String), Float64),
                slices Map(LowCardinality(String), String),
                latency_ms Nullable(Float64),
                status LowCardinality(String),
                error_type LowCardinality(String),
                schema_version UInt16,
                ingested_at DateTime64(3, 'UTC') DEFAULT now64(3)
            ) ENGINE = ReplacingMergeTree
            PARTITION BY toDate(ts)
            ORDER BY (model, model_version, ts, event_id)
            TTL toDateTime(ts) + INTERVAL 90 DAY
            """,
            """
            CREATE TABLE IF NOT EXISTS {db}.labels (
                event_id String,
                ts DateTime64(3, 'UTC'),
                model LowCardinality(String),
                request_id String,
                label_value Nullable(Float64),
                label_class Nullable(String),
                schema_version UInt16,
                ingested_at DateTime64(3, 'UTC') DEFAULT now64(3)
            ) ENGINE = ReplacingMergeTree
            PARTITION BY toDate(ts)
            ORDER BY (model, request_id, event_id)
            TTL toDateTime(ts) + INTERVAL 180 DAY
            """,
            """
            CREATE TABLE IF NOT EXISTS {db}.metric_windows (
                event_id String,
                window_start DateTime64(3, 'UTC'),
                window_s UInt32,
                model LowCardinality(String),
                model_version LowCardinality(String),
                source String,
                requests UInt64,
                errors Map(LowCardinality(String), UInt64),
                latency_buckets Array(UInt64),
                latency_sum_ms Float64,
                schema_version UInt16,
                ingested_at DateTime64(3, 'UTC') DEFAULT now64(3)
            ) ENGINE = ReplacingMergeTree
            PARTITION BY toDate(window_start)
            ORDER BY (model, model_version, window_start, event_id)
            TTL toDateTime(window_start) + INTERVAL 400 DAY
            """,
            """
            CREATE TABLE IF NOT EXISTS {db}.deploys (
                event_id String,
                ts DateTime64(3, 'UTC'),
                model LowCardinality(String),
                model_version LowCardinality(String),
                annotations Map(LowCardinality(String), String),
                schema_version UInt16,
                ingested_at DateTime64(3, 'UTC') DEFAULT now64(3)
            ) ENGINE = ReplacingMergeTree
            PARTITION BY toYYYYMM(ts)
            ORDER BY (model, ts, event_id)
            """,
            """
            CREATE TABLE IF NOT EXISTS {db}.dead_letters (
                received_at DateTime64(3, 'UTC') DEFAULT now64(3),
                source String,
                kind LowCardinality(String),
                event_index Int32,
                event_id String,
                field String,
                reason String,
                payload String
            ) ENGINE = MergeTree
            PARTITION BY toDate(received_at)
            ORDER BY (received_at)
            TTL toDateTime(received_at) + INTERVAL 30 DAY
            """,
        ),
    ),
    Migration(
        component="collector",
        number=2,
        name="api keys",
        statements=(
            """
            CREATE TABLE IF NOT EXISTS {db}.api_keys (
                key_id String,
                key_hash String,
                name String,
                scope LowCardinality(String),
                models Array(String),
                created_at DateTime64(3, 'UTC'),
                revoked UInt8,
                version UInt64
            ) ENGINE = ReplacingMergeTree(version) ORDER BY key_id
            """,
        ),
    ),
    Migration(
        component="collector",
        number=3,
        name="dead letters deduplicated",
        # A batch redelivered after a crash (or a rebalance) rejects the same events again. Dead letters
        # are now keyed by where they came from (Kafka topic:partition:offset, or "http"), their index in
        # the batch, the field and the payload, so a redelivery replaces them instead of adding rows.
        # No partition by time: a redelivery on another day must land in the same partition to collapse.
        statements=(
            """
            CREATE TABLE IF NOT EXISTS {db}.dead_letters_v2 (
                received_at DateTime64(3, 'UTC') DEFAULT now64(3),
                source String,
                kind LowCardinality(String),
                event_index Int32,
                event_id String,
                field String,
                reason String,
                payload String
            ) ENGINE = ReplacingMergeTree
            ORDER BY (source, event_index, field, cityHash64(payload))
            TTL toDateTime(received_at) + INTERVAL 30 DAY
            """,
            # re-runnable: a copy made twice collapses like any redelivery
            """
            INSERT INTO {db}.dead_letters_v2
            SELECT received_at, source, kind, event_index, event_id, field, reason, payload FROM {db}.dead_letters
            """,
        ),
    ),
    Migration(
        component="collector",
        number=4,
        name="dead letters view",
        # the old table goes; its name becomes a deduplicated view, so every reader sees each dead letter once
        statements=(
            "DROP TABLE IF EXISTS {db}.dead_letters",
            "CREATE VIEW IF NOT EXISTS {db}.dead_letters AS SELECT * FROM {db}.dead_letters_v2 FINAL",
        ),
    ),
    Migration(
        component="collector",
        number=5,
        name="numeric features read fast",
        # num_layout: the signature of a row's numeric feature names in stored order. Rows with the same one
        # hold every feature at the same position of features_num.values, which the detectors read instead
        # of looking each feature up by name (detectors.drift_sql). Computed on insert; for older parts, when
        # read. The codec: the detectors scan features_num every window, and LZ4 decompresses it about 5
        # times faster than chDB's default ZSTD (a ClickHouse server's default is LZ4 already). New parts
        # and merges use it.
        statements=(
            """
            ALTER TABLE {db}.predictions
                ADD COLUMN IF NOT EXISTS num_layout UInt64 MATERIALIZED cityHash64(mapKeys(features_num))
            """,
            "ALTER TABLE {db}.predictions MODIFY COLUMN features_num CODEC(LZ4)",
        ),
    ),
)

# Tables and columns of the governance features (collector.audit, collector.subjects), a component of their own
# so that their numbers do not meet the collector's next ones; they run after the collector's (by name).
GOVERNANCE_MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        component="governance",
        number=1,
        name="audit log",
        # collector.audit: append-only (plain MergeTree, nothing updates or deletes rows); its own retention
        statements=(
            """
            CREATE TABLE IF NOT EXISTS {db}.audit_log (
                ts DateTime64(3, 'UTC'),
                id String,
                actor String,                          -- key:<key_id> | local | cli:<user>
                action LowCardinality(String),         -- silence.create, key.revoke, retention.set ...
                target String,
                model LowCardinality(String),          -- '' when the change concerns no one model
                before String,                         -- JSON ('' for none), secrets redacted
                after String
            ) ENGINE = MergeTree
            PARTITION BY toYYYYMM(ts)
            ORDER BY (ts, id)
            TTL toDateTime(ts) + INTERVAL 730 DAY
            """,
        ),
    ),
    Migration(
        component="governance",
        number=2,
        name="subject hashes",
        # collector.subjects: the salted hash of an event's subject in its own column, with a bloom-filter skip
        # index so a deletion or export reads only the granules that may hold it. Dead letters: an array (a
        # rejected batch may hold events of several subjects). Older rows have none ('' / []).
        statements=(
            "ALTER TABLE {db}.predictions ADD COLUMN IF NOT EXISTS subject_hash String DEFAULT ''",
            "ALTER TABLE {db}.predictions ADD INDEX IF NOT EXISTS subject_hash_idx subject_hash "
            "TYPE bloom_filter(0.001) GRANULARITY 1",
            "ALTER TABLE {db}.labels ADD COLUMN IF NOT EXISTS subject_hash String DEFAULT ''",
            "ALTER TABLE {db}.labels ADD INDEX IF NOT EXISTS subject_hash_idx subject_hash "
            "TYPE bloom_filter(0.001) GRANULARITY 1",
            "ALTER TABLE {db}.dead_letters_v2 ADD COLUMN IF NOT EXISTS subject_hashes Array(String) DEFAULT []",
            "ALTER TABLE {db}.dead_letters_v2 ADD INDEX IF NOT EXISTS subject_hashes_idx subject_hashes "
            "TYPE bloom_filter(0.001) GRANULARITY 1",
        ),
    ),
)
