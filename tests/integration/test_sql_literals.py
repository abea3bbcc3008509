"""Rendered literals read back exactly on both engines: chDB and a real ClickHouse server.

Debian's clickhouse-server is 18.16, which the store refuses (the Driftline schema needs 24.1); its lexer
is what matters here, so these tests lower the version floor to reach it through the same engine code
(``ClickHouseStore``: rendering, the native protocol, the result conversion).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

import collector.store as store_mod
from collector.schema import Column, Table
from collector.sql import commas, ident, sql
from collector.store import ClickHouseStore, Store

VALUES = [
    "%(model)s", "%(x)s", "{db}", "it's", "a\\'; DROP TABLE x; --", "back\\slash", "\\", "'", "''", "--", "/*", "*/",
    "# c", "$$", "nul\0byte", "new\nline\r\t", "\x01\x1f\x7f", "ünïcødé ✓ 模型", "SELECT * FROM system.tables",
    "`", '"',
    "a b", "%(model)s{db}'--/*", "", "\\'", "\\\\'", "'\\", "\\x41", "\\0",
]


@pytest.fixture(params=["chdb", "clickhouse"])
def engine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Store]:
    if request.param == "chdb":
        yield request.getfixturevalue("store")
        return
    host, port = request.getfixturevalue("clickhouse_server")
    monkeypatch.setattr(store_mod, "MIN_SERVER_VERSION", (18, 1))
    s = ClickHouseStore(host=host, port=port, database=f"t_{uuid.uuid4().hex[:12]}")
    yield s
    s.execute("DROP DATABASE IF EXISTS {db}")        # 18.16 has no SYNC
    s.close()


def test_every_value_reads_back_as_itself(engine: Store) -> None:
    for v in VALUES:
        assert engine.scalar("SELECT %(v)s AS v", {"v": v}) == v, v
        assert engine.scalar(sql("SELECT length(%(v)s) AS n", v=v)) == len(v.encode()), v
    assert engine.rows(sql("SELECT %(a)s AS a", a=VALUES))[0]["a"] == VALUES
    # a lone surrogate becomes its (invalid UTF-8) bytes, not an error
    assert engine.scalar("SELECT hex(%(v)s) AS h", {"v": "\ud800"}) == "EDA080"


def test_lookups_by_hostile_values_find_exactly_their_row(engine: Store) -> None:
    t = ident("hostile_t")
    table = Table("test", "hostile_t", (Column("s", "String"), Column("n", "UInt32")), engine="MergeTree", order_by="n")
    engine.execute(table.ddl())
    engine.insert(table, {"s": VALUES, "n": list(range(len(VALUES)))})
    for i, v in enumerate(VALUES):
        rows = engine.rows(sql("SELECT n FROM {db}.%(t)s WHERE s = %(v)s", t=t, v=v))
        assert [r["n"] for r in rows] == [i], v
    assert engine.scalar(sql("SELECT count() FROM {db}.%(t)s WHERE s IN (%(v)s)", t=t, v=commas(VALUES))) == len(VALUES)
    assert engine.scalar(sql("SELECT count() FROM {db}.%(t)s", t=t)) == len(VALUES)   # nothing dropped
