"""Two-sample statistics for comparing a candidate version with a baseline, each a pure function over
counts computed in ClickHouse. What each assumes is said where it is defined.

- :func:`two_proportions`: independent samples (canary: each request goes to one version); requests are
  independent Bernoulli trials with a common rate per version; the normal approximation (each of
  ``n p`` and ``n (1 - p)`` at least 10, checked: ``approximate`` says when it does not hold, and the
  p-value then comes from Fisher's exact test instead).
- :func:`mcnemar`: paired samples (shadow: the same requests scored by both versions); only discordant
  pairs carry information; the exact binomial test of the discordant counts (no normal approximation).
- :func:`mann_whitney_binned`: independent samples of a quantity known only by histogram bucket (the
  latency histograms of the metric windows). Values in one bucket are ties (mid-ranks, tie-corrected
  variance); the normal approximation of U, sound for the thousands of requests metric windows count.
- :func:`welch`: independent samples, unequal variances; the t approximation (means of many requests).
- :func:`paired_t`: paired differences with a finite variance; the t approximation (central limit).

Sample sizes (:func:`n_noninferiority`) are for a one-sided non-inferiority test of a difference at
level ``alpha`` with ``power`` when the true difference is 0, normal approximation:
``n = (z_{1-alpha} + z_{power})^2 * var_unit / margin^2`` per version (per pair for paired designs).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

__all__ = ["Test", "two_proportions", "mcnemar", "mann_whitney_binned", "welch", "paired_t", "n_noninferiority",
           "holm", "cohens_h"]

_N = NormalDist()


@dataclass(frozen=True, kw_only=True)
class Test:
    """One one-sided test of harm (the candidate worse than the baseline) and the estimate behind it.

    ``diff``: candidate minus baseline, oriented so that positive is worse; ``upper``: the one-sided
    ``1 - alpha`` upper confidence bound of ``diff`` (non-inferiority holds when it is below the margin).
    """

    name: str
    p_value: float | None
    diff: float | None
    upper: float | None
    effect: float | None
    effect_name: str
    approximate: bool = False


def cohens_h(p1: float, p2: float) -> float:
    """Cohen's h, the effect size of two proportions: ``2 asin(sqrt(p2)) - 2 asin(sqrt(p1))``."""
    return 2 * math.asin(math.sqrt(p2)) - 2 * math.asin(math.sqrt(p1))


def two_proportions(k_base: int, n_base: int, k_cand: int, n_cand: int, *, alpha: float,
                    higher_is_worse: bool = True, name: str = "two-proportion z-test") -> Test:
    """Is the candidate's rate worse (higher, or lower with ``higher_is_worse=False``)? One-sided, pooled z."""
    if n_base <= 0 or n_cand <= 0:
        return Test(name=name, p_value=None, diff=None, upper=None, effect=None, effect_name="cohens_h")
    from scipy import stats

    pb, pc = k_base / n_base, k_cand / n_cand
    sign = 1.0 if higher_is_worse else -1.0
    diff = sign * (pc - pb)
    pool = (k_base + k_cand) / (n_base + n_cand)
    se0 = math.sqrt(pool * (1 - pool) * (1 / n_base + 1 / n_cand))
    small = min(k_base, n_base - k_base, k_cand, n_cand - k_cand) < 10
    if small:
        import numpy as np

        table = np.array([[k_cand, n_cand - k_cand], [k_base, n_base - k_base]])
        p = float(stats.fisher_exact(table, alternative="greater" if higher_is_worse else "less").pvalue)
    else:
        p = float(_N.cdf(-diff / se0)) if se0 > 0 else (0.0 if diff > 0 else 1.0)
    se = math.sqrt(pb * (1 - pb) / n_base + pc * (1 - pc) / n_cand)
    upper = diff + _N.inv_cdf(1 - alpha) * se
    return Test(name="Fisher's exact test" if small else name, p_value=p, diff=diff, upper=upper,
                effect=sign * cohens_h(pb, pc), effect_name="cohens_h", approximate=small)


def mcnemar(base_only: int, cand_only: int, pairs: int, *, alpha: float, name: str = "McNemar exact test") -> Test:
    """Paired: ``cand_only`` pairs where only the candidate failed, ``base_only`` where only the baseline did.

    Exact one-sided binomial test of ``cand_only`` among the discordant pairs (H0: each discordant pair is
    equally likely either way). ``diff`` is the paired difference of failure rates; its upper bound uses the
    paired Wald variance. Effect: the odds ratio of discordance ``cand_only / base_only`` (0.5 added to each
    when one is 0).
    """
    if pairs <= 0:
        return Test(name=name, p_value=None, diff=None, upper=None, effect=None, effect_name="discordant_odds_ratio")
    from scipy import stats

    d = base_only + cand_only
    p = float(stats.binomtest(cand_only, d, 0.5, alternative="greater").pvalue) if d else 1.0
    diff = (cand_only - base_only) / pairs
    var = max(0.0, (base_only + cand_only) / pairs - diff * diff) / pairs
    upper = diff + _N.inv_cdf(1 - alpha) * math.sqrt(var)
    odds = (cand_only + 0.5) / (base_only + 0.5) if (cand_only == 0 or base_only == 0) else cand_only / base_only
    return Test(name=name, p_value=p, diff=diff, upper=upper, effect=odds, effect_name="discordant_odds_ratio")


def mann_whitney_binned(base: Sequence[float], cand: Sequence[float], *, name: str = "Mann-Whitney U (binned)") -> Test:
    """Is the candidate stochastically larger (slower)? ``base``/``cand``: counts per ordered bucket.

    ``effect`` is the probability of superiority ``P(C > B) + P(C = B) / 2`` (0.5: no difference); ``diff`` is
    that minus 0.5. No upper bound: the decision uses the latency quantiles against a tolerance.
    """
    n1, n2 = float(sum(base)), float(sum(cand))
    if n1 <= 0 or n2 <= 0:
        return Test(name=name, p_value=None, diff=None, upper=None, effect=None, effect_name="prob_superiority")
    n = n1 + n2
    rank_sum_c = 0.0
    ties = 0.0
    below = 0.0
    for b, c in zip(base, cand, strict=True):
        t = float(b) + float(c)
        if t:
            rank_sum_c += float(c) * (below + (t + 1) / 2)   # mid-rank of the bucket
            ties += t ** 3 - t
        below += t
    u = rank_sum_c - n2 * (n2 + 1) / 2                        # pairs where the candidate is larger (+ half ties)
    var = n1 * n2 / 12 * ((n + 1) - ties / (n * (n - 1))) if n > 1 else 0.0
    a = u / (n1 * n2)
    p = float(_N.cdf(-(u - n1 * n2 / 2) / math.sqrt(var))) if var > 0 else (0.0 if a > 0.5 else 1.0)
    return Test(name=name, p_value=p, diff=a - 0.5, upper=None, effect=a, effect_name="prob_superiority")


def welch(n_b: int, mean_b: float, var_b: float, n_c: int, mean_c: float, var_c: float, *, alpha: float,
          name: str = "Welch's t-test") -> Test:
    """Is the candidate's mean higher (worse, e.g. absolute error)? One-sided; effect: Cohen's d (pooled SD)."""
    if n_b < 2 or n_c < 2:
        return Test(name=name, p_value=None, diff=None, upper=None, effect=None, effect_name="cohens_d")
    from scipy import stats

    se2 = var_b / n_b + var_c / n_c
    diff = mean_c - mean_b
    if se2 <= 0:
        return Test(name=name, p_value=0.0 if diff > 0 else 1.0, diff=diff, upper=diff, effect=None,
                    effect_name="cohens_d")
    df = se2 ** 2 / ((var_b / n_b) ** 2 / (n_b - 1) + (var_c / n_c) ** 2 / (n_c - 1))
    t = diff / math.sqrt(se2)
    sd = math.sqrt(((n_b - 1) * var_b + (n_c - 1) * var_c) / (n_b + n_c - 2))
    return Test(name=name, p_value=float(stats.t.sf(t, df)), diff=diff,
                upper=diff + float(stats.t.ppf(1 - alpha, df)) * math.sqrt(se2),
                effect=diff / sd if sd > 0 else None, effect_name="cohens_d")


def paired_t(n: int, mean_diff: float, var_diff: float, *, name: str = "paired t-test") -> Test:
    """Two-sided test of a mean paired difference of 0; effect: Cohen's d_z (mean / SD of the differences)."""
    if n < 2:
        return Test(name=name, p_value=None, diff=None, upper=None, effect=None, effect_name="cohens_dz")
    from scipy import stats

    if var_diff <= 0:
        return Test(name=name, p_value=1.0 if mean_diff == 0 else 0.0, diff=mean_diff, upper=None, effect=None,
                    effect_name="cohens_dz")
    t = mean_diff / math.sqrt(var_diff / n)
    return Test(name=name, p_value=float(2 * stats.t.sf(abs(t), n - 1)), diff=mean_diff, upper=None,
                effect=mean_diff / math.sqrt(var_diff), effect_name="cohens_dz")


def n_noninferiority(var_unit: float, margin: float, *, alpha: float, power: float) -> int:
    """Observations per version (per pair) for a one-sided non-inferiority test (module notes)."""
    if margin <= 0:
        raise ValueError("margin: must be positive")
    z = _N.inv_cdf(1 - alpha) + _N.inv_cdf(power)
    return max(1, math.ceil(z * z * max(var_unit, 0.0) / (margin * margin)))


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjusted p-values (family-wise error over the tests given; None stays None)."""
    idx = sorted((i for i, p in enumerate(p_values) if p is not None), key=lambda i: p_values[i])  # type: ignore[arg-type,return-value]
    m = len(idx)
    out: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, i in enumerate(idx):
        running = max(running, min(1.0, (m - rank) * float(p_values[i])))  # type: ignore[arg-type]
        out[i] = running
    return out
