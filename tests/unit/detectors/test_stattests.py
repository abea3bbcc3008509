"""Each drift test against an independent computation on the same bins (scipy, Evidently), to 1e-6."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from detectors.stattests import (
    DEFAULT_REGISTRY,
    OTHER,
    Binned,
    NotApplicable,
    Registry,
    StatTest,
    chisquare,
    js,
    kl_div,
    ks,
    new_categories,
    psi,
    vanished_categories,
    wasserstein,
)

RNG = np.random.default_rng(11)
# Importing Evidently 0.7 raises its dependencies' deprecation warnings (numpy.core, litestar): not ours.
EVIDENTLY_WARNINGS = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning")


def _hist(ref: np.ndarray, cur: np.ndarray, inner: np.ndarray) -> Binned:
    full = np.concatenate([[-np.inf], inner, [np.inf]])
    return Binned(reference=np.histogram(ref, full)[0], current=np.histogram(cur, full)[0], edges=inner,
                  lo=float(min(ref.min(), cur.min())), hi=float(max(ref.max(), cur.max())), scale=float(ref.std()))


def test_psi_matches_the_formula_with_explicit_smoothing() -> None:
    b = Binned(reference=np.array([10, 20, 30, 0]), current=np.array([5, 25, 30, 10]))
    eps = 1e-3
    r = np.array([10, 20, 30, 0]) / 60 + eps
    c = np.array([5, 25, 30, 10]) / 70 + eps
    r, c = r / r.sum(), c / c.sum()
    assert psi(b, smoothing=eps) == pytest.approx(float(np.sum((c - r) * np.log(c / r))), abs=1e-12)
    assert psi(b, smoothing=0) == np.inf  # no hidden floor: an empty bin with smoothing 0 is infinite


@EVIDENTLY_WARNINGS
def test_psi_equals_evidentlys_psi_on_evidentlys_bins_numeric() -> None:
    from evidently.legacy.calculations.stattests.psi import _psi
    from evidently.legacy.core import ColumnType

    ref = RNG.uniform(0, 1, 5000)
    cur = RNG.beta(2, 2, 4000)           # same support: every Sturges bin is non-empty on both sides
    edges = np.histogram_bin_edges(np.concatenate([ref, cur]), bins="sturges")
    b = _hist(ref, cur, edges[1:-1])
    assert (b.reference > 0).all() and (b.current > 0).all()
    ev, _ = _psi(pd.Series(ref), pd.Series(cur), ColumnType.Numerical, 0.1)
    assert psi(b, smoothing=0) == pytest.approx(float(ev), abs=1e-6)


@EVIDENTLY_WARNINGS
def test_psi_kl_js_equal_evidently_on_categorical_bins() -> None:
    from evidently.legacy.calculations.stattests.jensenshannon import _jensenshannon
    from evidently.legacy.calculations.stattests.kl_div import _kl_div
    from evidently.legacy.calculations.stattests.psi import _psi
    from evidently.legacy.core import ColumnType

    ref = pd.Series(RNG.choice(["a", "b", "c", "d"], 3000, p=[0.4, 0.3, 0.2, 0.1]))
    cur = pd.Series(RNG.choice(["a", "b", "c", "d"], 2000, p=[0.25, 0.25, 0.25, 0.25]))
    keys = ["a", "b", "c", "d"]
    b = Binned(reference=ref.value_counts()[keys].to_numpy(), current=cur.value_counts()[keys].to_numpy(),
               kind="categorical", labels=tuple(keys))
    assert psi(b, smoothing=0) == pytest.approx(float(_psi(ref, cur, ColumnType.Categorical, 0.1)[0]), abs=1e-6)
    assert kl_div(b, smoothing=0) == pytest.approx(float(_kl_div(ref, cur, ColumnType.Categorical, 0.1)[0]), abs=1e-6)
    assert js(b) == pytest.approx(float(_jensenshannon(ref, cur, ColumnType.Categorical, 0.1)[0]), abs=1e-6)


def test_kl_and_js_match_scipy_on_the_same_smoothed_bins() -> None:
    b = _hist(RNG.normal(0, 1, 3000), RNG.normal(0.5, 1, 3000), np.linspace(-2, 2, 9))
    eps = 1e-4
    r = b.reference / b.reference.sum() + eps
    c = b.current / b.current.sum() + eps
    r, c = r / r.sum(), c / c.sum()
    assert kl_div(b, smoothing=eps) == pytest.approx(float(stats.entropy(r, c)), abs=1e-9)
    assert js(b, smoothing=eps) == pytest.approx(float(jensenshannon(r, c)), abs=1e-9)


def test_ks_on_the_distinct_values_equals_scipys_exact_two_sample_statistic() -> None:
    ref = RNG.integers(0, 30, 4000).astype(float)
    cur = RNG.integers(2, 32, 3000).astype(float)
    edges = np.unique(np.concatenate([ref, cur]))[1:]  # a bin per distinct value: binning loses nothing
    b = _hist(ref, cur, edges)
    assert ks(b) == pytest.approx(stats.ks_2samp(ref, cur).statistic, abs=1e-9)


def test_ks_on_coarse_bins_is_a_lower_bound_within_the_largest_bin_mass() -> None:
    ref, cur = RNG.normal(0, 1, 5000), RNG.normal(0.2, 1, 5000)
    edges = np.quantile(ref, np.arange(1, 100) / 100)
    b = _hist(ref, cur, edges)
    exact = stats.ks_2samp(ref, cur).statistic
    assert ks(b) <= exact + 1e-12
    assert exact - ks(b) <= max((b.reference / b.reference.sum()).max(), (b.current / b.current.sum()).max())


def test_wasserstein_equals_scipy_when_values_sit_at_the_bin_midpoints() -> None:
    ref = RNG.integers(0, 10, 4000).astype(float)
    cur = RNG.integers(1, 11, 3000).astype(float)
    edges = np.arange(0.5, 10.5, 1.0)        # bins [k-0.5, k+0.5): midpoint k, outer bins bounded by min/max
    b = _hist(ref, cur, edges)
    b = Binned(reference=b.reference, current=b.current, edges=edges, lo=-0.5, hi=10.5, scale=float(ref.std()))
    want = stats.wasserstein_distance(ref, cur) / ref.std()
    assert wasserstein(b) == pytest.approx(want, abs=1e-9)


def test_chisquare_matches_the_pearson_formula() -> None:
    ref, cur = np.array([50, 30, 20, 0]), np.array([40, 40, 15, 0])
    b = Binned(reference=ref, current=cur, kind="categorical", labels=("a", "b", "c", "d"))
    t = np.vstack([ref[:3], cur[:3]]).astype(float)
    exp = t.sum(1, keepdims=True) * t.sum(0, keepdims=True) / t.sum()
    stat = ((t - exp) ** 2 / exp).sum()
    assert chisquare(b) == pytest.approx(float(stats.chi2.sf(stat, 2)), abs=1e-12)


def test_new_and_vanished_categories() -> None:
    b = Binned(reference=np.array([60, 40, 0]), current=np.array([70, 0, 30]), kind="categorical",
               labels=("a", "b", OTHER), new={"z": 30})
    assert new_categories(b) == pytest.approx(0.3)
    assert vanished_categories(b) == pytest.approx(0.4)


def test_not_applicable_inputs_raise_a_clear_error_not_a_nan() -> None:
    const = Binned(reference=np.array([0, 100]), current=np.array([0, 80]), edges=np.array([3.0]), lo=3.0, hi=3.0,
                   scale=0.0)
    with pytest.raises(NotApplicable, match="constant"):
        wasserstein(const)
    assert psi(const) == 0.0 and ks(const) == 0.0
    empty = Binned(reference=np.array([10, 5]), current=np.array([0, 0]))
    for fn in (psi, kl_div, js, ks):
        with pytest.raises(NotApplicable):
            fn(empty)
    with pytest.raises(ValueError):
        Binned(reference=np.array([1, 2]), current=np.array([1]))


def test_registry_metadata_and_lookup() -> None:
    assert {"psi", "kl", "js", "ks", "wasserstein", "chisquare", "new_categories", "vanished_categories"} <= set(
        DEFAULT_REGISTRY.names())
    t = DEFAULT_REGISTRY.get("psi")
    assert t.kinds == {"numeric", "categorical"} and t.default_threshold == 0.2 and t.alert_when == "above"
    assert DEFAULT_REGISTRY.get("chisquare").alerts(0.01,
                                                    0.05) and not DEFAULT_REGISTRY.get("chisquare").alerts(0.5, 0.05)
    assert "ks" in DEFAULT_REGISTRY.names("numeric") and "ks" not in DEFAULT_REGISTRY.names("categorical")
    with pytest.raises(KeyError, match="unknown stat test"):
        DEFAULT_REGISTRY.get("nope")
    reg = Registry()
    reg.register(StatTest(name="mine", fn=lambda b: 1.0, kinds=frozenset({"numeric"}), default_threshold=0.5))
    with pytest.raises(ValueError, match="already registered"):
        reg.register(StatTest(name="mine", fn=lambda b: 1.0, kinds=frozenset({"numeric"}), default_threshold=0.5))
    with pytest.raises(NotApplicable):
        reg.get("mine")(Binned(reference=np.ones(2), current=np.ones(2), kind="categorical"))
    assert reg.names() == ["mine"] and "psi" not in reg
