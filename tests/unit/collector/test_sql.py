from __future__ import annotations

import datetime as dt

import pytest

from collector.sql import check_identifier, literal, render


def test_literals_escape_quotes_and_backslashes() -> None:
    assert literal("it's") == "'it\\'s'"
    assert literal("a\\'; DROP TABLE x; --") == "'a\\\\\\'; DROP TABLE x; --'"
    assert literal(None) == "NULL" and literal(True) == "true" and literal(3) == "3"
    assert literal(float("inf")) == "inf"
    assert literal([1, "a"]) == "[1, 'a']"
    assert literal({"k": [1.5]}) == "map('k', [1.5])"
    assert literal(dt.datetime(2026, 1, 2, 3, 4, 5, 6000, tzinfo=dt.UTC)) == \
        "toDateTime64('2026-01-02 03:04:05.006', 3, 'UTC')"


def test_render_substitutes_db_and_params() -> None:
    assert render("SELECT %(a)s FROM {db}.t WHERE x % 2 = 0", {"a": "x"}, "d1") == "SELECT 'x' FROM d1.t WHERE x % 2 = 0"
    with pytest.raises(KeyError):
        render("SELECT %(missing)s", {"a": 1}, "d")


def test_identifiers_are_checked() -> None:
    assert check_identifier("t_1") == "t_1"
    with pytest.raises(ValueError, match="not a valid identifier"):
        check_identifier("t; drop")
