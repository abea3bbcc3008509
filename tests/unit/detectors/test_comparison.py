"""The comparison statistics of canary verdicts against scipy on the raw data they summarise."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from detectors.comparison import holm, mann_whitney_binned, mcnemar, n_noninferiority, paired_t, two_proportions, welch


def test_binned_mann_whitney_is_scipys_on_the_expanded_sample() -> None:
    base = [5, 40, 30, 10, 0, 2]
    cand = [1, 20, 35, 25, 6, 3]
    x = np.repeat(np.arange(6), cand)
    y = np.repeat(np.arange(6), base)
    ref = stats.mannwhitneyu(x, y, alternative="greater", method="asymptotic", use_continuity=False)
    t = mann_whitney_binned(base, cand)
    assert t.p_value == pytest.approx(ref.pvalue, rel=1e-9)
    assert t.effect == pytest.approx(ref.statistic / (len(x) * len(y)))
    same = mann_whitney_binned(base, base)
    assert same.effect == pytest.approx(0.5) and same.p_value == pytest.approx(0.5)


def test_two_proportions() -> None:
    t = two_proportions(100, 10_000, 150, 10_000, alpha=0.05)
    pool = 250 / 20_000
    z = 0.005 / math.sqrt(pool * (1 - pool) * 2 / 10_000)
    assert t.p_value == pytest.approx(stats.norm.sf(z)) and t.diff == pytest.approx(0.005)
    se = math.sqrt(0.01 * 0.99 / 10_000 + 0.015 * 0.985 / 10_000)
    assert t.upper == pytest.approx(0.005 + stats.norm.ppf(0.95) * se)
    assert t.effect == pytest.approx(2 * math.asin(math.sqrt(0.015)) - 2 * math.asin(math.sqrt(0.01)))
    # accuracy: lower is worse
    acc = two_proportions(900, 1000, 850, 1000, alpha=0.05, higher_is_worse=False)
    assert acc.diff == pytest.approx(0.05) and acc.p_value is not None and acc.p_value < 1e-3
    # few events: Fisher's exact test, said so
    small = two_proportions(1, 200, 6, 200, alpha=0.05)
    assert small.approximate and small.name == "Fisher's exact test"
    assert small.p_value == pytest.approx(
        stats.fisher_exact(np.array([[6, 194], [1, 199]]), alternative="greater").pvalue)


def test_mcnemar_is_the_exact_binomial_test_of_discordant_pairs() -> None:
    t = mcnemar(3, 15, 1000, alpha=0.05)
    assert t.p_value == pytest.approx(stats.binomtest(15, 18, 0.5, alternative="greater").pvalue)
    assert t.diff == pytest.approx(0.012) and t.effect == pytest.approx(5.0)
    assert mcnemar(0, 0, 100, alpha=0.05).p_value == 1.0


def test_welch_and_paired_t_match_scipy() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(1.0, 1.0, 300), rng.normal(1.2, 2.0, 200)
    t = welch(len(a), a.mean(), a.var(ddof=1), len(b), b.mean(), b.var(ddof=1), alpha=0.05)
    assert t.p_value == pytest.approx(stats.ttest_ind(b, a, equal_var=False, alternative="greater").pvalue)
    d = rng.normal(0.1, 1.0, 400)
    p = paired_t(len(d), d.mean(), d.var(ddof=1))
    assert p.p_value == pytest.approx(stats.ttest_1samp(d, 0.0).pvalue)
    assert p.effect == pytest.approx(d.mean() / d.std(ddof=1))


def test_sample_size_and_holm() -> None:
    z = stats.norm.ppf(0.95) + stats.norm.ppf(0.8)
    assert n_noninferiority(2 * 0.02 * 0.98, 0.01, alpha=0.05, power=0.8) == math.ceil(z * z * 0.0392 / 1e-4)
    with pytest.raises(ValueError, match="margin"):
        n_noninferiority(0.1, 0, alpha=0.05, power=0.8)
    assert holm([0.01, None, 0.04, 0.03]) == pytest.approx([0.03, None, 0.06, 0.06])
