"""Tables of the SLO engine (component ``slo_engine``), applied by ``driftline.migrations.all_migrations``.

- ``slo_alert_state``: one row per alert (SLO, version, tier), replaced on every change (read ``FINAL``).
- ``slo_silences``: silences by matchers, with start, end and who; expiring one rewrites its end.
- ``slo_deliveries``: every delivery attempt of every notifier (the delivery log).
"""

from __future__ import annotations

from collector.migrations import Migration

__all__ = ["MIGRATIONS"]

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        component="slo_engine",
        number=1,
        name="alert state, silences and delivery log",
        statements=(
            """
            CREATE TABLE IF NOT EXISTS {db}.slo_alert_state (
                alert_key String,
                slo String,
                model LowCardinality(String),
                model_version LowCardinality(String),
                tier LowCardinality(String),
                severity LowCardinality(String),
                state LowCardinality(String),          -- pending | firing | resolved
                since DateTime64(3, 'UTC'),            -- the condition became true (pending, firing)
                last_true DateTime64(3, 'UTC'),        -- the last evaluation that saw the condition
                last_notified DateTime64(3, 'UTC'),
                notified UInt8,                        -- a trigger went out (so a resolve must follow)
                long_burn_rate Nullable(Float64),
                short_burn_rate Nullable(Float64),
                updated_at DateTime64(3, 'UTC')
            ) ENGINE = ReplacingMergeTree(updated_at)
            ORDER BY alert_key
            """,
            """
            CREATE TABLE IF NOT EXISTS {db}.slo_silences (
                id String,
                matchers Map(LowCardinality(String), String),   -- slo, model, model_version, severity, tier
                starts_at DateTime64(3, 'UTC'),
                ends_at DateTime64(3, 'UTC'),
                created_by String,
                comment String,
                updated_at DateTime64(3, 'UTC')
            ) ENGINE = ReplacingMergeTree(updated_at)
            ORDER BY id
            """,
            """
            CREATE TABLE IF NOT EXISTS {db}.slo_deliveries (
                ts DateTime64(3, 'UTC'),
                notifier LowCardinality(String),
                target String,                          -- scheme://host only: webhook paths hold secrets
                dedup_key String,
                action LowCardinality(String),          -- trigger | resolve
                attempt UInt16,
                status_code UInt16,                     -- 0: no HTTP response
                outcome LowCardinality(String),         -- delivered | retry | failed
                error String
            ) ENGINE = MergeTree
            PARTITION BY toDate(ts)
            ORDER BY (ts, notifier)
            TTL toDateTime(ts) + INTERVAL 90 DAY
            """,
        ),
    ),
)
