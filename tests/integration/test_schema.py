"""The declared schema (collector.schema) is what the frozen migrations build, and what a new install gets.

- An existing install migrates through every package's numbered migrations; ``DESCRIBE TABLE`` of each
  table afterwards matches its declaration (names, types, defaults, codecs), and every table and view
  the migrations made is declared: the declaration cannot drift from the migrations.
- A new install is created from the declaration: the same columns and the same engine clauses
  (``system.tables.engine_full``) as the migrated install, the migrations it stands for recorded, and a
  migration numbered after the baseline still runs.

On chDB only: the ClickHouse server the suite can start (Debian's 18.16) has neither Map nor DateTime64,
so the schema cannot be created there (the store refuses servers older than 24.1).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from collector.migrations import Migration, migrate
from collector.schema import BASELINE, TABLES, VIEWS
from collector.sql import ident, sql
from collector.store import ChdbStore
from driftline.migrations import all_migrations
from tests.conftest import _CHDB_PATH


@pytest.fixture
def fresh() -> Iterator[ChdbStore]:
    s = ChdbStore(_CHDB_PATH, database=f"t_{uuid.uuid4().hex[:12]}")
    yield s
    s.drop_database()


@pytest.fixture
def migrated() -> Iterator[ChdbStore]:
    """An install that went through every frozen migration (as one made before the declared schema did)."""
    s = ChdbStore(_CHDB_PATH, database=f"t_{uuid.uuid4().hex[:12]}")
    first = [m for m in all_migrations() if (m.component, m.number) == ("collector", 1)]
    migrate(s, first)                           # an install of the first release: the ledger is not empty
    applied = migrate(s, all_migrations())      # so everything else runs as a numbered migration
    assert len(applied) == len(all_migrations()) - 1
    yield s
    s.drop_database()


def _described(store: ChdbStore, table: str) -> list[tuple[str, str, str, str, str]]:
    return [(r["name"], r["type"], r["default_type"], r["default_expression"], r["codec_expression"])
            for r in store.rows(sql("DESCRIBE TABLE {db}.%(t)s", t=ident(table)))]


def _declared(table: str) -> list[tuple[str, str, str, str, str]]:
    t = next(t for t in TABLES if t.name == table)
    out = []
    for c in t.columns:
        kind, _, expr = c.default.partition(" ")
        out.append((c.name, c.type, kind, expr, c.codec))
    return out


def _objects(store: ChdbStore) -> dict[str, str]:
    return {r["name"]: r["engine_full"]
            for r in store.rows("SELECT name, engine_full FROM system.tables WHERE database = %(d)s",
                                {"d": store.database})}


@pytest.mark.parametrize("table", [t.name for t in TABLES])
def test_migrating_builds_the_declared_table(migrated: ChdbStore, table: str) -> None:
    assert _described(migrated, table) == _declared(table)


def test_every_table_the_migrations_make_is_declared(migrated: ChdbStore) -> None:
    assert set(_objects(migrated)) == {t.name for t in TABLES} | {v.name for v in VIEWS}


def test_a_new_install_is_the_declared_schema_and_equals_a_migrated_one(fresh: ChdbStore, migrated: ChdbStore) -> None:
    later = Migration(component="collector", number=BASELINE["collector"] + 1, name="a later migration",
                      statements=("ALTER TABLE {db}.labels ADD COLUMN IF NOT EXISTS later UInt8 DEFAULT 0",))
    applied = migrate(fresh, [*all_migrations(), later])
    assert later in applied and set(applied) == {*all_migrations(), later}   # the rest: the declared schema
    ledger = {(r["component"], r["number"])
              for r in fresh.rows("SELECT component, number FROM {db}.schema_migrations FINAL")}
    assert ledger == {(m.component, m.number) for m in applied}
    assert migrate(fresh, [*all_migrations(), later]) == []
    fresh.execute("ALTER TABLE {db}.labels DROP COLUMN later")
    for t in TABLES:
        assert _described(fresh, t.name) == _described(migrated, t.name), t.name
    engines = {n: e.replace(fresh.database, "DB") for n, e in _objects(fresh).items()}
    assert engines == {n: e.replace(migrated.database, "DB") for n, e in _objects(migrated).items()}
