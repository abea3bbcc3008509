"""Drift of every feature, the prediction and the label: current window against a reference profile.

The window is summarised once in SQL (:class:`WindowSummary`: counts on the reference bins,
category counts, a few numbers per feature) and every configured test runs on those counts. A
feature whose reference edges come from a counting grid is counted with the grid's code (one
multiplication per value, whatever the number of edges); the others compare values with the edges.
PSI, KL and JS use ``bins`` reference-quantile bins (default 10); KS and Wasserstein use the full
100-quantile grid (see :mod:`detectors.stattests` for what that approximates).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from collector.store import Store
from detectors.drift_sql import (
    NumStats,
    Source,
    bins_and_stats,
    category_counts,
    key_layouts,
    null_counts,
    numeric_stats,
    window_facts,
)
from detectors.reference import FeatureProfile, Profile, coarse_bins, regroup
from detectors.results import ALERT, ERROR, OK, Result
from detectors.stattests import (
    DEFAULT_REGISTRY,
    OTHER,
    Binned,
    NotApplicable,
    Registry,
    StatTest,
    ks_pvalue,
    shown_categories,
)

__all__ = ["FINE_TESTS", "TestConfig", "DriftConfig", "WindowSummary", "summarize_window", "drift_results",
           "binned_numeric", "binned_categorical"]

FINE_TESTS = frozenset({"ks", "wasserstein"})


@dataclass(frozen=True, kw_only=True)
class TestConfig:
    threshold: float | None = None             # None: the test's default threshold
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class DriftConfig:
    """Which tests run, with which thresholds. ``tests`` accepts ``{"psi": 0.2}``,
    ``{"psi": {"threshold": 0.2, "smoothing": 1e-4}}`` or ``{"psi": None}`` (default threshold)."""

    tests: Mapping[str, TestConfig] = field(default_factory=lambda: {
        "psi": TestConfig(), "ks": TestConfig(), "wasserstein": TestConfig(), "js": TestConfig(),
        "chisquare": TestConfig(), "new_categories": TestConfig(), "vanished_categories": TestConfig()})
    bins: int = 10
    min_count: int = 50

    @property
    def needs_full_grid(self) -> bool:
        return any(name in FINE_TESTS for name in self.tests)

    @classmethod
    def parse(cls, tests: Mapping[str, Any] | None = None, **kw: Any) -> DriftConfig:
        if tests is None:
            return cls(**kw)
        norm = {}
        for name, v in tests.items():
            if isinstance(v, Mapping):
                v = dict(v)
                norm[name] = TestConfig(threshold=v.pop("threshold", None), params=v)
            else:
                norm[name] = TestConfig(threshold=None if v is None else float(v))
        return cls(tests=norm, **kw)


@dataclass(frozen=True, kw_only=True)
class WindowSummary:
    rows: int
    numeric: dict[str, NumStats]
    edges: dict[str, np.ndarray]           # per numeric feature: the reference edges counted on
    fine: dict[str, np.ndarray]            # counts on those edges (len + 1 bins)
    categorical: dict[str, tuple[int, int, dict[str, int]]]
    nulls: dict[str, int]
    facts: dict[str, Any]


def summarize_window(store: Store, src: Source, profile: Profile, *, bins: int | None = None) -> WindowSummary:
    """Summarise a window on the reference's bins: the full quantile grid (``bins=None``, needed by
    KS and Wasserstein) or only ``bins`` quantile bins plus the reference min and max (cheaper)."""
    facts = window_facts(store, src)
    rows = int(facts["rows"])
    if rows == 0:
        return WindowSummary(rows=0, numeric={}, edges={}, fine={}, categorical={}, nulls={}, facts=facts)
    layouts = key_layouts(store, src)
    num = numeric_stats(store, src, counts_only=True, layouts=layouts)   # exact counts; statistics below
    edges = {}
    for f, fp in profile.features.items():
        if fp.kind == "numeric" and fp.edges.size and f in num and (src.maps or f in src.pseudo_num):
            edges[f] = fp.edges if bins is None else np.unique(np.concatenate(
                [fp.edges[:1], coarse_bins(fp, bins), fp.edges[-1:]]))
    grids = {f: g for f in edges if (g := profile.features[f].grid) is not None}
    # the full grid (KS, Wasserstein) also needs the Map features' min, max, mean and std: the same scan
    map_stats = [f for f in num if f not in src.pseudo_num] if bins is None else []
    fine, st = bins_and_stats(store, src, edges, {f: s.n for f, s in num.items()}, grids=grids, layouts=layouts,
                              stats=map_stats)
    num.update(st)
    return WindowSummary(rows=rows, numeric=num, edges=edges, fine=fine,
                         categorical=category_counts(store, src, layouts=layouts),
                         nulls=null_counts(store, src, layouts=layouts), facts=facts)


def binned_numeric(fp: FeatureProfile, cur_edges: np.ndarray, cur_counts: np.ndarray, cur: NumStats, *,
                   bins: int | None) -> Binned:
    """Reference and current counts on ``bins`` quantile bins, or on the full grid (``bins=None``).

    ``cur_counts`` are the window's counts on ``cur_edges`` (a subset of the reference edges)."""
    lo, hi = min(fp.lo, cur.lo), max(fp.hi, cur.hi)
    if bins is None:
        if not np.array_equal(cur_edges, fp.edges):
            raise ValueError("the full-grid tests need the window summarised on the full grid (bins=None)")
        return Binned(reference=fp.counts, current=cur_counts, edges=fp.edges, lo=lo, hi=hi, scale=fp.std)
    e = coarse_bins(fp, bins)
    return Binned(reference=regroup(fp.edges, fp.counts, e), current=regroup(cur_edges, cur_counts, e), edges=e,
                  lo=lo, hi=hi, scale=fp.std)


def binned_categorical(fp: FeatureProfile, n: int, top: Mapping[str, int]) -> Binned:
    """Reference categories plus an "other" bucket; categories the reference never had are ``new``
    (only known when the reference stored all of its categories)."""
    cats = list(fp.categories)
    ref = list(fp.category_counts)
    cur = [top.get(c, 0) for c in cats]
    other_cur = n - sum(cur)
    complete = fp.other_count == 0
    new = {k: v for k, v in top.items() if k not in set(cats)} if complete else {}
    if fp.other_count or other_cur:
        cats.append(OTHER)
        ref.append(fp.other_count)
        cur.append(other_cur)
    return Binned(reference=np.asarray(ref), current=np.asarray(cur), kind="categorical", labels=tuple(cats), new=new)


def _run(test: StatTest, cfg: TestConfig, b: Binned, subject: str) -> Result:
    thr = cfg.threshold if cfg.threshold is not None else test.default_threshold
    n = b.n_current
    try:
        v = test(b, **cfg.params)
    except NotApplicable as exc:
        return Result.no_data("drift", subject, test.name, str(exc), threshold=thr, sample_size=n)
    except (ValueError, ArithmeticError) as exc:
        return Result(detector="drift", subject=subject, test=test.name, value=None, threshold=thr, status=ERROR,
                      sample_size=n, detail={"reason": f"{type(exc).__name__}: {exc}"})
    detail: dict[str, Any] = {"reference_n": b.n_reference, "current_n": n, "params": dict(cfg.params)}
    if b.kind == "numeric" and test.name not in FINE_TESTS:
        detail["edges"] = b.edges
    if b.kind == "categorical":
        detail["categories"] = shown_categories(b.labels)[:50]
        if test.name == "new_categories":
            detail["new"] = dict(sorted(b.new.items(), key=lambda kv: -kv[1])[:20])
    if test.name in ("psi", "js", "kl", "chisquare"):
        detail["reference_share"] = (b.reference / b.reference.sum()).round(6)[:51]
        detail["current_share"] = (b.current / b.current.sum()).round(6)[:51]
    if test.name == "ks":
        detail["p_value"] = ks_pvalue(b, v)
    if not np.isfinite(v):
        return Result(detector="drift", subject=subject, test=test.name, value=v, threshold=thr, status=ALERT,
                      sample_size=n, detail=detail)
    return Result(detector="drift", subject=subject, test=test.name, value=v, threshold=thr,
                  status=ALERT if test.alerts(v, thr) else OK, sample_size=n, detail=detail)


def drift_results(profile: Profile, cur: WindowSummary, config: DriftConfig | None = None, *,
                  registry: Registry = DEFAULT_REGISTRY, features: set[str] | None = None) -> list[Result]:
    """Every configured test for every feature of the reference and of the window."""
    cfg = config or DriftConfig()
    tests = [(registry.get(name), tc) for name, tc in cfg.tests.items()]
    out: list[Result] = []
    seen = set(cur.numeric) | set(cur.categorical)
    names = sorted(set(profile.features) | seen) if features is None else sorted(features)
    for f in names:
        fp = profile.features.get(f)
        kind = fp.kind if fp and fp.kind != "null" else ("categorical" if f in cur.categorical else "numeric")
        applicable = [(t, tc) for t, tc in tests if kind in t.kinds]
        if fp is None:
            out += [Result.no_data("drift", f, t.name, "feature not in the reference", sample_size=_n(cur, f, kind),
                                   threshold=_thr(t, tc)) for t, tc in applicable]
            continue
        n_cur = _n(cur, f, kind)
        if cur.rows == 0:
            reason = "no rows in the window"
        elif fp.n < cfg.min_count:
            reason = f"{fp.n} reference values (< {cfg.min_count}): all-null or too few in the reference"
        elif n_cur < cfg.min_count:
            reason = f"{n_cur} current values (< {cfg.min_count})" + (": all null or absent" if n_cur == 0 else "")
        else:
            reason = ""
        if reason:
            out += [Result.no_data("drift", f, t.name, reason, sample_size=n_cur, threshold=_thr(t, tc),
                                   reference_n=fp.n) for t, tc in applicable]
            continue
        for t, tc in applicable:
            if kind == "numeric":
                b = binned_numeric(fp, cur.edges[f], cur.fine[f], cur.numeric[f],
                                   bins=None if t.name in FINE_TESTS else cfg.bins)
            else:
                n, _, top = cur.categorical[f]
                b = binned_categorical(fp, n, top)
            out.append(_run(t, tc, b, f))
    return out


def _thr(t: StatTest, tc: TestConfig) -> float:
    return tc.threshold if tc.threshold is not None else t.default_threshold


def _n(cur: WindowSummary, f: str, kind: str) -> int:
    if kind == "numeric":
        s = cur.numeric.get(f)
        return s.n if s else 0
    c = cur.categorical.get(f)
    return c[0] if c else 0
