"""Calibration rules, multiple testing, effect-size gating and the automatic test choice (pure, no store)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from detectors import drift
from detectors.calibration import MIN_CHUNKS, MIN_HISTORY, calibrate, sampling_floor, score
from detectors.drift import DriftConfig, WindowSummary, adjust_results, auto_test, drift_results
from detectors.reference import FeatureProfile, Profile
from detectors.results import Result
from detectors.stattests import DEFAULT_REGISTRY, Binned, adjust_pvalues


def _num(ref: np.ndarray, cur: np.ndarray) -> Binned:
    k = ref.size
    return Binned(reference=ref, current=cur, edges=np.arange(1.0, k), lo=0.0, hi=float(k), scale=2.0)


@pytest.mark.parametrize("name", ["psi", "kl", "js", "ks", "ks_p", "wasserstein", "chisquare"])
def test_row_forms_equal_the_single_value_functions(name: str) -> None:
    t = DEFAULT_REGISTRY.get(name)
    rng = np.random.default_rng(1)
    ref = rng.integers(50, 500, 12).astype(float)
    rows = rng.integers(0, 300, (6, 12)).astype(float)
    kind = "categorical" if name == "chisquare" else "numeric"
    b = _num(ref, rows[0]) if kind == "numeric" else Binned(reference=ref, current=rows[0], kind="categorical")
    assert t.rows is not None
    got = t.rows(b, rows)
    for i, row in enumerate(rows):
        one = t.fn(_num(ref, row) if kind == "numeric" else Binned(reference=ref, current=row, kind="categorical"))
        assert got[i] == pytest.approx(one, rel=1e-9, abs=1e-12)


def test_z_test_equals_the_pooled_two_proportion_formula() -> None:
    b = Binned(reference=np.array([600.0, 400.0]), current=np.array([250.0, 250.0]), kind="categorical")
    p1, p2, pool = 0.6, 0.5, 850 / 1500
    z = (p2 - p1) / np.sqrt(pool * (1 - pool) * (1 / 1000 + 1 / 500))
    assert DEFAULT_REGISTRY.get("z").fn(b) == pytest.approx(2 * stats.norm.sf(abs(z)), rel=1e-12)


def test_bh_and_holm_match_scipy_and_hand_values() -> None:
    p = np.array([0.01, 0.04, 0.03, 0.2, 0.001])
    assert adjust_pvalues(p, "bh") == pytest.approx(stats.false_discovery_control(p, method="bh"))
    # Holm by hand: sorted 0.001, 0.01, 0.03, 0.04, 0.2 times 5, 4, 3, 2, 1, running max, capped at 1
    assert adjust_pvalues(p, "holm") == pytest.approx([0.04, 0.09, 0.09, 0.2, 0.005])
    assert adjust_pvalues(p, "none") == pytest.approx(p)
    with pytest.raises(ValueError, match="multiple_testing"):
        adjust_pvalues(p, "bonferroni-ish")


def test_sampling_floor_keeps_stationary_false_alerts_near_half_a_percent() -> None:
    rng = np.random.default_rng(7)
    props = rng.dirichlet(np.ones(10) * 5)
    ref = rng.multinomial(50_000, props).astype(float)
    t = DEFAULT_REGISTRY.get("psi")
    floor = sampling_floor(t, _num(ref, rng.multinomial(2000, props).astype(float)), {}, seed=1)
    # chi-square approximation: PSI ~ (1/n + 1/N) chi2(B - 1); the 99.5% quantile within 15%
    assert floor == pytest.approx((1 / 2000 + 1 / 50_000) * stats.chi2.ppf(0.995, 9), rel=0.15)
    windows = rng.multinomial(2000, props, size=4000).astype(float)
    assert t.rows is not None
    assert np.mean(t.rows(_num(ref, windows[0]), windows) >= floor) <= 0.01


@pytest.mark.parametrize("shape", [0.5, 1.0, 4.5, 50.0])
def test_the_gamma_quantile_approximation_is_within_one_percent(shape: float) -> None:
    from detectors.calibration import _gamma_quantile

    assert _gamma_quantile(0.995, shape, 2.0) == pytest.approx(stats.gamma.ppf(0.995, shape, scale=2.0), rel=0.01)


def test_the_calibration_rule_chunks_then_history_then_sampling_then_fixed() -> None:
    t = DEFAULT_REGISTRY.get("psi")
    rng = np.random.default_rng(2)
    props = np.full(10, 0.1)
    ref = rng.multinomial(100_000, props).astype(float)
    b = _num(ref, rng.multinomial(5000, props).astype(float))
    # chunks that vary a lot more than sampling noise: mean + 3 sigma of their PSI
    chunks = np.array([rng.multinomial(5000, rng.dirichlet(props * 400)) for _ in range(12)], dtype=float)
    th = calibrate(t, b, {}, fallback=0.2, chunks=chunks, chunk_size=5000)
    assert t.rows is not None
    s = t.rows(b, chunks)
    assert th.method == "calibrated:chunks" and th.detail["chunks"] == 12 and th.detail["chunk_size"] == 5000
    assert th.value == pytest.approx(s.mean() + 3 * s.std(ddof=1))
    # too few chunks: the history (mean + k sigma, here under the floor: the floor wins)
    hist = np.full(MIN_HISTORY, 1e-5) + np.arange(MIN_HISTORY) * 1e-7
    th = calibrate(t, b, {}, fallback=0.2, chunks=chunks[:MIN_CHUNKS - 1], history=hist, k=2)
    assert th.method == "calibrated:history" and th.detail["floored"] and th.value == th.detail["floor"]
    assert th.detail["chunks_skipped"].startswith(f"{MIN_CHUNKS - 1} usable")
    th = calibrate(t, b, {}, fallback=0.2, history=hist[:3])
    assert th.method == "calibrated:sampling" and 0 < th.value < 0.01
    # no sampling distribution (a constant reference: Wasserstein is undefined): the fixed fallback
    const = Binned(reference=np.array([0.0, 100.0, 0.0]), current=np.array([0.0, 90.0, 0.0]),
                   edges=np.array([1.0, 2.0]), lo=1.0, hi=1.0, scale=0.0)
    th = calibrate(DEFAULT_REGISTRY.get("wasserstein"), const, {}, fallback=0.3)
    assert th.method == "fixed" and th.value == 0.3


def test_a_calibrated_distance_threshold_never_goes_under_the_tests_min_effect() -> None:
    t = DEFAULT_REGISTRY.get("psi")
    rng = np.random.default_rng(5)
    ref = rng.multinomial(1_000_000, np.full(10, 0.1)).astype(float)
    b = _num(ref, rng.multinomial(100_000, np.full(10, 0.1)).astype(float))
    th = calibrate(t, b, {}, fallback=0.2, minimum=t.min_effect)      # sampling alone: about 2e-4
    assert th.value == t.min_effect == 0.05 and th.detail["calibrated"] < 1e-3
    assert th.method == "calibrated:sampling" and th.detail["at_min_effect"] == 0.05
    assert calibrate(t, b, {}, fallback=0.2, minimum=0.0).value < 1e-3


def test_p_value_tests_calibrate_on_minus_log10_p() -> None:
    t = DEFAULT_REGISTRY.get("chisquare")
    assert score(t, 1e-3) == pytest.approx(3.0)
    rng = np.random.default_rng(4)
    ref = rng.multinomial(100_000, [0.5, 0.3, 0.2]).astype(float)
    b = Binned(reference=ref, current=rng.multinomial(1000, [0.5, 0.3, 0.2]).astype(float), kind="categorical")
    th = calibrate(t, b, {}, fallback=0.05)
    # under the null the p-value is uniform: the 99.5% quantile of -log10(p) is p = 0.005 (the gamma fit: near it)
    assert th.method == "calibrated:sampling" and 0.001 < th.value < 0.015


def _cat_profile(counts: dict[str, int]) -> Profile:
    fp = FeatureProfile(feature="c", kind="categorical", n=sum(counts.values()), categories=tuple(counts),
                        category_counts=tuple(counts.values()), distinct=len(counts))
    return Profile(model="m", name="r", source="upload", rows=fp.n, features={"c": fp})


def _cat_window(counts: dict[str, int]) -> WindowSummary:
    n = sum(counts.values())
    return WindowSummary(rows=n, numeric={}, edges={}, fine={}, categorical={"c": (n, len(counts), counts)},
                         nulls={}, facts={})


def test_a_significant_p_value_with_a_small_effect_does_not_alert() -> None:
    prof = _cat_profile({"a": 500_000, "b": 300_000, "c": 200_000})
    cur = _cat_window({"a": 51_500, "b": 29_000, "c": 19_500})          # significant, PSI about 0.0005
    cfg = DriftConfig.parse({"chisquare": None}, multiple_testing="none")
    (r,) = drift_results(prof, cur, cfg)
    assert r.value is not None and r.value < 1e-6 and r.status == "ok" and r.detail["effect_size"] < 0.01
    assert r.detail["gated"] and r.detail["min_effect"] == 0.05 and r.detail["primary"] is True
    (r,) = drift_results(prof, cur, DriftConfig.parse({"chisquare": {"min_effect": 0}}, multiple_testing="none"))
    assert r.status == "alert" and "gated" not in r.detail
    big = _cat_window({"a": 30_000, "b": 40_000, "c": 30_000})
    (r,) = drift_results(prof, big, cfg)
    assert r.status == "alert" and r.detail["effect_size"] >= 0.05


def test_multiple_testing_adjusts_across_the_features_of_a_run() -> None:
    rs = [Result(detector="drift", subject=f"f{i}", test="chisquare", value=p, threshold=0.05,
                 status="alert" if p < 0.05 else "ok", detail={"p_value": p, "effect_size": 1.0, "min_effect": 0.1})
          for i, p in enumerate([0.01, 0.04, 0.03, 0.2])]
    rs.append(Result(detector="drift", subject="f0", test="psi", value=0.3, threshold=0.2, status="alert"))
    out = adjust_results(rs, "bh")
    want = stats.false_discovery_control([0.01, 0.04, 0.03, 0.2])
    assert [r.detail["p_adjusted"] for r in out[:4]] == pytest.approx(want)
    assert [r.status for r in out] == ["alert", "ok", "ok", "ok", "alert"]        # 0.04, 0.053, 0.053, 0.2
    holm = adjust_results(rs, "holm")
    assert [r.status for r in holm[:4]] == ["alert", "ok", "ok", "ok"] and holm[4] is rs[4]
    assert adjust_results(rs, "none") is rs


def test_auto_chooses_by_kind_cardinality_and_window_size() -> None:
    cat = FeatureProfile(feature="c", kind="categorical", n=10_000, distinct=4)
    binary = FeatureProfile(feature="b", kind="categorical", n=10_000, distinct=2)
    num = FeatureProfile(feature="x", kind="numeric", n=10_000, counts=np.array([0, *([100] * 100), 0]))
    discrete = FeatureProfile(feature="d", kind="numeric", n=10_000, counts=np.array([0, 5000, 3000, 2000, 0]))
    assert [auto_test("categorical", cat, n) for n in (500, 5000)] == ["chisquare", "js"]
    assert [auto_test("categorical", binary, n) for n in (500, 5000)] == ["z", "js"]
    assert [auto_test("numeric", num, n) for n in (1000, 1001)] == ["ks_p", "wasserstein"]
    assert [auto_test("numeric", discrete, n) for n in (500, 5000)] == ["ks_p", "js"]
    prof = _cat_profile({"a": 5000, "b": 3000, "c": 2000})
    (r,) = drift_results(prof, _cat_window({"a": 250, "b": 150, "c": 100}), DriftConfig.parse("auto"))
    assert r.test == "chisquare" and r.detail["primary"] is True


def test_config_parsing_and_clear_errors() -> None:
    cfg = DriftConfig.parse({"psi": {"threshold": "calibrated", "k": 4, "fallback": 0.25, "smoothing": 1e-3},
                             "ks": 0.2, "chisquare": "calibrated"}, multiple_testing="holm", alpha=0.01)
    assert cfg.tests["psi"] == drift.TestConfig(calibrated=True, k=4.0, fallback=0.25, params={"smoothing": 1e-3})
    assert cfg.tests["ks"].threshold == 0.2 and cfg.tests["chisquare"].calibrated and cfg.calibrated_any
    assert DriftConfig.parse({"psi": None}, threshold="calibrated").test_config("psi").calibrated
    assert not DriftConfig.parse({"psi": 0.3}, threshold="calibrated").test_config("psi").calibrated
    with pytest.raises(ValueError, match=r"tests\.psi\.threshold"):
        DriftConfig.parse({"psi": {"threshold": "loud"}})
    with pytest.raises(ValueError, match=r"tests\.psi\.k"):
        DriftConfig.parse({"psi": {"threshold": "calibrated", "k": "three"}})
    with pytest.raises(ValueError, match="multiple_testing"):
        DriftConfig.parse(None, multiple_testing="bonferroni")
    with pytest.raises(ValueError, match="tests"):
        DriftConfig.parse("everything")
