"""Root cause: which slices and features are behind a broken accuracy, drift verdict or error budget.

Three rankings, each from a few rows (stored detector results, or one ``GROUP BY`` over the window):

- **slices by contribution to the accuracy drop** (:func:`slice_contributions`), from the per-slice results
  of ``performance`` (realized) or ``estimated_performance`` (CBPE) of one window. A slice's baseline is the
  accuracy of *the rest of the traffic* in the same window (all traffic minus the slice), and its
  contribution is ``(baseline - slice accuracy) x slice share``: the number of extra errors the slice made,
  against what the rest of the traffic would have made on the same requests, as a share of all labelled
  requests, i.e. the points of all-traffic accuracy the slice costs. A drop confined to one slice ranks that
  slice first even when it is small (its baseline is the healthy rest; a big healthy slice contributes
  < 0); the baseline needs no history, so it works on the first window and on estimates alike. For a
  lower-is-better metric (``mae``) the difference is taken the other way round.
- **features by drift x importance** (:func:`feature_contributions`): a test's value normalised by its
  threshold (``value / threshold`` for tests that alert above it; ``log p / log threshold`` for p-value
  tests, on ``p_adjusted`` when the detector adjusted it), so 1 is "at the threshold" whatever the test.
  The feature's primary result decides (else its largest score). Importance is the model-level verdict's
  weights (``drift.importance``) when given, else 1.
- **slices whose error budget burns fastest** (:func:`slice_burn`): bad and total events per slice over a
  window, in SQL, for errors (availability), latency over a threshold, or wrong labels (accuracy); ranked by
  the lower bound of the burn rate's Wilson interval, so a slice of three requests with one error does not
  outrank a large slice that is steadily failing. Predictions are sampled with every error kept: the ok
  predictions are scaled by the exact counts of the metric windows to undo that.

:func:`root_cause` puts the three together for one model and time range (the alert payload, the API route
``GET /v1/root-cause`` and the Debug page all show it).
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from collector.fragments import join_latest_label, model_window
from collector.sql import SQL, join, sql
from collector.stats import wilson_interval
from collector.store import Store
from detectors.results import ALERT, OK, Result, query_results
from detectors.stattests import DEFAULT_REGISTRY, Registry
from detectors.verdict import VERDICT_TEST

__all__ = ["slice_contributions", "feature_contributions", "slice_burn", "root_cause", "BurnKind", "TOP"]

TOP = 3
BurnKind = Literal["errors", "latency", "accuracy"]
_LOWER_IS_BETTER = {"mae"}
_PERFORMANCE = ("performance", "estimated_performance")   # realized first


def _row(r: Result | Mapping[str, Any]) -> Mapping[str, Any]:
    return r.as_dict() if isinstance(r, Result) else r


def slice_contributions(results: Iterable[Result | Mapping[str, Any]], *, metric: str = "accuracy"
                        ) -> list[dict[str, Any]]:
    """Slices of one window's per-slice results ranked by their contribution to the drop of ``metric``
    (see the module docstring); only slices that cost something (contribution > 0), largest first."""
    rows = [x for x in map(_row, results) if x["test"] == metric and x.get("value") is not None
            and int(x.get("sample_size") or 0) > 0 and x.get("status") in (OK, ALERT)]
    whole = next((x for x in rows if x["subject"] == ""), None)
    parts = [x for x in rows if "=" in x["subject"]]
    by_key: dict[str, tuple[float, int]] = {}   # key -> (sum of metric x n, n), when all traffic is unknown
    for x in parts:
        k = x["subject"].split("=", 1)[0]
        s, n = by_key.get(k, (0.0, 0))
        by_key[k] = (s + float(x["value"]) * int(x["sample_size"]), n + int(x["sample_size"]))
    sign = -1.0 if metric in _LOWER_IS_BETTER else 1.0
    out = []
    for x in parts:
        v, n = float(x["value"]), int(x["sample_size"])
        if whole is not None:
            tot_s, tot_n = float(whole["value"]) * int(whole["sample_size"]), int(whole["sample_size"])
        else:
            tot_s, tot_n = by_key[x["subject"].split("=", 1)[0]]
        if tot_n - n <= 0:
            continue   # the slice is all the traffic: no rest to compare with
        baseline = (tot_s - v * n) / (tot_n - n)
        if metric not in _LOWER_IS_BETTER:
            baseline = min(1.0, max(0.0, baseline))
        share = n / tot_n
        c = sign * (baseline - v) * share
        if c > 0:
            out.append({"slice": x["subject"], "contribution": c, "metric": metric, "value": v, "baseline": baseline,
                        "share": share, "n": n, "source": x.get("detector", ""),
                        **({"window_end": x["window_end"]} if "window_end" in x else {})})
    return sorted(out, key=lambda d: (-d["contribution"], d["slice"]))


def _normalised(x: Mapping[str, Any], registry: Registry) -> float | None:
    """The test's value in units of its threshold: 1 at the threshold, larger is more drift."""
    v, thr = x.get("value"), x.get("threshold")
    if v is None or thr is None or thr <= 0:
        return None
    detail = x.get("detail") or {}
    try:
        below = registry.get(x["test"]).alert_when == "below"
    except (KeyError, ValueError):
        below = "p_value" in detail
    if not below:
        return float(v) / float(thr)
    p = detail.get("p_adjusted", v)
    if not isinstance(p, (int, float)) or thr >= 1:
        return None
    return math.log(max(float(p), 1e-300)) / math.log(float(thr))


def feature_contributions(results: Iterable[Result | Mapping[str, Any]], *,
                          importance: Mapping[str, float] | None = None,
                          registry: Registry = DEFAULT_REGISTRY) -> list[dict[str, Any]]:
    """Features of one window's drift results ranked by normalised drift x importance (largest first, > 0
    only). ``importance``: feature -> weight (None or empty: every feature weighs 1; a feature it does not
    name weighs 0)."""
    by_feature: dict[str, list[tuple[float, Mapping[str, Any]]]] = {}
    primary: dict[str, list[tuple[float, Mapping[str, Any]]]] = {}
    for x in map(_row, results):
        f = x["subject"]
        if x["detector"] != "drift" or not f or f.startswith("@") or x["status"] not in (OK, ALERT):
            continue
        score = _normalised(x, registry)
        if score is None:
            continue
        by_feature.setdefault(f, []).append((score, x))
        if bool((x.get("detail") or {}).get("primary")):
            primary.setdefault(f, []).append((score, x))
    out = []
    for f, scored in by_feature.items():
        score, x = max(primary.get(f) or scored, key=lambda t: t[0])
        w = (importance.get(f, 0.0) if importance else 1.0)
        if score * w > 0:
            out.append({"feature": f, "contribution": score * w, "drift": score, "importance": w, "test": x["test"],
                        "value": x["value"], "threshold": x["threshold"], "status": x["status"],
                        **({"window_end": x["window_end"]} if "window_end" in x else {})})
    return sorted(out, key=lambda d: (-d["contribution"], d["feature"]))


def _sampling_rate(store: Store, model: str, start: _dt.datetime, end: _dt.datetime, version: str | None) -> float:
    """The share of ok predictions kept by the SDK's sampling: sampled ok / exact ok from the metric windows
    (1 when the metric windows do not say)."""
    exact = store.rows(sql("""SELECT sum(requests) AS requests, sum(arraySum(mapValues(errors))) AS errors
                              FROM {db}.metric_windows FINAL WHERE %(w)s""",
                           w=model_window(model, start, end, version=version, column="window_start")))
    ok_exact = float((exact[0]["requests"] or 0) - (exact[0]["errors"] or 0)) if exact else 0.0
    if ok_exact <= 0:
        return 1.0
    got = store.rows(sql("SELECT countIf(status != 'error') AS ok FROM {db}.predictions FINAL WHERE %(w)s",
                         w=model_window(model, start, end, version=version)))
    ok = float(got[0]["ok"]) if got else 0.0
    return min(1.0, ok / ok_exact) if ok > 0 else 1.0


def slice_burn(store: Store, model: str, start: _dt.datetime, end: _dt.datetime, *, kind: BurnKind = "errors",
               objective: float = 0.99, version: str | None = None, threshold_ms: float | None = None,
               tolerance: float | None = None, within: Sequence[tuple[str, str]] = (), min_events: int = 10,
               error_types: Sequence[str] = (), confidence: float = 0.95) -> list[dict[str, Any]]:
    """Slices (``key=value`` of the predictions' ``slices``) of ``[start, end)`` ranked by how fast they burn an
    error budget of ``1 - objective``: ``errors`` (status error), ``latency`` (over ``threshold_ms``) or
    ``accuracy`` (label does not match; ``tolerance`` for numeric predictions). ``within``: only the
    predictions of these slices (an SLO on one slice); ``error_types``: only these error types are bad (errors).
    Slices with fewer than ``min_events`` stored predictions or without a bad event are left out. ``total`` and
    ``bad`` are estimates of all requests (sampling undone), ``events`` the stored predictions counted."""
    if not 0 < objective < 1:
        raise ValueError(f"objective: must be in (0, 1), got {objective!r}")
    if kind == "latency" and threshold_ms is None:
        raise ValueError("threshold_ms: needed for a latency burn ranking")
    if kind not in ("errors", "latency", "accuracy"):
        raise ValueError(f"kind: one of errors, latency, accuracy; got {kind!r}")
    of = model_window(model, start, end, version=version)
    for k, v in within:
        of = sql("%(of)s AND slices[%(k)s] = %(v)s", of=of, k=k, v=v)
    if kind == "accuracy":
        preds = sql("(SELECT model, request_id, slices, pred_label, pred_value FROM {db}.predictions FINAL "
                    "WHERE %(of)s)", of=of)
        match = sql("abs(p.pred_value - l.label_value) <= %(tol)s", tol=tolerance) if tolerance is not None \
            else sql("p.pred_label = l.label_class")
        # counted per distinct slice map first (a few hundred rows), then spread over its keys
        query = sql("""SELECT k, v, sum(c) AS n, toFloat64(sum(c)) AS total, toFloat64(sum(b)) AS bad
                       FROM (SELECT p.slices AS s, count() AS c, countIf(NOT ifNull(%(match)s, false)) AS b
                             FROM %(joined)s GROUP BY s)
                       ARRAY JOIN mapKeys(s) AS k, mapValues(s) AS v
                       GROUP BY k, v""", match=match, joined=join_latest_label(preds, of, inner=True))
    else:
        rate = _sampling_rate(store, model, start, end, version)
        if kind == "errors":
            bad: SQL = sql("status = 'error' AND error_type IN %(t)s", t=list(error_types)) if error_types \
                else sql("status = 'error'")
        else:
            bad = sql("ifNull(latency_ms > %(t)s, false)", t=float(threshold_ms or 0))
        query = sql("""SELECT k, v, sum(c) AS n, sum(t) AS total, sum(b) AS bad
                       FROM (SELECT slices AS s, count() AS c, sum(w) AS t, sum(w * (%(bad)s)) AS b
                             FROM (SELECT slices, status, error_type, latency_ms,
                                          if(status = 'error', 1.0, %(inv)s) AS w
                                   FROM {db}.predictions FINAL WHERE %(of)s)
                             GROUP BY s)
                       ARRAY JOIN mapKeys(s) AS k, mapValues(s) AS v
                       GROUP BY k, v""", bad=bad, inv=1.0 / rate, of=of)
    rows = store.rows(query)
    budget = 1.0 - objective
    totals: dict[str, tuple[float, float]] = {}
    for r in rows:
        t, b = totals.get(r["k"], (0.0, 0.0))
        totals[r["k"]] = (t + float(r["total"]), b + float(r["bad"]))
    out = []
    for r in rows:
        total, nbad, n = float(r["total"]), float(r["bad"]), int(r["n"])
        if n < min_events or nbad <= 0:
            continue   # too few events to say, or nothing burnt
        # the interval of the (weighted) bad rate on the events actually seen
        lo, _ = wilson_interval(round(n * nbad / total), n, confidence)
        key_total, key_bad = totals[r["k"]]
        out.append({"slice": f"{r['k']}={r['v']}", "burn_rate": nbad / total / budget,
                    "burn_rate_low": (lo or 0.0) / budget, "bad_rate": nbad / total, "bad": nbad, "total": total,
                    "events": n,
                    "share": total / key_total if key_total else 0.0,
                    "budget_share": nbad / key_bad if key_bad else 0.0, "kind": kind})
    return sorted(out, key=lambda d: (-d["burn_rate_low"], -d["burn_rate"], d["slice"]))


def _latest_window(store: Store, model: str, detector: str, start: _dt.datetime, end: _dt.datetime,
                   version: str | None, test: str | None = None) -> list[dict[str, Any]]:
    """The stored results of ``detector`` in its latest window ending in ``(start, end]``."""
    conds = [sql("model = %(m)s AND detector = %(d)s", m=model, d=detector),
             sql("window_end > %(s)s AND window_end <= %(e)s", s=start, e=end)]
    if version is not None:
        conds.append(sql("model_version IN ('*', %(v)s)", v=version))
    if test is not None:
        conds.append(sql("test = %(t)s", t=test))
    got = store.rows(sql("SELECT max(window_end) AS we, argMax(window_start, window_end) AS ws "
                         "FROM {db}.detector_results WHERE %(w)s", w=join(" AND ", conds)))
    if not got or got[0]["we"] is None or got[0]["we"] <= start:
        return []
    rows = query_results(store, model=model, detector=detector, test=test, start=got[0]["ws"], end=got[0]["we"],
                         limit=100_000)
    rows = [r for r in rows if r["window_end"] == got[0]["we"] and r["window_start"] == got[0]["ws"]]
    if version is not None:
        exact = [r for r in rows if r["model_version"] == version]
        rows = exact or rows
    return rows


def root_cause(store: Store, model: str, start: _dt.datetime, end: _dt.datetime, *, version: str | None = None,
               burn: Mapping[str, Any] | None = None, burn_start: _dt.datetime | None = None,
               metric: str = "accuracy", top: int = TOP) -> dict[str, Any]:
    """The three rankings for ``model`` over ``[start, end)``, ``top`` of each, and the latest drift verdict.

    Detector results: the latest window ending in the range. ``burn``: the keyword arguments of
    :func:`slice_burn` (``kind``, ``objective``, ...) over ``[burn_start or start, end)``; None: no burn
    ranking."""
    out: dict[str, Any] = {"model": model, "model_version": version, "start": start, "end": end,
                           "verdict": None, "slices": [], "features": [], "burn": [], "notes": []}
    perf: list[dict[str, Any]] = []
    for det in _PERFORMANCE:   # realized, unless the estimate is of a newer window
        rows = _latest_window(store, model, det, start, end, version, test=metric)
        if rows and (not perf or rows[0]["window_end"] > perf[0]["window_end"]):
            perf = rows
    if perf:
        out["slices"] = slice_contributions(perf, metric=metric)[:top]
    else:
        out["notes"].append(f"no {metric} per slice (performance or estimated_performance) in the range")
    drift = _latest_window(store, model, "drift", start, end, version)
    verdict = next((r for r in drift if r["subject"] == "" and r["test"] == VERDICT_TEST), None)
    importance = None
    if verdict is not None:
        d = verdict["detail"]
        importance = d.get("weights") if d.get("weighted") else None
        out["verdict"] = {"value": verdict["value"], "threshold": verdict["threshold"], "status": verdict["status"],
                          "window_end": verdict["window_end"], "drifted": d.get("drifted", [])[:top * 3]}
    if drift:
        out["features"] = feature_contributions(drift, importance=importance)[:top]
    else:
        out["notes"].append("no drift results in the range")
    if burn is not None:
        out["burn"] = slice_burn(store, model, burn_start or start, end, version=version, **burn)[:top]
    return out

