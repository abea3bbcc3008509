"""Every table, declared once: its columns with their ClickHouse types, and its engine.

The declaration drives three things:

- the DDL of a new install (:meth:`Table.ddl`; :func:`collector.migrations.migrate` creates a fresh
  database from it and records the migrations it stands for, :data:`BASELINE`);
- the insert conversion on both engines (:meth:`collector.store.Store.insert` takes a declared
  table and builds its batch from the column types here: no writer restates a type);
- the identifiers: every table and column name is checked once, here, when it is declared.

An existing install keeps migrating through the frozen, numbered migrations of its packages
(``collector.migrations``, ``detectors.migrations``, ``slo_engine.migrations``);
``tests/integration/test_schema.py`` checks that migrating gives exactly these tables (``DESCRIBE
TABLE``), so the declaration cannot drift from the migrations. A new migration that adds or changes
a table changes its declaration here too, and raises that component's :data:`BASELINE` number when
a fresh install's DDL already includes it.

Types are written as ``DESCRIBE TABLE`` prints them. Tables are grouped by the package that owns
them (writes them and ships their migrations); the schema is one module so that every writer and the
store read the same declaration, and it imports nothing above ``collector``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from collector.sql import SQL, Ident, ident, join, sql

__all__ = ["Column", "Table", "View", "MapColumn", "TABLES", "VIEWS", "BASELINE", "table", "ddl_of"]


class MapColumn:
    """A Map column kept flat (offsets, keys, values): cheap to turn into Arrow, or into dicts."""

    __slots__ = ("offsets", "keys", "values")

    def __init__(self) -> None:
        self.offsets: list[int] = [0]
        self.keys: list[str] = []
        self.values: list[Any] = []

    @classmethod
    def of(cls, dicts: Iterable[dict[str, Any] | None]) -> MapColumn:
        mc = cls()
        for d in dicts:
            mc.append(d)
        return mc

    def append(self, d: dict[str, Any] | None) -> None:
        if d:
            self.keys.extend(d.keys())
            self.values.extend(d.values())
        self.offsets.append(len(self.keys))

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def to_dicts(self) -> list[dict[str, Any]]:
        o, k, v = self.offsets, self.keys, self.values
        return [dict(zip(k[o[i]:o[i + 1]], v[o[i]:o[i + 1]], strict=True)) for i in range(len(self))]


@dataclass(frozen=True)
class Column:
    """A column: its name, its ClickHouse type, and how it gets a value when an insert leaves it out
    (``DEFAULT expr``, or ``MATERIALIZED expr``: then it is never inserted) and its codec."""

    name: str
    type: str
    default: str = ""
    codec: str = ""
    ident: Ident = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "ident", ident(self.name, "column"))
        if self.default and self.default.split(" ", 1)[0] not in ("DEFAULT", "MATERIALIZED"):
            raise ValueError(f"column {self.name}: default {self.default!r} is not DEFAULT or MATERIALIZED")

    @property
    def insertable(self) -> bool:
        return not self.default.startswith("MATERIALIZED")

    @property
    def is_map(self) -> bool:
        return self.type.startswith("Map(")

    def ddl(self) -> SQL:
        text = " ".join(x for x in (self.type, self.default, f"CODEC({self.codec})" if self.codec else "") if x)
        return sql("%(c)s " + text, c=self.ident)


@dataclass(frozen=True)
class Table:
    """A table: its columns and its engine clauses (SQL text written here, never built from data)."""

    component: str
    name: str
    columns: tuple[Column, ...]
    engine: str
    order_by: str
    partition_by: str = ""
    ttl: str = ""
    ident: Ident = field(init=False, repr=False, compare=False)
    by_name: dict[str, Column] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "ident", ident(self.name, "table"))
        by_name = {c.name: c for c in self.columns}
        if len(by_name) != len(self.columns):
            raise ValueError(f"table {self.name}: a column is declared twice")
        object.__setattr__(self, "by_name", by_name)

    def column(self, name: str) -> Column:
        c = self.by_name.get(name)
        if c is None:
            raise ValueError(f"table {self.name} has no column {name!r}")
        if not c.insertable:
            raise ValueError(f"column {self.name}.{name} is computed by the store ({c.default}); do not insert it")
        return c

    @property
    def insert_columns(self) -> tuple[Column, ...]:
        """The columns an insert may give (every column but the MATERIALIZED ones)."""
        return tuple(c for c in self.columns if c.insertable)

    def ddl(self) -> SQL:
        clauses = [f"ENGINE = {self.engine}"]
        if self.partition_by:
            clauses.append(f"PARTITION BY {self.partition_by}")
        clauses.append(f"ORDER BY {self.order_by}")
        if self.ttl:
            clauses.append(f"TTL {self.ttl}")
        return sql("CREATE TABLE IF NOT EXISTS {db}.%(t)s (%(cols)s) " + " ".join(clauses),
                   t=self.ident, cols=join(", ", [c.ddl() for c in self.columns]))


@dataclass(frozen=True)
class View:
    """A view over declared tables (``select`` is SQL text written here)."""

    component: str
    name: str
    select: str

    def ddl(self) -> SQL:
        return sql("CREATE VIEW IF NOT EXISTS {db}.%(v)s AS " + self.select, v=ident(self.name, "view"))


_TS = "DateTime64(3, 'UTC')"
_LC = "LowCardinality(String)"
_INGESTED = Column("ingested_at", _TS, "DEFAULT now64(3)")
#: the salted hash of the event's subject (governance#2, collector.subjects; '' for none)
_SUBJECT = Column("subject_hash", "String", "DEFAULT ''")


def _features(codec: str) -> tuple[Column, ...]:
    return (Column("features_num", "Map(LowCardinality(String), Float64)", codec=codec),
            Column("features_cat", "Map(LowCardinality(String), String)"),
            Column("features_null", "Array(LowCardinality(String))"))


_NUM_LAYOUT = Column("num_layout", "UInt64", "MATERIALIZED cityHash64(mapKeys(features_num))")

# ---------------------------------------------------------------------------------------------
# collector (collector.migrations)

PREDICTIONS = Table(
    "collector", "predictions",
    (Column("event_id", "String"), Column("ts", _TS), Column("model", _LC), Column("model_version", _LC),
     Column("request_id", "String"), *_features("LZ4"),
     Column("pred_value", "Nullable(Float64)"), Column("pred_label", "Nullable(String)"),
     Column("pred_score", "Nullable(Float64)"), Column("pred_probs", "Map(LowCardinality(String), Float64)"),
     Column("slices", "Map(LowCardinality(String), String)"), Column("latency_ms", "Nullable(Float64)"),
     Column("status", _LC), Column("error_type", _LC), Column("schema_version", "UInt16"), _INGESTED, _NUM_LAYOUT,
     _SUBJECT),
    engine="ReplacingMergeTree", partition_by="toDate(ts)", order_by="(model, model_version, ts, event_id)",
    ttl="toDateTime(ts) + toIntervalDay(90)")

LABELS = Table(
    "collector", "labels",
    (Column("event_id", "String"), Column("ts", _TS), Column("model", _LC), Column("request_id", "String"),
     Column("label_value", "Nullable(Float64)"), Column("label_class", "Nullable(String)"),
     Column("schema_version", "UInt16"), _INGESTED, _SUBJECT),
    engine="ReplacingMergeTree", partition_by="toDate(ts)", order_by="(model, request_id, event_id)",
    ttl="toDateTime(ts) + toIntervalDay(180)")

METRIC_WINDOWS = Table(
    "collector", "metric_windows",
    (Column("event_id", "String"), Column("window_start", _TS), Column("window_s", "UInt32"), Column("model", _LC),
     Column("model_version", _LC), Column("source", "String"), Column("requests", "UInt64"),
     Column("errors", "Map(LowCardinality(String), UInt64)"), Column("latency_buckets", "Array(UInt64)"),
     Column("latency_sum_ms", "Float64"), Column("schema_version", "UInt16"), _INGESTED),
    engine="ReplacingMergeTree", partition_by="toDate(window_start)",
    order_by="(model, model_version, window_start, event_id)", ttl="toDateTime(window_start) + toIntervalDay(400)")

DEPLOYS = Table(
    "collector", "deploys",
    (Column("event_id", "String"), Column("ts", _TS), Column("model", _LC), Column("model_version", _LC),
     Column("annotations", "Map(LowCardinality(String), String)"), Column("schema_version", "UInt16"), _INGESTED),
    engine="ReplacingMergeTree", partition_by="toYYYYMM(ts)", order_by="(model, ts, event_id)")

#: the table behind the deduplicated view ``dead_letters``
DEAD_LETTERS = Table(
    "collector", "dead_letters_v2",
    (Column("received_at", _TS, "DEFAULT now64(3)"), Column("source", "String"), Column("kind", _LC),
     Column("event_index", "Int32"), Column("event_id", "String"), Column("field", "String"),
     Column("reason", "String"), Column("payload", "String"),
     Column("subject_hashes", "Array(String)", "DEFAULT []")),   # governance#2
    engine="ReplacingMergeTree", order_by="(source, event_index, field, cityHash64(payload))",
    ttl="toDateTime(received_at) + toIntervalDay(30)")

API_KEYS = Table(
    "collector", "api_keys",
    (Column("key_id", "String"), Column("key_hash", "String"), Column("name", "String"), Column("scope", _LC),
     Column("models", "Array(String)"), Column("created_at", _TS), Column("revoked", "UInt8"),
     Column("version", "UInt64")),
    engine="ReplacingMergeTree(version)", order_by="key_id")

#: the migration ledger (created by :func:`collector.migrations.migrate` itself, before any migration)
SCHEMA_MIGRATIONS = Table(
    "collector", "schema_migrations",
    (Column("component", _LC), Column("number", "UInt32"), Column("name", "String"),
     Column("applied_at", _TS, "DEFAULT now64(3)")),
    engine="ReplacingMergeTree", order_by="(component, number)")

# ---------------------------------------------------------------------------------------------
# detectors (detectors.migrations)

DETECTOR_RESULTS = Table(
    "detectors", "detector_results",
    (Column("run_id", "String"), Column("run_at", _TS), Column("model", _LC), Column("model_version", _LC),
     Column("window_start", _TS), Column("window_end", _TS),
     Column("detector", _LC),                   # drift | quality | performance
     Column("subject", "String"),               # feature name, slice (key=value) or '' for the model
     Column("test", _LC),                       # psi, ks, missing_rate, accuracy, ...
     Column("value", "Nullable(Float64)"), Column("threshold", "Nullable(Float64)"),
     Column("status", _LC),                     # ok | alert | not enough data | error
     Column("sample_size", "UInt64"),
     Column("detail", "String")),               # JSON: bins, interval, reason
    engine="ReplacingMergeTree(run_at)", partition_by="toDate(window_start)",
    order_by="(model, model_version, detector, subject, test, window_start)",
    ttl="toDateTime(window_start) + toIntervalDay(400)")

DETECTOR_REFERENCES = Table(
    "detectors", "detector_references",
    (Column("model", _LC), Column("name", "String"), Column("built_at", _TS),
     Column("source", _LC),                     # upload | window | previous
     Column("window_start", _TS), Column("window_end", _TS),
     Column("rows", "UInt64"), Column("feature", "String"), Column("kind", _LC), Column("n", "UInt64"),
     Column("quantiles", "Array(Float64)"), Column("edges", "Array(Float64)"), Column("counts", "Array(UInt64)"),
     Column("lo", "Float64"), Column("hi", "Float64"), Column("mean", "Float64"), Column("std", "Float64"),
     Column("categories", "Array(String)"), Column("category_counts", "Array(UInt64)"),
     Column("other_count", "UInt64"), Column("distinct", "UInt64"),
     # the counting grid a numeric profile's edges come from (grid_cells 0: TDigest edges, no grid)
     Column("grid_lo", "Float64", "DEFAULT 0"), Column("grid_hi", "Float64", "DEFAULT 0"),
     Column("grid_cells", "UInt32", "DEFAULT 0")),
    engine="ReplacingMergeTree(built_at)", order_by="(model, name, built_at, feature)")

REFERENCE_ROWS = Table(
    "detectors", "reference_rows",
    (Column("upload_id", "String"), *_features("LZ4"),
     Column("pred_value", "Nullable(Float64)"), Column("pred_score", "Nullable(Float64)"),
     Column("pred_label", "Nullable(String)"), Column("label_value", "Nullable(Float64)"),
     Column("label_class", "Nullable(String)"), Column("loaded_at", "DateTime", "DEFAULT now()"), _NUM_LAYOUT),
    engine="MergeTree", order_by="upload_id", ttl="loaded_at + toIntervalDay(1)")

#: CBPE calibration maps (detectors.cbpe): one row per (model, name, build, class), a step function on
#: ``cells`` equal score cells, fitted on a labelled window, so a scheduled run never refits
CBPE_CALIBRATIONS = Table(
    "detectors", "cbpe_calibrations",
    (Column("model", _LC), Column("name", "String"), Column("built_at", _TS),
     Column("kind", _LC),                       # binary | multiclass
     Column("positive_class", "String"),        # binary: the class the score is the probability of
     Column("classes", "Array(String)"),        # multiclass: every class, in probability order
     Column("class", "String"), Column("calibrated", "UInt8"), Column("cells", "UInt32"),
     Column("values", "Array(Float64)"), Column("blocks", "Array(UInt32)"), Column("variances", "Array(Float64)"),
     Column("window_start", _TS), Column("window_end", _TS), Column("model_version", "String"),
     Column("rows", "UInt64"), Column("extra_variance", "Float64")),
    engine="ReplacingMergeTree(built_at)", order_by="(model, name, built_at, class)")

# a bounded sample of an uploaded baseline's rows, kept with its profile build (multivariate drift reads it)
REFERENCE_SAMPLES = Table(
    "detectors", "reference_samples",
    (Column("model", _LC), Column("name", "String"), Column("built_at", _TS), Column("row_key", "UInt64"),
     *_features("")),
    engine="MergeTree", order_by="(model, name, built_at, row_key)")

# ---------------------------------------------------------------------------------------------
# slo_engine (slo_engine.migrations)

SLO_ALERT_STATE = Table(
    "slo_engine", "slo_alert_state",
    (Column("alert_key", "String"), Column("slo", "String"), Column("model", _LC), Column("model_version", _LC),
     Column("tier", _LC), Column("severity", _LC),
     Column("state", _LC),                      # pending | firing | resolved
     Column("since", _TS), Column("last_true", _TS), Column("last_notified", _TS),
     Column("notified", "UInt8"),               # a trigger went out (so a resolve must follow)
     Column("long_burn_rate", "Nullable(Float64)"), Column("short_burn_rate", "Nullable(Float64)"),
     Column("updated_at", _TS)),
    engine="ReplacingMergeTree(updated_at)", order_by="alert_key")

SLO_SILENCES = Table(
    "slo_engine", "slo_silences",
    (Column("id", "String"), Column("matchers", "Map(LowCardinality(String), String)"), Column("starts_at", _TS),
     Column("ends_at", _TS), Column("created_by", "String"), Column("comment", "String"),
     Column("updated_at", _TS)),
    engine="ReplacingMergeTree(updated_at)", order_by="id")

SLO_DELIVERIES = Table(
    "slo_engine", "slo_deliveries",
    (Column("ts", _TS), Column("notifier", _LC),
     Column("target", "String"),                # scheme://host only: webhook paths hold secrets
     Column("dedup_key", "String"), Column("action", _LC), Column("attempt", "UInt16"),
     Column("status_code", "UInt16"),           # 0: no HTTP response
     Column("outcome", _LC),                    # delivered | retry | failed
     Column("error", "String")),
    engine="MergeTree", partition_by="toDate(ts)", order_by="(ts, notifier)", ttl="toDateTime(ts) + toIntervalDay(90)")

# ---------------------------------------------------------------------------------------------
# governance (collector.migrations.GOVERNANCE_MIGRATIONS: created by its migrations on every install,
# which also add the subject columns above and their skip indexes)

AUDIT_LOG = Table(
    "governance", "audit_log",
    (Column("ts", _TS), Column("id", "String"), Column("actor", "String"), Column("action", _LC),
     Column("target", "String"), Column("model", _LC), Column("before", "String"), Column("after", "String")),
    engine="MergeTree", partition_by="toYYYYMM(ts)", order_by="(ts, id)", ttl="toDateTime(ts) + toIntervalDay(730)")

TABLES: tuple[Table, ...] = (
    PREDICTIONS, LABELS, METRIC_WINDOWS, DEPLOYS, DEAD_LETTERS, API_KEYS, SCHEMA_MIGRATIONS,
    DETECTOR_RESULTS, DETECTOR_REFERENCES, REFERENCE_ROWS, CBPE_CALIBRATIONS, REFERENCE_SAMPLES,
    SLO_ALERT_STATE, SLO_SILENCES, SLO_DELIVERIES, AUDIT_LOG,
)

VIEWS: tuple[View, ...] = (
    View("collector", "dead_letters", "SELECT * FROM {db}.dead_letters_v2 FINAL"),
)

#: per component, the last migration a fresh install's DDL (:func:`ddl_of`) stands for
BASELINE: dict[str, int] = {"collector": 5, "detectors": 6, "slo_engine": 1}

_BY_NAME = {t.name: t for t in TABLES}


def table(name: str) -> Table:
    """The declared table ``name``."""
    t = _BY_NAME.get(name)
    if t is None:
        raise ValueError(f"no declared table {name!r} (declare it in collector.schema)")
    return t


def ddl_of(components: Iterable[str]) -> list[SQL]:
    """The statements that create the tables and views of ``components`` in a fresh database."""
    want = set(components)
    objs: tuple[Table | View, ...] = (*TABLES, *VIEWS)
    return [o.ddl() for o in objs if o.component in want and o is not SCHEMA_MIGRATIONS]
