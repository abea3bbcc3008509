"""Multivariate drift on synthetic arrays: PCA reconstruction error, its calibrated band, the domain classifier."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from detectors.multivariate import (
    MultivariateConfig,
    Sample,
    auc_threshold,
    calibrate,
    domain_auc,
    encode,
    encoding_of,
    fit_pca,
    out_of_fold_errors,
    reference_band,
    score_samples,
)
from detectors.runner import DetectorConfig


def _correlated(rng: np.random.Generator, n: int, *, broken: bool = False, extra: int = 3) -> np.ndarray:
    x1 = rng.normal(size=n)
    x2 = x1 + 0.3 * rng.normal(size=n)
    if broken:                                   # the same marginal, the relation to x1 gone
        x2 = rng.permutation(x2)
    return np.column_stack([x1, x2, *(rng.normal(size=n) for _ in range(extra))])


def _sample(x: np.ndarray, cats: Sequence[str | None] | None = None) -> Sample:
    num = {f"x{i + 1}": x[:, i] for i in range(x.shape[1])}
    return Sample(len(x), num, {"c": list(cats)} if cats is not None else {})


def test_reconstruction_error_matches_sklearn_scaler_and_pca() -> None:
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(0)
    ref, cur = _correlated(rng, 2000), _correlated(rng, 500, broken=True)
    model = fit_pca(ref, 0.65)
    scaler = StandardScaler().fit(ref)
    pca = PCA(n_components=0.65, svd_solver="full").fit(scaler.transform(ref))
    z = scaler.transform(cur)
    expected = np.linalg.norm(z - pca.inverse_transform(pca.transform(z)), axis=1)
    assert model.components.shape[0] == pca.n_components_
    assert model.explained >= 0.65
    np.testing.assert_allclose(model.row_errors(cur), expected, rtol=1e-6, atol=1e-9)


def test_missing_values_are_imputed_with_the_reference_means() -> None:
    rng = np.random.default_rng(1)
    ref = _correlated(rng, 1000, extra=0)
    model = fit_pca(ref, 0.99)
    row = np.array([[np.nan, np.nan]])
    assert model.row_errors(row)[0] == pytest.approx(0.0, abs=1e-9)     # the mean row reconstructs exactly
    assert np.isfinite(model.row_errors(np.array([[np.nan, 3.0]]))).all()


def test_a_structure_of_lower_rank_reconstructs_exactly() -> None:
    rng = np.random.default_rng(2)
    a = rng.normal(size=(500, 2))
    x = np.column_stack([a[:, 0], a[:, 1], a[:, 0] - 2 * a[:, 1]])       # rank 2 in 3 columns
    model = fit_pca(x, 0.999)
    assert model.components.shape[0] == 2
    assert model.row_errors(x).max() < 1e-9


def test_chunk_band_is_mean_plus_minus_k_sigma_when_wider_than_the_sampling_floor() -> None:
    rng = np.random.default_rng(3)
    errors = rng.gamma(2.0, 1.0, 10_000)
    errors[:5000] += np.repeat(rng.normal(0, 0.5, 50), 100)   # chunk-level variability beyond sampling
    band = calibrate(errors, 100, k=3, false_alert_rate=0.01)
    means = errors.reshape(100, 100).mean(axis=1)
    assert band.method == "calibrated:chunks"
    assert band.detail["chunks"] == 100
    assert band.upper == pytest.approx(means.mean() + 3 * means.std(ddof=1))
    assert band.lower == pytest.approx(means.mean() - 3 * means.std(ddof=1))


def test_few_chunks_are_floored_by_the_sampling_band() -> None:
    errors = np.array([1.0, 1.1, 0.9, 1.0] * 250)          # 1000 rows: two chunks of 500 with equal means
    band = calibrate(errors, 500, k=3, false_alert_rate=0.01)
    assert band.detail["chunks"] == 2 and band.detail["chunk_sd"] == pytest.approx(0.0)
    assert band.method == "calibrated:chunks+sampling_floor"
    half = 2.5758 * errors.std(ddof=1) * np.sqrt(1 / 500 + 1 / 1000)
    assert band.upper == pytest.approx(1.0 + half, rel=1e-4) and band.lower == pytest.approx(1.0 - half, rel=1e-4)
    one = calibrate(errors, 1000, k=3, false_alert_rate=0.01)      # not two chunks: the sampling band alone
    assert one.method == "calibrated:sampling" and one.detail["chunks"] == 1


def test_stationary_windows_rarely_leave_the_calibrated_band() -> None:
    rng = np.random.default_rng(4)
    ref = _correlated(rng, 3000)
    model = fit_pca(ref, 0.65)
    band = calibrate(out_of_fold_errors(ref, 0.65, 5), 1000, k=3, false_alert_rate=0.01)
    outside = sum(not band.lower <= model.row_errors(_correlated(rng, 1000)).mean() <= band.upper
                  for _ in range(300))
    assert outside <= 9                                              # ≤ 3% of 300 (the target is 1%)
    broken = [model.row_errors(_correlated(rng, 1000, broken=True)).mean() for _ in range(20)]
    assert min(broken) > band.upper


def test_heavy_tailed_stationary_windows_rarely_leave_the_band() -> None:
    rng = np.random.default_rng(9)

    def heavy(n: int) -> np.ndarray:
        z = rng.normal(size=(n, 3))
        return np.column_stack([np.exp(z[:, 0]), np.exp(z[:, 0] + 0.5 * z[:, 1]), rng.poisson(2, n),
                                rng.integers(0, 2, n), rng.standard_t(3, n), z[:, 2] ** 2])

    cfg = MultivariateConfig()
    outside = 0
    for _ in range(100):           # a new reference each time: out-of-fold errors alone left 43 of 100, fitted 6
        ref = heavy(5000)
        model = fit_pca(ref, cfg.variance)
        band = reference_band(ref, model, 5000, cfg)
        outside += not band.lower <= model.row_errors(heavy(5000)).mean() <= band.upper
    assert outside <= 4


def test_auc_threshold_is_the_mann_whitney_bound_or_the_minimum_effect() -> None:
    thr, sd = auc_threshold(5000, 5000, false_alert_rate=0.01, min_auc=0.55)
    assert sd == pytest.approx(np.sqrt(10001 / (12 * 5000 * 5000)))
    assert thr == 0.55                                               # large samples: the minimum effect decides
    thr, sd = auc_threshold(100, 100, false_alert_rate=0.01, min_auc=0.55)
    assert thr == pytest.approx(0.5 + 2.3263 * sd, rel=1e-4) and thr > 0.55


def test_domain_classifier_separates_a_broken_correlation_and_not_the_same_distribution() -> None:
    rng = np.random.default_rng(5)
    ref = _correlated(rng, 1500)
    same, _ = domain_auc(ref, _correlated(rng, 1500), folds=5, seed=0)
    auc, top = domain_auc(ref, _correlated(rng, 1500, broken=True), folds=5, seed=0,
                          columns=["x1", "x2", "x3", "x4", "x5"], explain_above=0.55)
    assert abs(same - 0.5) < 0.04
    assert auc > 0.7
    assert {t["feature"] for t in top[:2]} == {"x1", "x2"}
    again, _ = domain_auc(ref, _correlated(np.random.default_rng(5), 1500), folds=5, seed=0)
    assert domain_auc(ref, _correlated(np.random.default_rng(5), 1500), folds=5, seed=0)[0] == again  # seeded


def test_null_auc_stays_below_the_calibrated_threshold() -> None:
    rng = np.random.default_rng(6)
    thr, _ = auc_threshold(150, 150, false_alert_rate=0.01, min_auc=0.5)
    aucs = [domain_auc(rng.normal(size=(150, 3)), rng.normal(size=(150, 3)), folds=3, seed=i)[0] for i in range(30)]
    assert sum(a >= thr for a in aucs) <= 1
    assert 0.45 < float(np.mean(aucs)) < 0.53


def test_categories_are_encoded_by_reference_frequency() -> None:
    ref = Sample(6, {"x1": np.arange(6.0)}, {"c": ["a", "a", "a", "b", "z", None]})
    enc = encoding_of(ref, max_categories=2)
    assert enc.columns == ("x1", "c")
    cur = Sample(4, {"x1": np.array([0.0, 1.0, np.nan, 2.0])}, {"c": ["b", "new", None, "a"]})
    m = encode(cur, enc)
    np.testing.assert_allclose(m[:, 1], [0.2, 0.2, 0.6, 0.6])   # 'new' and 'z' share the rest; None: the mode
    assert np.isnan(m[2, 0])


def test_score_samples_catches_a_correlation_break_with_the_same_marginals() -> None:
    rng = np.random.default_rng(7)
    cfg = MultivariateConfig(sample=2000)
    cats = [str(c) for c in rng.choice(["u", "v", "w"], 2000)]
    ref = _sample(_correlated(rng, 2000), cats)
    same = {r.test: r for r in score_samples(ref, _sample(_correlated(rng, 2000), cats), cfg)}
    broken = {r.test: r for r in score_samples(ref, _sample(_correlated(rng, 2000, broken=True), cats), cfg)}
    assert {t: r.status for t, r in same.items()} == {"pca_reconstruction": "ok", "domain_classifier": "ok"}
    assert {t: r.status for t, r in broken.items()} == {"pca_reconstruction": "alert", "domain_classifier": "alert"}
    pca = broken["pca_reconstruction"]
    assert pca.detail["threshold_method"].startswith("calibrated:") and pca.detail["chunks"] == 1
    assert pca.detail["features"] == 6 and pca.detail["categorical_features"] == 1
    assert {t["feature"] for t in pca.detail["top_features"][:2]} == {"x1", "x2"}
    assert broken["domain_classifier"].value == broken["domain_classifier"].detail["auc"] > 0.55


def test_small_samples_and_single_features_are_not_enough_data() -> None:
    rng = np.random.default_rng(8)
    cfg = MultivariateConfig(min_rows=200)
    small = score_samples(_sample(_correlated(rng, 1000)), _sample(_correlated(rng, 150)), cfg)
    assert [r.status for r in small] == ["not enough data"] * 2
    assert "window sample has 150 rows" in small[0].detail["reason"]
    one = score_samples(_sample(rng.normal(size=(500, 1))), _sample(rng.normal(size=(500, 1))), cfg)
    assert [r.status for r in one] == ["not enough data"] * 2 and "needs 2" in one[0].detail["reason"]
    only = score_samples(_sample(_correlated(rng, 500)), _sample(_correlated(rng, 500)),
                         MultivariateConfig(tests=["pca_reconstruction"]))
    assert [r.test for r in only] == ["pca_reconstruction"]


@pytest.mark.parametrize(("field", "value"), [("sample", 0), ("variance", 1.5), ("k", -1), ("tests", ["pca"]),
                                              ("min_auc", 0.4), ("folds", 1), ("false_alert_rate", 0.0),
                                              ("sample", "5000")])
def test_bad_config_names_the_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=f"multivariate.{field}"):
        kw: dict[str, Any] = {field: value}
        MultivariateConfig(**kw)


def test_unknown_settings_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match="multivariate.samples: unknown setting"):
        DetectorConfig.from_dict({"multivariate": {"samples": 10}})
    with pytest.raises(ValueError, match="not a mapping"):
        DetectorConfig.from_dict({"multivariate": [1]})


def test_detector_config_reads_the_multivariate_block() -> None:
    cfg = DetectorConfig.from_dict({"multivariate": {"sample": 1000, "variance": 0.8, "k": 2,
                                                     "tests": ["domain_classifier"]}})
    assert cfg.multivariate == MultivariateConfig(sample=1000, variance=0.8, k=2, tests=("domain_classifier",))
    assert "multivariate" not in DetectorConfig().detectors
