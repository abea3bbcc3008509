"""The declared schema: identifiers checked when declared, inserts converted by the declared types, and the
store's three errors sorted by ClickHouse's error codes."""

from __future__ import annotations

import datetime as _dt

import pyarrow as pa
import pytest

from collector.exceptions import QueryError, StoreRejected, StoreUnavailable, store_error
from collector.schema import LABELS, PREDICTIONS, Column, MapColumn, Table
from collector.store import arrow_batch, arrow_type


def test_identifiers_are_checked_when_declared() -> None:
    with pytest.raises(ValueError, match="column"):
        Column("x`; DROP TABLE y", "String")
    with pytest.raises(ValueError, match="table"):
        Table("test", "a-b", (Column("x", "String"),), engine="Memory", order_by="")
    with pytest.raises(ValueError, match="declared twice"):
        Table("test", "t", (Column("x", "String"), Column("x", "UInt8")), engine="Memory", order_by="")


def test_arrow_types_come_from_the_clickhouse_types() -> None:
    assert arrow_type("Map(LowCardinality(String), Map(String, Array(Nullable(UInt64))))") == \
        pa.map_(pa.binary(), pa.map_(pa.binary(), pa.list_(pa.uint64())))
    assert arrow_type("DateTime64(3, 'UTC')") == pa.timestamp("ms", tz="UTC")
    with pytest.raises(ValueError, match="Decimal"):
        arrow_type("Decimal(9, 2)")


def test_a_batch_converts_by_declared_type_and_maps_from_dicts_or_flat_columns() -> None:
    t = _dt.datetime(2026, 1, 2, 3, 4, 5, 6000, tzinfo=_dt.UTC)
    flat = MapColumn.of([{"a": 1.0}, {}])
    batch = arrow_batch(PREDICTIONS, {"ts": [t, 1767323045006], "features_num": flat,
                                      "slices": [{"region": "eu"}, None], "pred_value": [None, 2]})
    assert batch.column("ts").to_pylist() == [t, t]
    assert batch.column("features_num").to_pylist() == [[(b"a", 1.0)], []]     # String as bytes: any bytes fit
    assert batch.column("slices").to_pylist() == [[(b"region", b"eu")], []]
    assert batch.column("pred_value").to_pylist() == [None, 2.0]


@pytest.mark.parametrize(("column", "value", "reason"), [
    ("ts", _dt.datetime(2500, 1, 1, tzinfo=_dt.UTC), "2500-01-01T00:00:00 is outside 1900-2299"),
    ("ts", _dt.datetime(1850, 1, 1, tzinfo=_dt.UTC), "outside 1900-2299"),
    ("schema_version", 70_000, "too large"),
    ("label_value", "high", "double"),
])
def test_a_value_its_column_cannot_hold_is_rejected_naming_the_column(column: str, value: object, reason: str) -> None:
    with pytest.raises(StoreRejected, match=f"labels.{column}") as exc:
        arrow_batch(LABELS, {column: [value]})
    assert reason in str(exc.value)


def test_unknown_and_computed_columns_are_bugs_not_rejections() -> None:
    with pytest.raises(ValueError, match="no column 'nope'"):
        arrow_batch(LABELS, {"nope": [1]})
    with pytest.raises(ValueError, match="computed by the store"):
        arrow_batch(PREDICTIONS, {"num_layout": [1]})


def test_errors_are_sorted_by_clickhouse_code_on_both_engines() -> None:
    assert isinstance(store_error(None, "Code: 252. DB::Exception: Too many parts (300)"), StoreUnavailable)
    assert isinstance(store_error(241, "Memory limit (total) exceeded"), StoreUnavailable)
    assert isinstance(store_error(None, "Code: 27. DB::Exception: Cannot parse input"), StoreRejected)
    bug = store_error(None, "Code: 47. DB::Exception: Unknown identifier x", "SELECT x")
    assert isinstance(bug, QueryError) and "-- in: SELECT x" in str(bug)
    assert isinstance(store_error(None, "something without a code"), QueryError)
