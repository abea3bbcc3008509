"""The shared fragments render to the conditions they name, values bound as literals."""

from __future__ import annotations

import datetime as dt

import pytest

from collector.fragments import (
    join_latest_label,
    latest_labels,
    model_window,
    models_filter,
    time_window,
    version_filter,
)
from collector.sql import render, sql

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
T1 = T0 + dt.timedelta(hours=1)
LIT0 = "toDateTime64('2026-01-01 00:00:00.000', 3, 'UTC')"
LIT1 = "toDateTime64('2026-01-01 01:00:00.000', 3, 'UTC')"


def _r(f: object) -> str:
    return render(f, None, "db")  # type: ignore[arg-type]


def test_windows_versions_and_models() -> None:
    assert _r(time_window(T0)) == f"`ts` >= {LIT0}"
    assert _r(time_window(T0, T1, column="window_start")) == f"`window_start` >= {LIT0} AND `window_start` < {LIT1}"
    assert _r(version_filter(None)) == "1"
    assert _r(version_filter("v'1")) == "model_version = 'v\\'1'"
    assert _r(model_window("m", T0, T1)) == f"model = 'm' AND `ts` >= {LIT0} AND `ts` < {LIT1}"
    assert _r(model_window("m", T0, version="")) == f"model = 'm' AND `ts` >= {LIT0} AND model_version = ''"
    assert _r(models_filter(())) == "(empty([]) OR has([], model))"
    assert _r(models_filter(["a"])) == "(empty(['a']) OR has(['a'], model))"
    with pytest.raises(ValueError, match="identifier"):
        time_window(T0, column="ts; DROP")


def test_hostile_values_stay_values_in_the_label_join() -> None:
    model = "m' OR 1 --{db}%(x)s"
    of = model_window(model, T0, T1)
    text = _r(join_latest_label(sql("(SELECT model, request_id FROM {db}.predictions WHERE %(of)s)", of=of), of))
    assert text.count("'m\\' OR 1 --{db}%(x)s'") == 2 and "`db`.labels FINAL" in text
    assert "argMax((label_value, label_class, ts), (ts, ingested_at, event_id))" in _r(latest_labels(of))
    assert " LEFT JOIN " in text and " INNER JOIN " in _r(join_latest_label(sql("p"), of, inner=True))
