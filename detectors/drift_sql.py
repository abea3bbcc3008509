"""SQL that builds the inputs of the detectors: a few rows per feature, never raw events.

A :class:`Source` names the rows to summarise: the predictions of a model in a time window
(``FINAL``, so redelivered events count once), a reference uploaded from a file, or the labels
joined to a window's predictions (the latest label per ``request_id``). Features live in Map
columns; the prediction and the label are read as pseudo-features whose names start with ``@``
(``@pred.value``, ``@pred.score``, ``@pred.label``, ``@label.value``, ``@label.class``), which the
event contract does not allow as feature names, so they never collide.

Bin counts use one wide pass: per feature a bin index (a sum of comparisons with the edges, or
``roundDown(x, [-inf, edges...])`` for long edge lists) in a single scan and a ``GROUP BY`` over the
(feature, bin) pairs. A feature absent from a row reads as 0 there, so the absent rows (known
exactly from the stats pass) are taken out of the bin holding 0.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from collector.sql import literal
from collector.store import Store

__all__ = ["Source", "window_source", "upload_source", "labels_source", "QUANTILE_LEVELS",
           "numeric_stats", "bin_counts", "category_counts", "null_counts", "window_facts"]

#: Reference quantile grid: bins for every test are subsets of these edges.
QUANTILE_LEVELS: tuple[float, ...] = tuple(round(i / 100, 2) for i in range(1, 100))
MAX_CATEGORIES_READ = 1000  # per feature and window, most frequent first


@dataclass(frozen=True)
class Source:
    table: str                      # table expression, e.g. "{db}.predictions FINAL"
    where: str                      # condition with %(name)s parameters
    params: Mapping[str, Any]
    maps: bool = True               # has features_num / features_cat / features_null
    pseudo_num: Mapping[str, str] = field(default_factory=dict)   # name -> Nullable column
    pseudo_cat: Mapping[str, str] = field(default_factory=dict)
    has_ts: bool = True


def window_source(model: str, start: _dt.datetime, end: _dt.datetime, version: str | None = None) -> Source:
    where = "model = %(model)s AND ts >= %(start)s AND ts < %(end)s"
    if version is not None:
        where += " AND model_version = %(version)s"
    return Source("{db}.predictions FINAL", where, {"model": model, "start": start, "end": end, "version": version},
                  pseudo_num={"@pred.value": "pred_value", "@pred.score": "pred_score"},
                  pseudo_cat={"@pred.label": "pred_label"})


def labels_source(model: str, start: _dt.datetime, end: _dt.datetime, version: str | None = None) -> Source:
    """Labels of the window's predictions: the latest label per request_id (labels may come first)."""
    vcond = " AND model_version = %(version)s" if version is not None else ""
    table = f"""(
        SELECT l.lab.1 AS label_value, l.lab.2 AS label_class
        FROM (SELECT request_id FROM {{db}}.predictions FINAL
              WHERE model = %(model)s AND ts >= %(start)s AND ts < %(end)s{vcond}) AS p
        INNER JOIN (SELECT request_id, argMax((label_value, label_class), ts) AS lab
                    FROM {{db}}.labels FINAL WHERE model = %(model)s GROUP BY request_id) AS l
        USING (request_id))"""
    return Source(table, "1", {"model": model, "start": start, "end": end, "version": version}, maps=False,
                  pseudo_num={"@label.value": "label_value"}, pseudo_cat={"@label.class": "label_class"}, has_ts=False)


def upload_source(upload_id: str) -> Source:
    return Source("{db}.reference_rows", "upload_id = %(upload_id)s", {"upload_id": upload_id},
                  pseudo_num={"@pred.value": "pred_value", "@pred.score": "pred_score", "@label.value": "label_value"},
                  pseudo_cat={"@pred.label": "pred_label", "@label.class": "label_class"}, has_ts=False)


@dataclass(frozen=True)
class NumStats:
    n: int
    lo: float
    hi: float
    mean: float
    std: float
    quantiles: tuple[float, ...] = ()


def _q(levels: Sequence[float]) -> str:
    return ", ".join(repr(float(x)) for x in levels)


def numeric_stats(store: Store, src: Source, *, quantiles: bool = False, counts_only: bool = False
                  ) -> dict[str, NumStats]:
    """Count, min, max, mean, std (and the reference quantile grid) per numeric feature.

    ``counts_only``: only the counts of the Map features are exact (a scan of the keys alone,
    several times cheaper); their min, max, mean and std are NaN.
    """
    qa = f", quantilesTDigest({_q(QUANTILE_LEVELS)})(v) AS q" if quantiles else ""
    out: dict[str, NumStats] = {}
    rows: list[dict[str, Any]] = []
    if src.maps and counts_only:
        rows = store.rows(
            f"""SELECT k, count() AS n, nan AS lo, nan AS hi, nan AS mean, nan AS std
                FROM {src.table} ARRAY JOIN features_num.keys AS k WHERE {src.where} GROUP BY k""", src.params)
    elif src.maps:
        rows = store.rows(
            f"""SELECT k, count() AS n, min(v) AS lo, max(v) AS hi, avg(v) AS mean, stddevPop(v) AS std{qa}
                FROM {src.table} ARRAY JOIN mapKeys(features_num) AS k, mapValues(features_num) AS v
                WHERE {src.where} GROUP BY k""", src.params)
    if src.pseudo_num:
        parts = []
        for i, col in enumerate(src.pseudo_num.values()):
            parts.append(f"count({col}) AS n{i}, min({col}) AS lo{i}, max({col}) AS hi{i}, avg({col}) AS mean{i}, "
                         f"stddevPop({col}) AS std{i}"
                         + (f", quantilesTDigest({_q(QUANTILE_LEVELS)})({col}) AS q{i}" if quantiles else ""))
        r = store.rows(f"SELECT {', '.join(parts)} FROM {src.table} WHERE {src.where}", src.params)[0]
        for i, name in enumerate(src.pseudo_num):
            if r[f"n{i}"]:
                rows.append({"k": name, **{c: r[f"{c}{i}"] for c in ("n", "lo", "hi", "mean", "std")},
                             **({"q": r[f"q{i}"]} if quantiles else {})})
    for r in rows:
        if not r["n"]:
            continue
        out[r["k"]] = NumStats(int(r["n"]), _f(r["lo"]), _f(r["hi"]), _f(r["mean"]),
                               _f(r["std"]), tuple(float(x) for x in r.get("q") or ()))
    return out


def _f(x: Any) -> float:
    return float("nan") if x is None else float(x)


def _value_expr(src: Source, feature: str) -> str:
    if feature in src.pseudo_num:
        return f"ifNull({src.pseudo_num[feature]}, 0)"
    return f"features_num[{literal(feature)}]"


#: Up to this many edges a bin index is a sum of comparisons (vectorised, about twice as fast as
#: ``roundDown`` on these machines); above it, ``roundDown`` over the sorted edges.
MAX_COMPARISON_EDGES = 16


def _bin_index_expr(x: str, edges: np.ndarray) -> str:
    return "toUInt16(" + " + ".join(f"({x} >= {literal(float(e))})" for e in edges) + ")"


def bin_counts(store: Store, src: Source, edges: Mapping[str, np.ndarray], present: Mapping[str, int],
               total: int) -> dict[str, np.ndarray]:
    """Counts per bin ``[-inf, e0), [e0, e1), ..., [e_last, inf)`` for every feature, in one scan per
    binning method (comparisons for short edge lists, ``roundDown`` for long ones).

    ``present``: non-null values per feature in this source (from :func:`numeric_stats`); ``total``:
    the source's rows. Returns the counts (length ``len(edges) + 1``) per feature.
    """
    feats = [f for f in edges if (f in src.pseudo_num or src.maps)]
    out = {f: np.zeros(len(edges[f]) + 1, dtype=np.int64) for f in feats}
    if not feats or not total:
        return out
    short = [f for f in feats if 0 < len(edges[f]) <= MAX_COMPARISON_EDGES]
    long = [f for f in feats if f not in set(short)]
    for group, is_short in ((short, True), (long, False)):
        if not group:
            continue
        if is_short:
            cols = ", ".join(_bin_index_expr(_value_expr(src, f), edges[f]) for f in group)
        else:
            cols = ", ".join(f"roundDown({_value_expr(src, f)}, {literal([float('-inf'), *map(float, edges[f])])})"
                             for f in group)
        res = store.rows(
            f"""SELECT i, b, count() AS c FROM (SELECT [{cols}] AS bs FROM {src.table} WHERE {src.where})
                ARRAY JOIN bs AS b, arrayEnumerate(bs) AS i GROUP BY i, b""", src.params)
        for r in res:
            f = group[int(r["i"]) - 1]
            b = float(r["b"])
            if is_short:
                idx = int(b)
            else:
                idx = 0 if b == float("-inf") else int(np.searchsorted(edges[f], b, side="right"))
            out[f][idx] += int(r["c"])
    for f in feats:
        absent = total - int(present.get(f, 0))
        if absent:
            out[f][int(np.searchsorted(edges[f], 0.0, side="right"))] -= absent
    return out


def category_counts(store: Store, src: Source, *, limit: int = MAX_CATEGORIES_READ
                    ) -> dict[str, tuple[int, int, dict[str, int]]]:
    """Per categorical feature: (non-null rows, distinct values, counts of its ``limit`` most frequent values)."""
    out: dict[str, tuple[int, int, dict[str, int]]] = {}
    if src.maps:
        tot = store.rows(
            f"""SELECT k, count() AS n, uniqExact(v) AS d
                FROM {src.table} ARRAY JOIN mapKeys(features_cat) AS k, mapValues(features_cat) AS v
                WHERE {src.where} GROUP BY k""", src.params)
        top = store.rows(
            f"""SELECT k, v, count() AS c
                FROM {src.table} ARRAY JOIN mapKeys(features_cat) AS k, mapValues(features_cat) AS v
                WHERE {src.where} GROUP BY k, v ORDER BY c DESC, v LIMIT {int(limit)} BY k""", src.params)
        for r in tot:
            out[r["k"]] = (int(r["n"]), int(r["d"]), {})
        for r in top:
            out[r["k"]][2][r["v"]] = int(r["c"])
    for name, col in src.pseudo_cat.items():
        res = store.rows(f"""SELECT {col} AS v, count() AS c, sum(c) OVER () AS n, count() OVER () AS d
                              FROM {src.table} WHERE {src.where} AND {col} IS NOT NULL
                              GROUP BY v ORDER BY c DESC, v LIMIT {int(limit)}""", src.params)
        if res:
            out[name] = (int(res[0]["n"]), int(res[0]["d"]), {r["v"]: int(r["c"]) for r in res})
    return out


def null_counts(store: Store, src: Source) -> dict[str, int]:
    """Rows where each feature was sent as an explicit null."""
    if not src.maps:
        return {}
    rows = store.rows(f"SELECT k, count() AS n FROM {src.table} ARRAY JOIN features_null AS k WHERE {src.where} GROUP BY k",
                      src.params)
    return {r["k"]: int(r["n"]) for r in rows}


def window_facts(store: Store, src: Source) -> dict[str, Any]:
    """Rows, newest event time and the 95th percentile of ingest lag (seconds) of a window source."""
    if not src.has_ts:
        return {"rows": int(store.scalar(f"SELECT count() FROM {src.table} WHERE {src.where}", src.params) or 0)}
    r = store.rows(f"""SELECT count() AS rows, max(ts) AS newest,
                              quantile(0.95)(dateDiff('millisecond', ts, ingested_at)) / 1000 AS lag_p95_s
                       FROM {src.table} WHERE {src.where}""", src.params)[0]
    return r
