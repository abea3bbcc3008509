"""Operational query routes (``/v1/ops/...``) for the dashboard: latency quantiles and error rates over time
from the metric-window histograms, deploy markers, serving against expected version, a summary (availability,
accuracy proxy, label coverage, deploy frequency, cost per 1,000 inferences), per-slice accuracy with Wilson
intervals, feature lists and reference/current distributions.

Every scan stays in ClickHouse and returns a few rows; quantiles are read from the summed histogram buckets
(:data:`serving_shim.contract.LATENCY_BUCKETS_MS` plus one overflow bucket; replicas add up).

The summary's cost is the model's configured cost model (:mod:`collector.cost`, ``DRIFTLINE_COST_MODELS``;
replica-hours at $0.50 when none is set), counted as ``GET /v1/cost`` counts it.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import APIRouter, HTTPException, Query

from collector.authz import KeyModels
from collector.cost import CostModel, cost_series, model_for
from collector.fragments import join_latest_label, model_window, models_filter, time_window, version_filter
from collector.sql import sql
from collector.stats import minutes_ago, wilson_interval
from collector.store import Store
from serving_shim.contract import LATENCY_BUCKETS_MS, as_utc

__all__ = ["ops_router", "histogram_quantile", "bucket_s"]

_MINUTES = Query(60, ge=1, le=525600, description="look back this many minutes")


def histogram_quantile(q: float, buckets: Sequence[float],
                       bounds: Sequence[float] = LATENCY_BUCKETS_MS) -> float | None:
    """The ``q`` quantile of a latency histogram, linear within its bucket (Prometheus' assumption).

    ``buckets`` has one count per bound plus the overflow bucket; a quantile in the overflow bucket is
    reported as the last bound (a lower bound). ``None`` for an empty histogram.
    """
    total = float(sum(buckets))
    if total <= 0:
        return None
    rank = q * total
    cum = 0.0
    lo = 0.0
    for i, hi in enumerate(bounds):
        c = float(buckets[i])
        if c > 0 and cum + c >= rank:
            return lo + (hi - lo) * (rank - cum) / c
        cum += c
        lo = hi
    return float(bounds[-1])


#: Bucket sizes of the time series, seconds: a range gets the smallest with at most ``MAX_POINTS`` buckets
#: (15 minutes: 30 s; 6 hours: 5 minutes; 7 days: 1 hour).
STEPS_S = (30, 60, 300, 900, 3600, 21600, 86400)
MAX_POINTS = 200
#: A range whose data fill fewer buckets than this is bucketed again on the span the data cover.
MIN_POINTS = 10


def bucket_s(seconds: float) -> int:
    """The bucket size of a time series over ``seconds``."""
    return next((s for s in STEPS_S if seconds / s <= MAX_POINTS), STEPS_S[-1])


def ops_router(store: Store, cost_models: Mapping[str, CostModel] | None = None) -> APIRouter:
    """The ``/v1/ops`` routes; ``cost_models``: the configured cost models (:func:`collector.cost.load_cost_models`)."""
    router = APIRouter(prefix="/v1/ops", tags=["ops"])

    @router.get("/models", summary="Models and versions seen in predictions, metric windows or deploys")
    def models(key: KeyModels, minutes: int = Query(525600, ge=1, le=525600)) -> list[dict[str, Any]]:
        since = minutes_ago(minutes)
        return store.rows(sql(
            """
            SELECT model, arraySort(groupUniqArray(model_version)) AS versions, max(last) AS last_ts FROM (
                SELECT model, model_version, max(ts) AS last FROM {db}.predictions
                WHERE %(ts)s GROUP BY model, model_version
                UNION ALL SELECT model, model_version, max(window_start) AS last FROM {db}.metric_windows
                WHERE %(ws)s GROUP BY model, model_version
                UNION ALL SELECT model, model_version, max(ts) AS last FROM {db}.deploys
                WHERE %(ts)s GROUP BY model, model_version)
            WHERE %(models)s
            GROUP BY model ORDER BY model
            """, ts=time_window(since), ws=time_window(since, column="window_start"), models=models_filter(key)))

    def _latency_rows(model: str, version: str, since: _dt.datetime, step: int) -> list[dict[str, Any]]:
        return store.rows(sql(
            """
            SELECT toDateTime64(toStartOfInterval(window_start, toIntervalSecond(%(step)s)), 3, 'UTC') AS t, """
            """sum(requests) AS requests,
                   sum(arraySum(mapValues(errors))) AS n_errors, sumMap(errors) AS errors_by_type,
                   sumForEach(latency_buckets) AS buckets, sum(latency_sum_ms) AS latency_sum_ms
            FROM {db}.metric_windows FINAL
            WHERE %(of)s
            GROUP BY t ORDER BY t
            """, of=model_window(model, since, version=version or None, column="window_start"), step=step))

    @router.get("/latency", summary="Requests, error rate and latency p50/p95/p99 per time step (all replicas)")
    def latency(model: str, version: str = "", minutes: int = _MINUTES,
                step_s: int | None = Query(None, ge=10, le=86400)) -> list[dict[str, Any]]:
        since = minutes_ago(minutes)
        step = step_s or bucket_s(minutes * 60)
        rows = _latency_rows(model, version, since, step)
        if not step_s and 0 < len(rows) < MIN_POINTS:  # data in a part of the range only: bucket that part
            span = (_dt.datetime.now(_dt.UTC) - max(since, as_utc(rows[0]["t"]))).total_seconds()
            if (fine := bucket_s(span)) < step:
                step, rows = fine, _latency_rows(model, version, since, fine)
        out = []
        for r in rows:
            b = [float(x) for x in r.pop("buckets")]
            r["errors"] = int(r.pop("n_errors"))
            n = int(r["requests"])
            out.append({
                **r, "step_s": step, "errors_by_type": {k: int(v) for k, v in dict(r["errors_by_type"]).items()},
                "error_rate": (int(r["errors"]) / n) if n else None,
                "mean_ms": (float(r["latency_sum_ms"]) / sum(b)) if sum(b) else None,
                "p50_ms": histogram_quantile(0.50, b), "p95_ms": histogram_quantile(0.95, b),
                "p99_ms": histogram_quantile(0.99, b),
            })
        return out

    @router.get("/deploys", summary="Deploy markers, newest last")
    def deploys(model: str, minutes: int = _MINUTES) -> list[dict[str, Any]]:
        return store.rows(sql(
            "SELECT ts, model, model_version, annotations FROM {db}.deploys FINAL WHERE %(of)s ORDER BY ts",
            of=model_window(model, minutes_ago(minutes))))

    @router.get("/versions", summary="The version expected (last deploy) against the versions serving now")
    def versions(model: str, minutes: int = Query(15, ge=1, le=10080,
                                                  description="serving: metric windows of the last N minutes")
                 ) -> dict[str, Any]:
        last = store.rows(sql("SELECT model_version, ts FROM {db}.deploys FINAL WHERE model = %(model)s "
                              "ORDER BY ts DESC LIMIT 1", model=model))
        serving = store.rows(sql(
            """
            SELECT model_version, sum(requests) AS requests, max(window_start) AS last_seen
            FROM {db}.metric_windows FINAL WHERE %(of)s
            GROUP BY model_version ORDER BY requests DESC, model_version
            """, of=model_window(model, minutes_ago(minutes), column="window_start")))
        expected = last[0]["model_version"] if last else None
        current = serving[0]["model_version"] if serving else None
        return {"model": model, "expected": expected, "expected_since": last[0]["ts"] if last else None,
                "current": current, "serving": serving,
                "matches": None if expected is None or current is None else expected == current}

    @router.get("/summary", summary="Availability, accuracy proxy, label coverage, deploy frequency, cost per 1,000")
    def summary(model: str, version: str = "", minutes: int = _MINUTES) -> dict[str, Any]:
        since = minutes_ago(minutes)
        (mw,) = store.rows(sql(
            """
            SELECT sum(requests) AS requests, sum(arraySum(mapValues(errors))) AS errors,
                   sum(window_s) AS replica_seconds, uniqExact(source) AS replicas
            FROM {db}.metric_windows FINAL
            WHERE %(of)s
            """, of=model_window(model, since, version=version or None, column="window_start")))
        of = model_window(model, since, version=version or None)
        (lab,) = store.rows(sql(
            """
            SELECT count() AS predictions, countIf(l.request_id != '') AS labelled,
                   countIf(l.request_id != '' AND p.pred_label IS NOT NULL AND l.label_class IS NOT NULL) AS classified,
                   countIf(ifNull(p.pred_label = l.label_class, false)) AS correct,
                   avgIf(abs(p.pred_value - l.label_value), """
            """l.label_value IS NOT NULL AND p.pred_value IS NOT NULL) AS mae
            FROM %(joined)s
            SETTINGS join_use_nulls = 0
            """, joined=join_latest_label(
                sql("(SELECT model, request_id, pred_label, pred_value FROM {db}.predictions FINAL "
                    "WHERE %(of)s)", of=of),
                of)))
        n_deploys = int(store.scalar(sql("SELECT count() FROM {db}.deploys FINAL WHERE %(of)s",
                                         of=model_window(model, since))) or 0)
        requests, errors = int(mw["requests"] or 0), int(mw["errors"] or 0)
        replica_hours = float(mw["replica_seconds"] or 0) / 3600
        cost = model_for(cost_models or {}, model)
        usd = sum(p.cost_usd for p in cost_series(store, model, cost, start=since, end=_dt.datetime.now(_dt.UTC),
                                                  step_s=max(60, minutes * 60), version=version))
        preds, labelled, classified = int(lab["predictions"]), int(lab["labelled"]), int(lab["classified"])
        mae = lab["mae"]
        return {
            "model": model, "model_version": version, "minutes": minutes,
            "requests": requests, "errors": errors, "availability": (1 - errors / requests) if requests else None,
            "sampled_predictions": preds, "labelled": labelled,
            "label_coverage": (labelled / preds) if preds else None,
            "accuracy": (int(lab["correct"]) / classified) if classified else None,
            "mae": None if mae is None or mae != mae else float(mae),
            "deploys": n_deploys, "deploys_per_day": n_deploys / (minutes / 1440),
            "replicas": int(mw["replicas"] or 0), "replica_hours": replica_hours,
            "cost_model": cost.as_dict(), "cost_usd": usd,
            "cost_per_1k": (usd / requests * 1000) if requests else None,
        }

    @router.get("/slices", summary="Accuracy per slice (key=value) with a 95% Wilson interval")
    def slices(model: str, version: str = "", minutes: int = _MINUTES, key: str = "") -> list[dict[str, Any]]:
        of = model_window(model, minutes_ago(minutes), version=version or None)
        rows = store.rows(sql(
            """
            SELECT p.k AS key, p.v AS value, count() AS labelled,
                   countIf(ifNull(p.pred_label = l.label_class, false)) AS correct
            FROM %(joined)s
            WHERE l.label_class IS NOT NULL
            GROUP BY key, value ORDER BY key, value
            """, joined=join_latest_label(sql(
                """(SELECT model, request_id, pred_label, k, v FROM {db}.predictions FINAL
                    ARRAY JOIN mapKeys(slices) AS k, mapValues(slices) AS v
                    WHERE %(of)s AND (%(key)s = '' OR k = %(key)s) AND pred_label IS NOT NULL)""", of=of, key=key),
                of, inner=True)))
        for r in rows:
            n, k = int(r["labelled"]), int(r["correct"])
            r["accuracy"] = k / n if n else None
            r["low"], r["high"] = wilson_interval(k, n)
        return rows

    @router.get("/features", summary="Feature names and kinds in the latest sampled predictions")
    def features(model: str, minutes: int = Query(1440, ge=1, le=525600),
                 sample: int = Query(10000, ge=100, le=1_000_000)) -> list[dict[str, Any]]:
        return store.rows(sql(
            """
            SELECT feature, kind, count() AS n FROM (
                SELECT arrayJoin(arrayConcat(arrayMap(k -> (k, 'numeric'), mapKeys(features_num)),
                                             arrayMap(k -> (k, 'categorical'), mapKeys(features_cat)))) AS fk,
                       fk.1 AS feature, fk.2 AS kind
                FROM (SELECT features_num, features_cat FROM {db}.predictions FINAL
                      WHERE %(of)s ORDER BY ts DESC LIMIT %(sample)s))
            GROUP BY feature, kind ORDER BY feature, kind
            """, of=model_window(model, minutes_ago(minutes)), sample=sample))

    @router.get("/distribution", summary="One feature's histogram in a reference and a current window")
    def distribution(model: str, feature: str, reference_start: _dt.datetime, reference_end: _dt.datetime,
                     current_start: _dt.datetime, current_end: _dt.datetime, version: str = "",
                     bins: int = Query(20, ge=2, le=200)) -> dict[str, Any]:
        for name, a, b in (("reference_end", reference_start, reference_end),
                           ("current_end", current_start, current_end)):
            if b <= a:
                raise HTTPException(422, f"{name}: must be after its start")
        is_cur = time_window(current_start, current_end)
        where = sql("model = %(model)s AND %(v)s AND (%(ref)s OR %(cur)s)", model=model,
                    v=version_filter(version or None), ref=time_window(reference_start, reference_end), cur=is_cur)
        num = sql("%(where)s AND mapContains(features_num, %(f)s)", where=where, f=feature)
        (rng,) = store.rows(sql("SELECT min(features_num[%(f)s]) AS lo, max(features_num[%(f)s]) AS hi, count() AS n "
                                "FROM {db}.predictions FINAL WHERE %(num)s", f=feature, num=num))
        out: dict[str, Any] = {"model": model, "feature": feature, "kind": "none", "edges": [], "categories": [],
                               "reference": [], "current": []}
        if int(rng["n"]):
            lo, hi = float(rng["lo"]), float(rng["hi"])
            width = (hi - lo) / bins if hi > lo else 1.0
            rows = store.rows(sql(
                """
                SELECT (%(is_cur)s) AS cur, """
                """least(toUInt32(floor((features_num[%(f)s] - %(lo)s) / %(w)s)), %(bins)s - 1) AS b,
                       count() AS n
                FROM {db}.predictions FINAL WHERE %(num)s
                GROUP BY cur, b
                """, is_cur=is_cur, f=feature, lo=lo, w=width, bins=bins, num=num))
            ref, cur = [0] * bins, [0] * bins
            for r in rows:
                (cur if r["cur"] else ref)[int(r["b"])] += int(r["n"])
            out.update(kind="numeric", edges=[lo + i * width for i in range(bins + 1)], reference=ref, current=cur)
            return out
        rows = store.rows(sql(
            """
            SELECT (%(is_cur)s) AS cur, features_cat[%(f)s] AS c, count() AS n
            FROM {db}.predictions FINAL WHERE %(where)s AND mapContains(features_cat, %(f)s)
            GROUP BY cur, c ORDER BY n DESC LIMIT 100
            """, is_cur=is_cur, f=feature, where=where))
        if rows:
            cats = sorted({r["c"] for r in rows})
            ref, cur = [0] * len(cats), [0] * len(cats)
            for r in rows:
                (cur if r["cur"] else ref)[cats.index(r["c"])] += int(r["n"])
            out.update(kind="categorical", categories=cats, reference=ref, current=cur)
        return out

    return router
