"""Evaluation in ClickHouse: good and total events of every SLO over every window, in few queries.

All windows end at ``now`` and hold the metric windows that *ended* in them (``window_start +
window_s``), so a window still being counted never dilutes an outage; they are nested, so each row falls
in one *age band* (between two consecutive window lengths). One ``GROUP BY model, model_version, band``
per data source gives a few rows; cumulative sums over bands give every window. Metric-window SLIs
(availability, latency) of all SLOs share one scan of ``metric_windows FINAL``; freshness, drift and
accuracy SLIs add one query per distinct parameter set (``max_age``; detector and subject; slice and tolerance).
"""

from __future__ import annotations

import datetime as _dt
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from collector.fragments import join_latest_label
from collector.sql import SQL, join, sql
from collector.store import Store
from serving_shim.contract import LATENCY_BUCKETS_MS, as_utc
from slo_engine.model import Sli, Slo
from slo_engine.rules import AlertRule, alert_rules, windows_needed

__all__ = ["WindowValue", "RuleResult", "SloStatus", "evaluate"]

_Key = tuple[str, str]  # (model, model_version)
_FINAL = sql("SETTINGS do_not_merge_across_partitions_select_final = 1")  # partitions are days of window_start


@dataclass(frozen=True, kw_only=True)
class WindowValue:
    window_s: int
    good: float
    total: float
    sli: float | None          # good / total; None without events
    burn_rate: float | None    # (1 - sli) / error budget


@dataclass(frozen=True, kw_only=True)
class RuleResult:
    rule: AlertRule
    long_burn_rate: float | None
    short_burn_rate: float | None
    firing: bool


@dataclass(frozen=True, kw_only=True)
class SloStatus:
    slo: Slo
    model_version: str          # '' when the SLO covers every version
    at: _dt.datetime
    good: float
    total: float
    sli: float | None
    error_budget: float
    budget_remaining: float | None   # 1 - consumed share of the budget over the SLO window (may go < 0)
    windows: dict[int, WindowValue]
    rules: tuple[RuleResult, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "slo": self.slo.name, "model": self.slo.model, "model_version": self.model_version,
            "sli_kind": self.slo.sli.kind, "objective": self.slo.objective, "window_s": self.slo.window_s,
            "at": self.at.isoformat(), "good": self.good, "total": self.total, "sli": self.sli,
            "error_budget": self.error_budget, "budget_remaining": self.budget_remaining,
            "burn_rates": {str(w): v.burn_rate for w, v in sorted(self.windows.items())},
            "rules": [{"tier": r.rule.tier, "severity": r.rule.severity, "burn_rate": r.rule.burn_rate,
                       "requested_burn_rate": r.rule.requested_burn_rate, "long_window_s": r.rule.long_window_s,
                       "short_window_s": r.rule.short_window_s, "long_burn_rate": r.long_burn_rate,
                       "short_burn_rate": r.short_burn_rate, "firing": r.firing, "reachable": r.rule.reachable,
                       "note": r.rule.note} for r in self.rules],
        }


def _band_expr(col: SQL, windows: Sequence[int], now: _dt.datetime) -> SQL:
    """0-based band of a row by its age in seconds: band i holds ages in [w[i-1], w[i]), so window w is
    (now - w, now]."""
    age = sql("(dateDiff('millisecond', %(col)s, %(now)s) / 1000.0)", col=col, now=now)
    parts = join(", ", [sql("%(age)s < %(w)s, %(i)s", age=age, w=int(w), i=i) for i, w in enumerate(windows)])
    return sql("multiIf(%(parts)s, %(n)s)", parts=parts, n=len(windows))


def evaluate(store: Store, slos: Sequence[Slo], now: _dt.datetime, *,
             extra_windows: Iterable[int] = ()) -> list[SloStatus]:
    """Status of every SLO at ``now``: SLI, budget and burn rate over every needed window (plus ``extra_windows``)."""
    now = as_utc(now)
    windows = sorted(set(windows_needed(slos)) | {int(w) for w in extra_windows})
    if not slos:
        return []
    # (source id) -> {(model, version): [[good, total] per band]} ; metric windows keep raw sums
    by_source: dict[str, dict[_Key, list[list[float]]]] = {}
    mw_slos = [s for s in slos if s.sli.kind in ("availability", "latency")]
    mw = _metric_window_bands(store, mw_slos, windows, now) if mw_slos else {}
    for s in slos:
        sid = _source_id(s)
        if sid in by_source or s.sli.kind in ("availability", "latency"):
            continue
        group = [x for x in slos if _source_id(x) == sid]
        by_source[sid] = _other_bands(store, s, group, windows, now)
    out = []
    for s in slos:
        if s.sli.kind in ("availability", "latency"):
            per_key = {k: [_good_total(s, b) for b in bands] for k, bands in mw.items() if k[0] == s.model}
        else:
            per_key = {k: v for k, v in by_source[_source_id(s)].items() if k[0] == s.model}
        out.extend(_statuses(s, per_key, windows, now))
    return out


def _source_id(s: Slo) -> str:
    sli = s.sli
    if sli.kind == "freshness":
        return f"freshness:{sli.max_age_s}"
    if sli.kind == "drift":
        return f"drift:{sli.detector}:{sli.subject}"
    if sli.kind == "accuracy":
        return f"accuracy:{sli.slice}:{sli.tolerance}:{sli.estimate_below_coverage}"
    return "metric_windows"


def _metric_window_bands(store: Store, slos: Sequence[Slo], windows: Sequence[int], now: _dt.datetime
                         ) -> dict[_Key, list[dict[str, Any] | None]]:
    typed = any(s.sli.error_types for s in slos)
    start = now - _dt.timedelta(seconds=windows[-1])
    query = sql("""
        SELECT model, model_version, %(band)s AS band,
               sum(requests) AS requests, sum(arraySum(mapValues(errors))) AS errors,
               %(typed)s sumForEach(latency_buckets) AS buckets
        FROM {db}.metric_windows FINAL
        WHERE model IN %(models)s AND window_start > %(start_data)s AND window_start < %(now)s
          AND addSeconds(window_start, window_s) > %(start)s AND addSeconds(window_start, window_s) <= %(now)s
        GROUP BY model, model_version, band %(final)s
    """, band=_band_expr(sql("addSeconds(window_start, window_s)"), windows, now),
                typed=sql("sumMap(errors) AS errors_by_type," if typed else ""), final=_FINAL,
                models=sorted({s.model for s in slos}), now=now, start=start,
                start_data=start - _dt.timedelta(seconds=3600))
    out: dict[_Key, list[dict[str, Any] | None]] = defaultdict(lambda: [None] * len(windows))
    for r in store.rows(query):
        if r["band"] < len(windows):
            out[(r["model"], r["model_version"])][r["band"]] = r
    return out


def _good_total(s: Slo, r: dict[str, Any] | None) -> list[float]:
    if r is None:
        return [0.0, 0.0]
    sli = s.sli
    if sli.kind == "availability":
        bad = sum(r["errors_by_type"].get(t, 0) for t in sli.error_types) if sli.error_types else r["errors"]
        return [float(r["requests"] - bad), float(r["requests"])]
    b = [float(x) for x in r["buckets"]]
    total = sum(b)
    thr = float(sli.threshold_ms or 0)
    good = 0.0
    lo = 0.0
    for i, hi in enumerate(LATENCY_BUCKETS_MS):
        if thr >= hi:
            good += b[i]
        else:
            if sli.interpolate and thr > lo:
                good += b[i] * (thr - lo) / (hi - lo)
            break
        lo = hi
    return [good, total]


def _other_bands(store: Store, s: Slo, group: Sequence[Slo], windows: Sequence[int], now: _dt.datetime
                 ) -> dict[_Key, list[list[float]]]:
    sli = s.sli
    params: dict[str, Any] = {"models": sorted({x.model for x in group}), "now": now,
                              "start": now - _dt.timedelta(seconds=windows[-1]), "final": _FINAL}
    if sli.kind == "freshness":
        k = max(1, -(-int(sli.max_age_s or 60) // 60))
        params.update(start_data=now - _dt.timedelta(seconds=windows[-1] + k * 60), k=k,
                      band=_band_expr(sql("addSeconds(m, 60)"), windows, now))
        query = sql("""
            SELECT model, '' AS model_version, %(band)s AS band, count() AS good,
                   0 AS total
            FROM (SELECT DISTINCT model, toStartOfMinute(window_start) + toIntervalMinute(k) AS m
                  FROM {db}.metric_windows FINAL ARRAY JOIN range(%(k)s) AS k
                  WHERE model IN %(models)s AND window_start > %(start_data)s AND window_start <= %(now)s %(final)s)
            WHERE addSeconds(m, 60) > %(start)s AND addSeconds(m, 60) <= %(now)s
            GROUP BY model, band
        """, **params)
    elif sli.kind == "drift":
        params.update(detector=sli.detector, subject=sli.subject or "",
                      band=_band_expr(sql("max(window_end)"), windows, now))
        params["subject_cond"] = sql("AND subject = %(s)s", s=sli.subject) if sli.subject is not None else sql("")
        query = sql("""
            SELECT model, model_version, band, count() - countIf(bad) AS good, count() AS total
            FROM (SELECT model, model_version, window_start, %(band)s AS band,
                         max(status = 'alert') AS bad
                  FROM {db}.detector_results FINAL
                  WHERE model IN %(models)s AND detector = %(detector)s %(subject_cond)s
                    AND status IN ('ok', 'alert') AND window_end > %(start)s AND window_end <= %(now)s
                  GROUP BY model, model_version, window_start)
            GROUP BY model, model_version, band
        """, **params)
    else:
        of = sql("model IN %(models)s AND ts > %(start)s AND ts <= %(now)s AND %(slice)s", models=params["models"],
                 start=params["start"], now=now,
                 slice=sql("slices[%(k)s] = %(v)s", k=sli.slice[0][0], v=sli.slice[0][1]) if sli.slice else sql("1"))
        preds = sql("(SELECT model, model_version, request_id, ts, pred_label, pred_value FROM {db}.predictions FINAL "
                    "WHERE %(of)s)", of=of)
        match = sql("abs(p.pred_value - l.label_value) <= %(tol)s", tol=sli.tolerance) if sli.tolerance is not None \
            else sql("p.pred_label = l.label_class")
        query = sql("""
            SELECT p.model AS model, p.model_version AS model_version, %(band)s AS band,
                   countIf(ifNull(%(match)s, false)) AS good, count() AS total
            FROM %(joined)s
            GROUP BY model, model_version, band
        """, band=_band_expr(sql("p.ts"), windows, now), match=match, joined=join_latest_label(preds, of, inner=True))
    out: dict[_Key, list[list[float]]] = defaultdict(lambda: [[0.0, 0.0] for _ in windows])
    for r in store.rows(query):
        if r["band"] < len(windows):
            out[(r["model"], r["model_version"])][r["band"]] = [float(r["good"]), float(r["total"])]
    if sli.kind == "accuracy" and sli.estimate_below_coverage is not None:
        _estimates(store, sli, of, params, windows, now, out)
    if sli.kind == "freshness":  # total = minutes in the band
        for bands in out.values():
            for i, b in enumerate(bands):
                b[1] = (windows[i] - (windows[i - 1] if i else 0)) / 60.0
    return out


def _estimates(store: Store, sli: Sli, of: SQL, params: dict[str, Any], windows: Sequence[int], now: _dt.datetime,
               out: dict[_Key, list[list[float]]]) -> None:
    """A band whose labelled share of predictions is below ``estimate_below_coverage`` counts its predictions
    at the accuracy estimated before labels: the mean of the model's ``estimated_performance`` accuracy results
    (of the SLI's slice) whose detector windows overlap the band, weighted by their rows and the overlap."""
    counts = store.rows(sql("""SELECT model, model_version, %(band)s AS band, count() AS n
                               FROM {db}.predictions FINAL WHERE %(of)s GROUP BY model, model_version, band""",
                            band=_band_expr(sql("ts"), windows, now), of=of))
    rows = store.rows(sql(
        """SELECT model, window_start, window_end, value, sample_size FROM {db}.detector_results FINAL
           WHERE model IN %(models)s AND detector = 'estimated_performance' AND test = 'accuracy'
             AND subject = %(subject)s AND value IS NOT NULL AND sample_size > 0
             AND window_end > %(start)s AND window_start < %(now)s""", models=params["models"],
        subject="=".join(sli.slice[0]) if sli.slice else "", start=params["start"], now=now))
    bounds = [(now - _dt.timedelta(seconds=w), now - _dt.timedelta(seconds=windows[i - 1] if i else 0))
              for i, w in enumerate(windows)]                   # band i: (now - windows[i], now - windows[i-1]]
    est: dict[tuple[str, int], list[float]] = defaultdict(lambda: [0.0, 0.0])
    for r in rows:
        ws, we = as_utc(r["window_start"]), as_utc(r["window_end"])
        span = max((we - ws).total_seconds(), 1e-3)
        for i, (lo, hi) in enumerate(bounds):
            overlap = (min(we, hi) - max(ws, lo)).total_seconds()
            if overlap > 0:
                w = float(r["sample_size"]) * overlap / span
                e = est[(r["model"], i)]
                e[0] += float(r["value"]) * w
                e[1] += w
    level = float(sli.estimate_below_coverage or 0.0)
    for r in counts:
        b, n = int(r["band"]), float(r["n"])
        key = (r["model"], r["model_version"])
        got = est.get((r["model"], b))
        if b < len(windows) and got is not None and got[1] > 0 and n > 0 and out[key][b][1] / n < level:
            out[key][b] = [got[0] / got[1] * n, n]


def _statuses(s: Slo, per_key: dict[_Key, list[list[float]]], windows: Sequence[int], now: _dt.datetime
              ) -> list[SloStatus]:
    if s.model_version is not None:
        per_key = {k: v for k, v in per_key.items() if k[1] == s.model_version}
    if s.per_version and s.sli.kind != "freshness":
        groups = {k[1]: [v] for k, v in per_key.items()}
    else:
        groups = {s.model_version or "": list(per_key.values())}
    out = []
    budget = s.error_budget
    for version, parts in sorted(groups.items()):
        cum = [0.0, 0.0]
        wv: dict[int, WindowValue] = {}
        for i, w in enumerate(windows):
            for p in parts:
                cum[0] += p[i][0]
                cum[1] += p[i][1]
            good, total = cum
            sli = good / total if total > 0 else None
            burn = (1.0 - sli) / budget if sli is not None else None
            wv[w] = WindowValue(window_s=w, good=good, total=total, sli=sli, burn_rate=burn)
        main = wv[s.window_s]
        rules = []
        for r in alert_rules(s):
            lb, sb = wv[r.long_window_s].burn_rate, wv[r.short_window_s].burn_rate
            firing = r.reachable and lb is not None and sb is not None and lb >= r.burn_rate and sb >= r.burn_rate
            rules.append(RuleResult(rule=r, long_burn_rate=lb, short_burn_rate=sb, firing=firing))
        out.append(SloStatus(
            slo=s, model_version=version, at=now, good=main.good, total=main.total, sli=main.sli,
            error_budget=budget, budget_remaining=None if main.burn_rate is None else 1.0 - main.burn_rate,
            windows=wv, rules=tuple(rules),
        ))
    return out
