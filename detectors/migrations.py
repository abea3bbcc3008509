"""Tables of the detectors (component ``detectors``), applied by ``driftline.migrations.all_migrations``.

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
    Migration(
        component="detectors",
        number=2,
        name="reference profiles and upload staging",
        statements=(
            # One row per (model, reference name, build, feature): compact statistics, not rows.
            """
            CREATE TABLE IF NOT EXISTS {db}.detector_references (
                model LowCardinality(String),
                name String,
                built_at DateTime64(3, 'UTC'),
                source LowCardinality(String),        -- upload | window | previous
                window_start DateTime64(3, 'UTC'),
                window_end DateTime64(3, 'UTC'),
                rows UInt64,                          -- rows in the reference
                feature String,
                kind LowCardinality(String),          -- numeric | categorical
                n UInt64,                             -- non-null values of the feature
                quantiles Array(Float64),             -- levels 0.01 .. 0.99
                edges Array(Float64),                 -- min, the quantiles (unique), next float after max
                counts Array(UInt64),                 -- len(edges) + 1 bins
                lo Float64,
                hi Float64,
                mean Float64,
                std Float64,
                categories Array(String),             -- most frequent first
                category_counts Array(UInt64),
                other_count UInt64,                   -- rows in categories not stored
                distinct UInt64
            ) ENGINE = ReplacingMergeTree(built_at)
            ORDER BY (model, name, built_at, feature)
            """,
            # Rows of an uploaded training baseline while its profile is built (then deleted).
            """
            CREATE TABLE IF NOT EXISTS {db}.reference_rows (
                upload_id String,
                features_num Map(LowCardinality(String), Float64),
                features_cat Map(LowCardinality(String), String),
                features_null Array(LowCardinality(String)),
                pred_value Nullable(Float64),
                pred_score Nullable(Float64),
                pred_label Nullable(String),
                label_value Nullable(Float64),
                label_class Nullable(String),
                loaded_at DateTime DEFAULT now()
            ) ENGINE = MergeTree ORDER BY upload_id
            TTL loaded_at + INTERVAL 1 DAY
            """,
        ),
    ),
    Migration(
        component="detectors",
        number=3,
        name="reference grids",
        statements=(
            # The counting grid a numeric profile's edges come from (grid_cells 0: TDigest edges, no grid).
            """
            ALTER TABLE {db}.detector_references
                ADD COLUMN IF NOT EXISTS grid_lo Float64 DEFAULT 0,
                ADD COLUMN IF NOT EXISTS grid_hi Float64 DEFAULT 0,
                ADD COLUMN IF NOT EXISTS grid_cells UInt32 DEFAULT 0
            """,
        ),
    ),
    Migration(
        component="detectors",
        number=4,
        name="numeric feature layout of uploaded rows",
        # as collector migration 5 does for predictions: uploaded baselines are read by position too
        statements=(
            """
            ALTER TABLE {db}.reference_rows
                ADD COLUMN IF NOT EXISTS num_layout UInt64 MATERIALIZED cityHash64(mapKeys(features_num))
            """,
            "ALTER TABLE {db}.reference_rows MODIFY COLUMN features_num CODEC(LZ4)",
        ),
    ),
    Migration(
        component="detectors",
        number=5,
        name="cbpe calibration maps",
        statements=(
            # One row per (model, calibration name, build, class): a step function on equal score cells.
            """
            CREATE TABLE IF NOT EXISTS {db}.cbpe_calibrations (
                model LowCardinality(String),
                name String,
                built_at DateTime64(3, 'UTC'),
                kind LowCardinality(String),          -- binary | multiclass
                positive_class String,
                classes Array(String),
                class String,
                calibrated UInt8,                     -- 0: scores used as they are
                cells UInt32,
                values Array(Float64),                -- calibrated probability per cell
                blocks Array(UInt32),                 -- isotonic block per cell
                variances Array(Float64),             -- variance of the block's rate per cell
                window_start DateTime64(3, 'UTC'),
                window_end DateTime64(3, 'UTC'),
                model_version String,
                rows UInt64,
                extra_variance Float64                -- accuracy variance beyond independent outcomes
            ) ENGINE = ReplacingMergeTree(built_at)
            ORDER BY (model, name, built_at, class)
            """,
        ),
    ),
    Migration(
        component="detectors",
        number=6,
        name="row samples of uploaded references",
        statements=(
            # At most detectors.upload.SAMPLE_ROWS rows per build of an uploaded baseline (its staged rows
            # are deleted once profiled): the reference sample of multivariate drift.
            """
            CREATE TABLE IF NOT EXISTS {db}.reference_samples (
                model LowCardinality(String),
                name String,
                built_at DateTime64(3, 'UTC'),
                row_key UInt64,                       -- cityHash64 of the row's features: the sampling order
                features_num Map(LowCardinality(String), Float64),
                features_cat Map(LowCardinality(String), String),
                features_null Array(LowCardinality(String))
            ) ENGINE = MergeTree
            ORDER BY (model, name, built_at, row_key)
            """,
        ),
    ),
)
