"""Tables of the detectors (component ``detectors``), applied by ``driftline.server.all_migrations``.

``detector_results`` is the contract between the detectors (writers) and the SLO engine and the
dashboard (readers): one row per model, version, feature or slice, window and test.
"""

from __future__ import annotations

from collector.migrations import Migration

__all__ = ["MIGRATIONS"]

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        component="detectors",
        number=1,
        name="detector results",
        statements=(
            """
            CREATE TABLE IF NOT EXISTS {db}.detector_results (
                run_id String,
                run_at DateTime64(3, 'UTC'),
                model LowCardinality(String),
                model_version LowCardinality(String),
                window_start DateTime64(3, 'UTC'),
                window_end DateTime64(3, 'UTC'),
                detector LowCardinality(String),      -- drift | quality | performance
                subject String,                       -- feature name, slice (key=value) or '' for the model
                test LowCardinality(String),          -- psi, ks, missing_rate, accuracy, ...
                value Nullable(Float64),
                threshold Nullable(Float64),
                status LowCardinality(String),        -- ok | alert | not enough data | error
                sample_size UInt64,
                detail String                         -- JSON: bins, interval, reason
            ) ENGINE = ReplacingMergeTree(run_at)
            PARTITION BY toDate(window_start)
            ORDER BY (model, model_version, detector, subject, test, window_start)
            TTL toDateTime(window_start) + INTERVAL 400 DAY
            """,
        ),
    ),
)
