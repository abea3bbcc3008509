"""Data quality of a window against its reference: missing values, type violations, out-of-range
values, schema violations and freshness. Inputs are the :class:`~detectors.drift.WindowSummary`
already computed for drift, plus one small query for feature-timestamp freshness."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence
from dataclasses import dataclass, field

from collector.sql import sql
from collector.store import Store
from detectors.drift import WindowSummary
from detectors.drift_sql import Source
from detectors.reference import Profile
from detectors.results import ALERT, OK, Result

__all__ = ["QualityConfig", "quality_results", "feature_freshness"]


@dataclass(frozen=True, kw_only=True)
class QualityConfig:
    missing_tolerance: float = 0.05          # alert when missing rate > reference missing rate + this
    type_violation_rate: float = 0.0         # alert when the share of wrongly typed values is above this
    out_of_range_rate: float = 0.01          # share of values outside the reference [min, max]
    freshness_s: float | None = None         # alert when the newest event is older than this at window end
    ingest_lag_s: float = 60.0               # alert when p95(ingested_at - ts) is above this
    timestamp_features: Sequence[str] = ()   # features holding epoch seconds: event time minus them is their age
    feature_age_s: float = 3600.0
    min_count: int = 1
    ignore: frozenset[str] = field(default_factory=frozenset)


def _res(subject: str, test: str, value: float, thr: float, n: int, **detail: object) -> Result:
    return Result(detector="quality", subject=subject, test=test, value=float(value), threshold=float(thr),
                  status=ALERT if value > thr else OK, sample_size=n, detail=detail)


def quality_results(profile: Profile, cur: WindowSummary, *, window_end: _dt.datetime,
                    config: QualityConfig | None = None) -> list[Result]:
    cfg = config or QualityConfig()
    out: list[Result] = []
    rows = cur.rows
    if rows == 0:
        return [Result.no_data("quality", "", "rows", "no rows in the window")]
    feats = {f: fp for f, fp in profile.features.items() if not f.startswith("@") and f not in cfg.ignore}
    seen = {f for f in (set(cur.numeric) | set(cur.categorical) | set(cur.nulls))
            if not f.startswith("@") and f not in cfg.ignore}
    violations = 0
    for f, fp in sorted(feats.items()):
        num = cur.numeric.get(f)
        cat = cur.categorical.get(f)
        n_num = num.n if num else 0
        n_cat = cat[0] if cat else 0
        ref_missing = 1 - fp.n / profile.rows if profile.rows else 0.0
        present = n_num if fp.kind == "numeric" else n_cat if fp.kind == "categorical" else n_num + n_cat
        wrong = n_cat if fp.kind == "numeric" else n_num if fp.kind == "categorical" else 0
        missing = 1 - present / rows
        out.append(_res(f, "missing_rate", missing, min(1.0, ref_missing + cfg.missing_tolerance), rows,
                        reference_rate=round(ref_missing, 6), explicit_nulls=cur.nulls.get(f, 0)))
        if fp.kind != "null":
            out.append(_res(f, "type_violation_rate", wrong / rows, cfg.type_violation_rate, rows,
                            expected=fp.kind, got="categorical" if fp.kind == "numeric" else "numeric", count=wrong))
        if fp.kind == "numeric" and present:
            fine = cur.fine.get(f)
            if fine is not None and fine.size >= 2:
                below, above = int(fine[0]), int(fine[-1])
                out.append(_res(f, "out_of_range_rate", (below + above) / present, cfg.out_of_range_rate, present,
                                below=below, above=above, reference_min=fp.lo, reference_max=fp.hi))
        if present == 0 and wrong == 0 and fp.kind != "null":
            violations += 1
            out.append(Result(detector="quality", subject=f, test="schema", value=1.0, threshold=0.0, status=ALERT,
                              sample_size=rows, detail={"reason": "feature of the reference absent from every row"}))
    for f in sorted(seen - set(feats)):
        n = (cur.numeric[f].n if f in cur.numeric else 0) + (cur.categorical[f][0] if f in cur.categorical else 0)
        violations += 1
        out.append(Result(detector="quality", subject=f, test="schema", value=n / rows, threshold=0.0, status=ALERT,
                          sample_size=rows, detail={"reason": "feature not in the reference", "rows_with_it": n}))
    out.append(_res("", "schema_violations", violations, 0, rows))
    newest = cur.facts.get("newest")
    if newest is not None:
        newest = newest if newest.tzinfo else newest.replace(tzinfo=_dt.UTC)
        age = (window_end - newest).total_seconds()
        if cfg.freshness_s is not None:
            out.append(_res("", "freshness_s", age, cfg.freshness_s, rows, newest=newest.isoformat()))
        lag = cur.facts.get("lag_p95_s")
        if lag is not None:
            out.append(_res("", "ingest_lag_p95_s", float(lag), cfg.ingest_lag_s, rows))
    return out


def feature_freshness(store: Store, src: Source, features: Sequence[str], *, threshold_s: float) -> list[Result]:
    """Age of timestamp features (epoch seconds) against the event time: p95 of ts - feature, per feature."""
    out = []
    for f in features:
        r = store.rows(sql("""SELECT count() AS n, """
                              """quantile(0.95)(toUnixTimestamp64Milli(ts) / 1000 - features_num[%(f)s]) AS p95
                              FROM %(t)s WHERE %(w)s AND mapContains(features_num, %(f)s)""",
                           f=f, t=src.table, w=src.where))[0]
        if not r["n"]:
            out.append(Result.no_data("quality", f, "feature_age_p95_s", "no values of this timestamp feature"))
        else:
            out.append(_res(f, "feature_age_p95_s", float(r["p95"]), threshold_s, int(r["n"])))
    return out

