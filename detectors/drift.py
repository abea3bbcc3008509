"""Drift of every feature, the prediction and the label: current window against a reference profile.

The window is summarised once in SQL (:class:`WindowSummary`: counts on the reference bins,
category counts, a few numbers per feature) and every configured test runs on those counts. A
feature whose reference edges come from a counting grid is counted with the grid's code (one
multiplication per value, whatever the number of edges); the others compare values with the edges.
PSI, KL and JS use ``bins`` reference-quantile bins (default 10); KS and Wasserstein use the full
100-quantile grid (see :mod:`detectors.stattests` for what that approximates).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from collector.store import Store
from detectors.calibration import CalibrationInputs, K, calibrate
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
    adjust_pvalues,
    ks_pvalue,
    shown_categories,
)

__all__ = ["FINE_TESTS", "TestConfig", "DriftConfig", "auto_test", "adjust_results", "WindowSummary",
           "summarize_window", "drift_results",
           "binned_numeric", "binned_categorical"]

FINE_TESTS = frozenset({"ks", "ks_p", "wasserstein"})
MULTIPLE_TESTING = ("bh", "holm", "none")
#: Window sizes up to this use p-value tests under ``tests="auto"``, larger ones effect-size tests (Evidently's
#: rule, which looks at the reference size; here the window decides, as it sets the p-value's power).
AUTO_SMALL = 1000


@dataclass(frozen=True, kw_only=True)
class TestConfig:
    threshold: float | None = None             # None: the test's default threshold
    params: Mapping[str, Any] = field(default_factory=dict)
    calibrated: bool = False                   # threshold from the reference's chunks, history or sampling
    k: float = K                               # calibrated: mean + k sigma
    fallback: float | None = None              # calibrated: the fixed threshold of the last resort
    min_effect: float | None = None            # p-value tests: no alert under this effect size (None: the test's)

    @classmethod
    def parse(cls, name: str, v: Any) -> TestConfig:
        """``0.2``, ``None``, ``"calibrated"`` or ``{"threshold": 0.2 | "calibrated", "k": 3, "fallback": 0.2,
        "min_effect": 0.1, **params}``."""
        if not isinstance(v, Mapping):
            v = {"threshold": v}
        v = dict(v)
        thr = v.pop("threshold", None)
        kw: dict[str, Any] = {}
        for key in ("k", "fallback", "min_effect"):
            if key in v:
                kw[key] = _number(f"tests.{name}.{key}", v.pop(key))
        if thr == "calibrated":
            return cls(calibrated=True, params=v, **kw)
        return cls(threshold=None if thr is None else _number(f"tests.{name}.threshold", thr), params=v, **kw)


def _number(where: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise ValueError(f"{where}: {v!r} is not a finite number")
    return float(v)


@dataclass(frozen=True, kw_only=True)
class DriftConfig:
    """Which tests run, with which thresholds. ``tests`` accepts ``{"psi": 0.2}``,
    ``{"psi": {"threshold": 0.2, "smoothing": 1e-4}}``, ``{"psi": None}`` (default threshold),
    ``{"psi": {"threshold": "calibrated", "k": 3}}`` (:mod:`detectors.calibration`) or ``"auto"`` (one test per
    feature by kind, cardinality and window size: :func:`auto_test`). ``threshold="calibrated"``: every test
    without an explicit threshold is calibrated. ``multiple_testing``: adjustment of the p-value tests across the
    features of one run (``bh``, ``holm`` or ``none``); ``alpha``: the p-value tests' default threshold."""

    tests: Mapping[str, TestConfig] = field(default_factory=lambda: {
        "psi": TestConfig(), "ks": TestConfig(), "wasserstein": TestConfig(), "js": TestConfig(),
        "chisquare": TestConfig(), "new_categories": TestConfig(), "vanished_categories": TestConfig()})
    bins: int = 10
    min_count: int = 50
    auto: bool = False
    calibrate: bool = False
    multiple_testing: str = "bh"
    alpha: float = 0.05

    def __post_init__(self) -> None:
        if self.multiple_testing not in MULTIPLE_TESTING:
            raise ValueError(f"multiple_testing: {self.multiple_testing!r} is not one of {MULTIPLE_TESTING}")
        if not 0 < self.alpha < 1:
            raise ValueError(f"alpha: {self.alpha!r} is not within (0, 1)")

    @property
    def needs_full_grid(self) -> bool:
        return self.auto or any(name in FINE_TESTS for name in self.tests)

    @property
    def calibrated_any(self) -> bool:
        return self.calibrate or any(tc.calibrated for tc in self.tests.values())

    def test_config(self, name: str) -> TestConfig:
        tc = self.tests.get(name, TestConfig())
        if self.calibrate and tc.threshold is None and not tc.calibrated:
            tc = replace(tc, calibrated=True)
        return tc

    @classmethod
    def parse(cls, tests: Mapping[str, Any] | str | None = None, *, threshold: str | None = None,
              **kw: Any) -> DriftConfig:
        if threshold not in (None, "calibrated", "fixed"):
            raise ValueError(f"threshold: {threshold!r} is not 'calibrated' or 'fixed'")
        kw["calibrate"] = threshold == "calibrated"
        if tests == "auto":
            return cls(auto=True, tests={}, **kw)
        if isinstance(tests, str):
            raise ValueError(f"tests: {tests!r} is not 'auto' or a mapping of test names")
        if tests is None:
            return cls(**kw)
        return cls(tests={name: TestConfig.parse(name, v) for name, v in tests.items()}, **kw)


def auto_test(kind: str, fp: FeatureProfile, n: int) -> str:
    """The test of ``tests="auto"`` for a feature (Evidently's rule): at most 2 values: the z-test on small windows,
    Jensen-Shannon on large ones; numeric with more than 5 values: KS p-value (small), Wasserstein (large);
    else chi-square (small; KS p-value for a numeric feature) or Jensen-Shannon (large)."""
    values = fp.distinct if kind == "categorical" else int(np.count_nonzero(fp.counts))
    small = n <= AUTO_SMALL
    if values <= 2:
        return "z" if small else "js"
    if kind == "numeric" and values > 5:
        return "ks_p" if small else "wasserstein"
    if not small:
        return "js"
    return "chisquare" if kind == "categorical" else "ks_p"


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


def _run(test: StatTest, cfg: TestConfig, b: Binned, subject: str, *, fixed: float, cal: Mapping[str, Any] | None,
         primary: bool) -> Result:
    n = b.n_current
    base: dict[str, Any] = {"threshold_method": "fixed", **({"primary": True} if primary else {})}
    try:
        v = test(b, **cfg.params)
    except NotApplicable as exc:
        return Result.no_data("drift", subject, test.name, str(exc), threshold=fixed, sample_size=n, **base)
    except (ValueError, ArithmeticError) as exc:
        return Result(detector="drift", subject=subject, test=test.name, value=None, threshold=fixed, status=ERROR,
                      sample_size=n, detail={"reason": f"{type(exc).__name__}: {exc}", **base})
    detail: dict[str, Any] = {"reference_n": b.n_reference, "current_n": n, "params": dict(cfg.params), **base}
    if b.kind == "numeric" and test.name not in FINE_TESTS:
        detail["edges"] = b.edges
    if b.kind == "categorical":
        detail["categories"] = shown_categories(b.labels)[:50]
        if test.name == "new_categories":
            detail["new"] = dict(sorted(b.new.items(), key=lambda kv: -kv[1])[:20])
    if test.name in ("psi", "js", "kl", "chisquare", "z"):
        detail["reference_share"] = (b.reference / b.reference.sum()).round(6)[:51]
        detail["current_share"] = (b.current / b.current.sum()).round(6)[:51]
    if test.name == "ks":
        detail["p_value"] = ks_pvalue(b, v)
    thr = fixed
    min_effect = cfg.min_effect if cfg.min_effect is not None else test.min_effect
    if cal is not None:
        th = calibrate(test, b, cfg.params, k=cfg.k, fallback=fixed, seed_key=subject, minimum=min_effect, **cal)
        thr = th.value
        detail["threshold_method"], detail["calibration"] = th.method, dict(th.detail)
    alert = not np.isfinite(v) or test.alerts(v, thr)
    if test.pvalue:
        detail["p_value"] = v
        if test.effect is not None:
            try:
                detail["effect_size"] = test.effect(b)
            except (ValueError, ArithmeticError):
                pass
        detail["min_effect"] = min_effect
        if alert and not _large_enough(detail):
            alert = False
            detail["gated"] = "significant, but the effect size is below min_effect"
    return Result(detector="drift", subject=subject, test=test.name, value=v, threshold=thr,
                  status=ALERT if alert else OK, sample_size=n, detail=detail)


def _large_enough(detail: Mapping[str, Any]) -> bool:
    e = detail.get("effect_size")
    return e is None or not np.isfinite(e) or e >= detail.get("min_effect", 0.0)


def adjust_results(results: list[Result], method: str, registry: Registry = DEFAULT_REGISTRY) -> list[Result]:
    """The p-value tests of ``results`` (one run, every feature) adjusted for multiple testing: ``p_adjusted`` in
    the detail, the status from it (against each result's threshold; the effect-size gate still applies)."""
    idx = [i for i, r in enumerate(results) if r.value is not None and r.status in (OK, ALERT)
           and r.test in registry and registry.get(r.test).pvalue]
    if method == "none" or not idx:
        return results
    adj = adjust_pvalues([float(results[i].value or 0.0) for i in idx], method)   # idx: values not None
    out = list(results)
    for i, pa in zip(idx, adj, strict=True):
        r = results[i]
        alert = bool(pa < r.threshold) if r.threshold is not None else r.status == ALERT
        detail = {**r.detail, "p_adjusted": float(pa), "multiple_testing": method, "family": len(idx)}
        if alert and not _large_enough(detail):
            alert = False
            detail["gated"] = "significant, but the effect size is below min_effect"
        elif not alert:
            detail.pop("gated", None)
        out[i] = replace(r, status=ALERT if alert else OK, detail=detail)
    return out


def drift_results(profile: Profile, cur: WindowSummary, config: DriftConfig | None = None, *,
                  registry: Registry = DEFAULT_REGISTRY, features: set[str] | None = None,
                  calibration: CalibrationInputs | None = None) -> list[Result]:
    """Every configured test for every feature of the reference and of the window (with ``tests="auto"`` one test
    per feature), the first one applicable to the feature marked ``primary``; p-value tests adjusted across the
    features (``config.multiple_testing``). ``calibration``: the chunks and history read from the store for the
    calibrated tests (without it they calibrate on sampling alone)."""
    cfg = config or DriftConfig()
    tests = [(registry.get(name), cfg.test_config(name)) for name in cfg.tests]
    out: list[Result] = []
    seen = set(cur.numeric) | set(cur.categorical)
    names = sorted(set(profile.features) | seen) if features is None else sorted(features)
    for f in names:
        fp = profile.features.get(f)
        kind = fp.kind if fp and fp.kind != "null" else ("categorical" if f in cur.categorical else "numeric")
        n_cur = _n(cur, f, kind)
        if cfg.auto:
            name = auto_test(kind, fp, n_cur) if fp is not None else ("js" if kind == "categorical" else "wasserstein")
            applicable = [(registry.get(name), cfg.test_config(name))]
        else:
            applicable = [(t, tc) for t, tc in tests if kind in t.kinds]
        if fp is None:
            out += [Result.no_data("drift", f, t.name, "feature not in the reference", sample_size=n_cur,
                                   threshold=_thr(t, tc, cfg), threshold_method="fixed", **_primary(i))
                    for i, (t, tc) in enumerate(applicable)]
            continue
        if cur.rows == 0:
            reason = "no rows in the window"
        elif fp.n < cfg.min_count:
            reason = f"{fp.n} reference values (< {cfg.min_count}): all-null or too few in the reference"
        elif n_cur < cfg.min_count:
            reason = f"{n_cur} current values (< {cfg.min_count})" + (": all null or absent" if n_cur == 0 else "")
        else:
            reason = ""
        if reason:
            out += [Result.no_data("drift", f, t.name, reason, sample_size=n_cur, threshold=_thr(t, tc, cfg),
                                   reference_n=fp.n, threshold_method="fixed", **_primary(i))
                    for i, (t, tc) in enumerate(applicable)]
            continue
        for i, (t, tc) in enumerate(applicable):
            bins = None if t.name in FINE_TESTS else cfg.bins
            if kind == "numeric":
                b = binned_numeric(fp, cur.edges[f], cur.fine[f], cur.numeric[f], bins=bins)
            else:
                n, _, top = cur.categorical[f]
                b = binned_categorical(fp, n, top)
            cal = None
            if tc.calibrated:
                cal = calibration.for_feature(f, t, b, bins, fp.edges) if calibration is not None else {}
            out.append(_run(t, tc, b, f, fixed=_thr(t, tc, cfg), cal=cal, primary=i == 0))
    return adjust_results(out, cfg.multiple_testing, registry)


def _primary(i: int) -> dict[str, Any]:
    return {"primary": True} if i == 0 else {}


def _thr(t: StatTest, tc: TestConfig, cfg: DriftConfig | None = None) -> float:
    if tc.threshold is not None:
        return tc.threshold
    if tc.fallback is not None:
        return tc.fallback
    if t.pvalue and cfg is not None:
        return cfg.alpha
    return t.default_threshold


def _n(cur: WindowSummary, f: str, kind: str) -> int:
    if kind == "numeric":
        s = cur.numeric.get(f)
        return s.n if s else 0
    c = cur.categorical.get(f)
    return c[0] if c else 0
