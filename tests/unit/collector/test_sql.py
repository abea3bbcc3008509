from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from collector.sql import SQL, ParameterError, check_identifier, commas, ident, join, render, sql

HOSTILE = [
    "%(model)s", "%(x)s", "{db}", "it's", "a\\'; DROP TABLE x; --", "back\\slash", "\\", "'", "''", "--", "/*", "*/",
    "# c", "$$", "nul\0byte", "new\nline\r\t", "\x01\x1f\x7f", "ünïcødé ✓ 模型", "SELECT * FROM system.tables",
    "`", '"',
    "a b", "\ud800", "%(model)s{db}'--/*",
]


def r(stmt: SQL | str, params: dict | None = None, db: str = "d1") -> str:
    return render(stmt, params, db)


def test_literals_escape_quotes_backslashes_and_control_characters() -> None:
    assert r("SELECT %(v)s", {"v": "it's"}) == "SELECT 'it\\'s'"
    assert r("%(v)s", {"v": "a\\'; DROP TABLE x; --"}) == "'a\\\\\\'; DROP TABLE x; --'"
    assert r("%(v)s", {"v": "nul\0\n\r\t\x01\x7f"}) == "'nul\\0\\n\\r\\t\\x01\\x7F'"
    assert r("%(v)s", {"v": "\ud800"}) == "'\\xED\\xA0\\x80'"        # a lone surrogate: its bytes, escaped
    assert r("%(v)s", {"v": "ü✓"}) == "'ü✓'"
    assert r("%(a)s %(b)s %(c)s %(d)s", {"a": None, "b": True, "c": 3, "d": float("-inf")}) == "NULL true 3 -inf"
    assert r("%(v)s", {"v": [1, "a", [2.5]]}) == "[1, 'a', [2.5]]"
    assert r("%(v)s", {"v": {"k": [1.5]}}) == "map('k', [1.5])"
    assert r("%(v)s", {"v": np.array([1.0, 2.0])}) == "[1.0, 2.0]"
    assert r("%(a)s %(b)s %(c)s", {"a": np.int64(7), "b": np.float32(0.5), "c": np.bool_(True)}) == "7 0.5 true"
    assert r("%(v)s", {"v": dt.datetime(2026, 1, 2, 3, 4, 5, 6000, tzinfo=dt.UTC)}) == \
        "toDateTime64('2026-01-02 03:04:05.006', 3, 'UTC')"
    with pytest.raises(ParameterError, match="out of range"):
        r("%(v)s", {"v": dt.datetime(2400, 1, 1)})
    with pytest.raises(TypeError, match="cannot render a object"):
        r("%(v)s", {"v": object()})


@pytest.mark.parametrize("value", HOSTILE)
def test_a_value_is_never_read_as_sql(value: str) -> None:
    """Whatever a value holds, the statement is the template with one literal per placeholder: nothing in
    the value is substituted, and the literal ends where the template's text resumes."""
    out = r("SELECT %(a)s, %(model)s FROM {db}.t WHERE k = %(a)s", {"a": value, "model": "M"})
    lit = r("%(a)s", {"a": value})
    assert out == f"SELECT {lit}, 'M' FROM `d1`.t WHERE k = {lit}"
    body = lit[1:-1]
    assert "'" not in body.replace("\\\\", "").replace("\\'", "")       # every quote in the value is escaped
    assert "\n" not in lit and "\0" not in lit
    # composed fragments too: the value of the inner fragment is bound once, never re-read
    inner = sql("features_num[%(f)s]", f=value)
    outer = sql("SELECT %(x)s FROM {db}.t WHERE model = %(model)s", x=inner, model="M")
    assert r(outer) == f"SELECT features_num[{lit}] FROM `d1`.t WHERE model = 'M'"


def test_placeholders_in_the_templates_literals_and_comments_are_text() -> None:
    t = ("SELECT '%(a)s {db}', \"%(a)s\", `{db}`, $$%(a)s$$, $t$ $$ %(a)s $t$ -- %(a)s {db}\n"
         "/* %(a)s /* {db} */ %(a)s */ # %(a)s\n, %(a)s FROM {db}.t WHERE x % 2 = 0 AND s = 'it''s %(a)s' "
         "AND b = 'back\\' %(a)s'")
    out = r(t, {"a": 1})
    assert out == ("SELECT '%(a)s {db}', \"%(a)s\", `{db}`, $$%(a)s$$, $t$ $$ %(a)s $t$ -- %(a)s {db}\n"
                   "/* %(a)s /* {db} */ %(a)s */ # %(a)s\n, 1 FROM `d1`.t WHERE x % 2 = 0 AND s = 'it''s %(a)s' "
                   "AND b = 'back\\' %(a)s'")


def test_unterminated_template_literals_are_refused() -> None:
    for t in ("SELECT 'abc", "SELECT `x", "SELECT /* x", "SELECT $$ x", "SELECT $a$ x $b$", 'SELECT "x'):
        with pytest.raises(ValueError, match="unterminated"):
            r(t, {})


def test_missing_parameters_raise_and_fragments_take_no_params() -> None:
    with pytest.raises(KeyError, match="missing"):
        r("SELECT %(missing)s", {"a": 1})
    with pytest.raises(TypeError, match="own values"):
        r(sql("SELECT 1"), {"a": 1})
    with pytest.raises(TypeError, match="must be a str"):
        sql(b"SELECT 1")  # type: ignore[arg-type]


def test_fragments_compose_join_and_bind_lists() -> None:
    cond = join(" AND ", [sql("a = %(v)s", v="x'"), sql("b IN (%(l)s)", l=commas([1, 2.5, "%(v)s"]))])
    assert r(sql("SELECT 1 FROM {db}.t WHERE %(c)s", c=cond)) == \
        "SELECT 1 FROM `d1`.t WHERE a = 'x\\'' AND b IN (1, 2.5, '%(v)s')"
    assert r(join(", ", [])) == ""
    with pytest.raises(TypeError, match="not an SQL fragment"):
        join(", ", ["x"])  # type: ignore[list-item]


def test_identifiers_are_checked_and_quoted() -> None:
    assert check_identifier("t_1") == "t_1"
    assert r(sql("SELECT %(c)s FROM t", c=ident("select"))) == "SELECT `select` FROM t"
    for bad in ("t; drop", "a`b", "{db}", "%(model)s", "", "1a", "ünï", "a b", "a.b", 'a"'):
        with pytest.raises(ValueError, match="not a valid identifier"):
            ident(bad)
    with pytest.raises(ValueError, match="database"):
        r("SELECT 1 FROM {db}.t", {}, db="x`; DROP")
