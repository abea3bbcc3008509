"""An Evidently HTML report for a model and window: reference against a sample of the current window.

This is the one place where rows reach pandas: a bounded, deterministic sample (``cityHash64`` of
the event id) of at most ``sample`` predictions per side. The reference is a time window of the same
model or a CSV/Parquet file (sampled the same way).
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

import pandas as pd

from collector.sql import sql
from collector.store import Store
from detectors.drift_sql import window_source

__all__ = ["window_sample", "window_shape", "file_sample", "evidently_html"]


def window_sample(store: Store, model: str, start: _dt.datetime, end: _dt.datetime, *, sample: int = 10_000,
                  version: str | None = None) -> pd.DataFrame:
    """Up to ``sample`` predictions of the window as one column per feature (plus prediction columns)."""
    src = window_source(model, start, end, version)
    rows = store.rows(sql(
        """SELECT features_num, features_cat, pred_value, pred_score, pred_label FROM %(t)s WHERE %(w)s
           ORDER BY cityHash64(event_id) LIMIT %(sample)s""", t=src.table, w=src.where, sample=int(sample)))
    recs: list[dict[str, Any]] = []
    for r in rows:
        rec: dict[str, Any] = {**(r["features_num"] or {}), **(r["features_cat"] or {})}
        for k, col in (("prediction", "pred_value"), ("prediction_score", "pred_score"),
                       ("prediction_label", "pred_label")):
            if r[col] is not None:
                rec[k] = r[col]
        recs.append(rec)
    return pd.DataFrame.from_records(recs)


def window_shape(store: Store, model: str, start: _dt.datetime, end: _dt.datetime, *,
                 version: str | None = None) -> tuple[int, int]:
    """(predictions, distinct feature names) of the window, counted in the store: what a sample would cost."""
    src = window_source(model, start, end, version)
    (r,) = store.rows(sql(
        """SELECT count() AS n, length(groupUniqArrayArray(arrayConcat(mapKeys(features_num), mapKeys(features_cat))))
                  AS f
           FROM %(t)s WHERE %(w)s""", t=src.table, w=src.where))
    return int(r["n"]), int(r["f"])


def file_sample(path: str, *, sample: int = 10_000, seed: int = 0) -> pd.DataFrame:
    df = pd.read_parquet(path) if path.lower().endswith((".parquet", ".pq")) else pd.read_csv(path)
    return df.sample(n=sample, random_state=seed) if len(df) > sample else df


def evidently_html(reference: pd.DataFrame, current: pd.DataFrame, *, method: str | None = None) -> str:
    """Evidently's DataDriftPreset over the columns both frames share, as a standalone HTML page."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    if reference.empty or current.empty:
        raise ValueError(f"no rows to compare (reference {len(reference)}, current {len(current)})")
    cols = [c for c in reference.columns if c in current.columns]
    if not cols:
        raise ValueError("the reference and the current sample share no column")
    num = [c for c in cols if pd.api.types.is_numeric_dtype(reference[c]) and pd.api.types.is_numeric_dtype(current[c])]
    cat = [c for c in cols if c not in num]
    dd = DataDefinition(numerical_columns=num, categorical_columns=cat)
    ref, cur = reference[cols], current[cols]
    preset = DataDriftPreset(method=method) if method else DataDriftPreset()
    snap = Report([preset]).run(Dataset.from_pandas(cur, data_definition=dd),
                                Dataset.from_pandas(ref, data_definition=dd))
    return str(snap.get_html_str(as_iframe=False))
