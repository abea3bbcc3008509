"""Drift tests as pure functions over binned counts, with their metadata in one registry.

Every test takes a :class:`Binned` pair (reference and current counts over the same bins, computed
in ClickHouse) and returns one number. Smoothing and binning are explicit: the bins are decided by
whoever builds the :class:`Binned` (reference quantiles for numbers, reference categories plus an
"other" bucket for categories) and ``smoothing`` is a parameter of the tests that need one, never a
hidden floor. A :class:`Registry` maps a name (``psi``) to a :class:`StatTest` so configuration says
``{"psi": 0.2}``; :data:`DEFAULT_REGISTRY` is only a default, callers may pass their own.

Approximations (numbers come back from SQL as counts on reference-quantile bins):

- ``ks``: the two-sample Kolmogorov–Smirnov statistic evaluated at the bin edges. It is a lower bound
  of the exact statistic, short of it by at most the largest bin mass (1% with the default
  100-quantile grid). The p-value in the detail uses scipy's asymptotic ``kstwobign``.
- ``wasserstein``: scipy's ``wasserstein_distance`` between the two histograms with each bin's mass
  at its midpoint (outer bins bounded by the observed minimum and maximum), divided by the
  reference standard deviation (as Evidently's ``wasserstein_distance_norm``). Error at most half
  the widest bin, divided by that standard deviation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

__all__ = ["OTHER", "shown_categories", "Binned", "StatTest", "Registry", "DEFAULT_REGISTRY", "NotApplicable",
           "psi", "kl_div", "js", "ks", "ks_p", "wasserstein", "chisquare", "z_test", "adjust_pvalues",
           "new_categories", "vanished_categories"]

Kind = Literal["numeric", "categorical"]

#: Label of the bucket that gathers categories outside the reference's stored set.
OTHER = "\x00other"


def shown_categories(labels: Sequence[str]) -> list[str]:
    """Category labels as users read them (results, API, dashboard): the :data:`OTHER` bucket as ``(other)``."""
    return ["(other)" if c == OTHER else c for c in labels]


class NotApplicable(ValueError):
    """The test cannot give a number for this input (e.g. normalising by a zero spread)."""


@dataclass(frozen=True, kw_only=True)
class Binned:
    """Reference and current counts over the same bins.

    ``edges`` (numeric): the inner bin edges, sorted; bin ``i`` is ``[edges[i-1], edges[i])`` with the
    outer bins open. ``lo``/``hi``: the smallest and largest value seen in either sample (bound the
    outer bins for midpoint-based tests). ``scale``: the reference standard deviation.
    ``labels`` (categorical): one name per bin; ``new``: current counts of categories the reference
    never had (also counted in the ``other`` bin if present).
    """

    reference: np.ndarray
    current: np.ndarray
    kind: Kind = "numeric"
    edges: np.ndarray | None = None
    lo: float | None = None
    hi: float | None = None
    scale: float | None = None
    labels: tuple[str, ...] = ()
    new: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        r = np.asarray(self.reference, dtype=float)
        c = np.asarray(self.current, dtype=float)
        if r.shape != c.shape or r.ndim != 1 or r.size == 0:
            raise ValueError(f"reference and current need the same non-empty bins, got {r.shape} and {c.shape}")
        if (r < 0).any() or (c < 0).any():
            raise ValueError("counts cannot be negative")
        object.__setattr__(self, "reference", r)
        object.__setattr__(self, "current", c)

    @property
    def n_reference(self) -> int:
        return int(self.reference.sum())

    @property
    def n_current(self) -> int:
        return int(self.current.sum())

    def midpoints(self) -> np.ndarray:
        if self.edges is None or self.lo is None or self.hi is None:
            raise NotApplicable("midpoints need numeric edges and the observed range")
        e = np.asarray(self.edges, dtype=float)
        bounds = np.concatenate([[min(self.lo, e[0]) if e.size else self.lo], e,
                                 [max(self.hi, e[-1]) if e.size else self.hi]])
        return (bounds[:-1] + bounds[1:]) / 2


def _rows(b: Binned, current: np.ndarray | None, reference: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Reference and current counts as 2-D rows (one row per draw; one row for ``b`` itself)."""
    c = np.atleast_2d(b.current if current is None else np.asarray(current, dtype=float))
    r = np.atleast_2d(b.reference if reference is None else np.asarray(reference, dtype=float))
    if r.shape[-1] != c.shape[-1] or r.shape[-1] != b.reference.size:
        raise ValueError(f"rows need {b.reference.size} bins, got {r.shape} and {c.shape}")
    if (r.sum(axis=-1) <= 0).any() or (c.sum(axis=-1) <= 0).any():
        raise NotApplicable("reference and current need at least one observation each")
    return r, c


def _proportions(b: Binned, smoothing: float, current: np.ndarray | None = None,
                 reference: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    if smoothing < 0:
        raise ValueError("smoothing cannot be negative")
    r, c = _rows(b, current, reference)
    r = r / r.sum(axis=-1, keepdims=True) + smoothing
    c = c / c.sum(axis=-1, keepdims=True) + smoothing
    return r / r.sum(axis=-1, keepdims=True), c / c.sum(axis=-1, keepdims=True)


# Each test below has a row-wise form ``<name>_rows(b, current, reference=None, **params)``: the statistic of
# ``b``'s bins with the current counts replaced by each row of ``current`` (and the reference by each row of
# ``reference`` when given): the calibration (:mod:`detectors.calibration`) scores hundreds of resampled or
# chunked windows with it in one numpy call. The single-value function is its first row.


def psi_rows(b: Binned, current: np.ndarray | None = None, reference: np.ndarray | None = None, *,
             smoothing: float = 1e-4) -> np.ndarray:
    r, c = _proportions(b, smoothing, current, reference)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where((r == 0) & (c == 0), 0.0, (c - r) * np.log(c / r))
    return np.sum(terms, axis=-1)


def psi(b: Binned, *, smoothing: float = 1e-4) -> float:
    """Population Stability Index: sum((c - r) * ln(c / r)) over proportions.

    ``smoothing`` is added to every proportion (then renormalised) so an empty bin stays finite;
    with ``smoothing=0`` an empty bin on one side gives ``inf``.
    """
    return float(psi_rows(b, smoothing=smoothing)[0])


def kl_rows(b: Binned, current: np.ndarray | None = None, reference: np.ndarray | None = None, *,
            smoothing: float = 1e-4) -> np.ndarray:
    from scipy import special  # scipy (about 60 MB resident) only for the tests that use it

    r, c = _proportions(b, smoothing, current, reference)
    return np.sum(special.rel_entr(r, c), axis=-1)      # what scipy.stats.entropy(r, c) sums


def kl_div(b: Binned, *, smoothing: float = 1e-4) -> float:
    """Kullback–Leibler divergence KL(reference || current) in nats (scipy.stats.entropy)."""
    return float(kl_rows(b, smoothing=smoothing)[0])


def js_rows(b: Binned, current: np.ndarray | None = None, reference: np.ndarray | None = None, *,
            smoothing: float = 0.0) -> np.ndarray:
    from scipy.spatial.distance import jensenshannon

    r, c = _proportions(b, smoothing, current, reference)
    return np.asarray(jensenshannon(np.broadcast_to(r, c.shape) if r.shape[0] == 1 else r,
                                    np.broadcast_to(c, r.shape) if c.shape[0] == 1 else c, axis=-1))


def js(b: Binned, *, smoothing: float = 0.0) -> float:
    """Jensen–Shannon distance (natural log; the square root of the divergence), scipy's definition."""
    return float(js_rows(b, smoothing=smoothing)[0])


def ks_rows(b: Binned, current: np.ndarray | None = None, reference: np.ndarray | None = None) -> np.ndarray:
    r, c = _rows(b, current, reference)
    fr = np.cumsum(r, axis=-1) / r.sum(axis=-1, keepdims=True)
    fc = np.cumsum(c, axis=-1) / c.sum(axis=-1, keepdims=True)
    return np.max(np.abs(fr - fc), axis=-1)


def ks(b: Binned) -> float:
    """Kolmogorov–Smirnov statistic at the bin edges: max |F_ref - F_cur| (see module notes)."""
    return float(ks_rows(b)[0])


def ks_pvalue(b: Binned, statistic: float) -> float:
    """Asymptotic two-sample p-value of ``statistic`` (scipy's Kolmogorov distribution)."""
    return float(_ks_sf(statistic, b.n_reference, b.n_current))


def _ks_sf(d: np.ndarray | float, n: np.ndarray | float, m: np.ndarray | float) -> np.ndarray:
    from scipy import stats

    return np.asarray(stats.kstwobign.sf(np.asarray(d) * np.sqrt(n * m / (np.asarray(n) + m))))


def ks_p_rows(b: Binned, current: np.ndarray | None = None, reference: np.ndarray | None = None) -> np.ndarray:
    r, c = _rows(b, current, reference)
    return _ks_sf(ks_rows(b, c, r), r.sum(axis=-1), c.sum(axis=-1))


def ks_p(b: Binned) -> float:
    """p-value of the two-sample Kolmogorov–Smirnov test (the statistic at the bin edges, asymptotic)."""
    return float(ks_p_rows(b)[0])


def wasserstein_rows(b: Binned, current: np.ndarray | None = None,
                     reference: np.ndarray | None = None) -> np.ndarray:
    r, c = _rows(b, current, reference)
    if b.scale is None or not b.scale > 0:
        raise NotApplicable("the reference is constant (standard deviation 0): normalised Wasserstein is undefined")
    pts = b.midpoints()
    order = np.argsort(pts, kind="stable")
    pts, r, c = pts[order], r[..., order], c[..., order]
    # W1 of two weightings of the same points: the area between their CDFs (scipy's wasserstein_distance)
    fr = np.cumsum(r, axis=-1)[..., :-1] / r.sum(axis=-1, keepdims=True)
    fc = np.cumsum(c, axis=-1)[..., :-1] / c.sum(axis=-1, keepdims=True)
    return np.sum(np.abs(fr - fc) * np.diff(pts), axis=-1) / b.scale


def wasserstein(b: Binned) -> float:
    """Wasserstein-1 distance between the binned samples, in reference standard deviations."""
    return float(wasserstein_rows(b)[0])


def chisquare_rows(b: Binned, current: np.ndarray | None = None,
                   reference: np.ndarray | None = None) -> np.ndarray:
    r, c = _rows(b, current, reference)
    r, c = np.broadcast_arrays(r, c)
    cols = r + c
    keep = cols > 0
    if (keep.sum(axis=-1) < 2).any():
        raise NotApplicable("chi-square needs at least two non-empty categories")
    from scipy import stats

    tot = cols.sum(axis=-1, keepdims=True)
    stat = np.zeros(r.shape[0])
    for obs in (r, c):
        exp = obs.sum(axis=-1, keepdims=True) * cols / tot
        with np.errstate(divide="ignore", invalid="ignore"):
            stat = stat + np.sum(np.where(keep, (obs - exp) ** 2 / exp, 0.0), axis=-1)
    return np.asarray(stats.chi2.sf(stat, keep.sum(axis=-1) - 1))


def chisquare(b: Binned) -> float:
    """p-value of Pearson's chi-square test of homogeneity on the 2 x k table (no continuity correction).

    Bins empty on both sides are dropped (they carry no information and would divide by zero).
    """
    return float(chisquare_rows(b)[0])


def z_rows(b: Binned, current: np.ndarray | None = None, reference: np.ndarray | None = None) -> np.ndarray:
    r, c = _rows(b, current, reference)
    held = np.flatnonzero(b.reference + b.current)
    if held.size > 2:
        raise NotApplicable("the z-test needs a binary feature (at most two values in the reference and window)")
    from scipy import stats

    k = held[0]                                          # "success": the reference's first value
    n1, n2 = r.sum(axis=-1), c.sum(axis=-1)
    p1, p2 = r[..., k] / n1, c[..., k] / n2
    pool = (r[..., k] + c[..., k]) / (n1 + n2)
    se = np.sqrt(pool * (1 - pool) * (1 / n1 + 1 / n2))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(se > 0, (p2 - p1) / se, 0.0)
    return np.asarray(2 * stats.norm.sf(np.abs(z)))


def z_test(b: Binned) -> float:
    """p-value of the two-proportion z-test (pooled, two-sided) on a binary feature."""
    return float(z_rows(b)[0])


def new_categories(b: Binned) -> float:
    """Share of current rows whose category the reference never had (names in ``b.new``)."""
    if b.n_current <= 0:
        raise NotApplicable("no current observations")
    return float(sum(b.new.values()) / b.n_current)


def vanished_categories(b: Binned) -> float:
    """Share of the reference mass in categories absent from the current window."""
    if b.n_reference <= 0 or b.n_current <= 0:
        raise NotApplicable("reference and current need at least one observation each")
    named = np.array([lbl != OTHER for lbl in b.labels]) if b.labels else np.ones(b.reference.size, bool)
    gone = (b.current == 0) & (b.reference > 0) & named
    return float(b.reference[gone].sum() / b.reference.sum())


def adjust_pvalues(p: Sequence[float] | np.ndarray, method: str) -> np.ndarray:
    """p-values adjusted for multiple testing: ``bh`` (Benjamini-Hochberg, false discovery rate; as
    ``scipy.stats.false_discovery_control``), ``holm`` (family-wise error) or ``none``."""
    p = np.asarray(p, dtype=float)
    if method == "none" or p.size == 0:
        return p.copy()
    if method not in ("bh", "holm"):
        raise ValueError(f"multiple_testing: {method!r} is not one of 'bh', 'holm', 'none'")
    m = p.size
    order = np.argsort(p, kind="stable")
    ps = p[order]
    ranks = np.arange(1, m + 1)
    if method == "bh":
        adj = np.minimum.accumulate((ps * m / ranks)[::-1])[::-1]
    else:
        adj = np.maximum.accumulate(ps * (m - ranks + 1))
    out = np.empty(m)
    out[order] = np.minimum(adj, 1.0)
    return out


@dataclass(frozen=True, kw_only=True)
class StatTest:
    """A named test: the function, the column kinds it applies to, and when it alerts."""

    name: str
    fn: Callable[..., float]
    kinds: frozenset[str]
    default_threshold: float
    alert_when: Literal["above", "below"] = "above"
    description: str = ""
    #: the row-wise form (``<name>_rows``), used by the calibration; None: the calibration calls ``fn`` per row
    rows: Callable[..., np.ndarray] | None = None
    #: p-value tests: the effect size recorded beside the p-value (a distance test's value is its own)
    effect: Callable[[Binned], float] | None = None
    #: the smallest drift worth an alert: a p-value test does not alert under it (its effect size), a calibrated
    #: threshold never goes under it (a distance test)
    min_effect: float = 0.0

    @property
    def pvalue(self) -> bool:
        """The value is a p-value: small values alert (multiple-testing control and effect gating apply)."""
        return self.alert_when == "below"

    def alerts(self, value: float, threshold: float) -> bool:
        return value >= threshold if self.alert_when == "above" else value < threshold

    def __call__(self, b: Binned, **params: Any) -> float:
        if b.kind not in self.kinds:
            raise NotApplicable(f"{self.name} does not apply to {b.kind} data")
        return self.fn(b, **params)


class Registry:
    """Named tests. Build a fresh one in tests; :data:`DEFAULT_REGISTRY` is only a default."""

    def __init__(self, tests: Iterable[StatTest] = ()) -> None:
        self._tests: dict[str, StatTest] = {}
        for t in tests:
            self.register(t)

    def register(self, test: StatTest) -> StatTest:
        if test.name in self._tests:
            raise ValueError(f"stat test {test.name!r} is already registered")
        self._tests[test.name] = test
        return test

    def get(self, name: str) -> StatTest:
        try:
            return self._tests[name]
        except KeyError:
            raise KeyError(f"unknown stat test {name!r}; known: {sorted(self._tests)}") from None

    def names(self, kind: str | None = None) -> list[str]:
        return sorted(n for n, t in self._tests.items() if kind is None or kind in t.kinds)

    def __contains__(self, name: object) -> bool:
        return name in self._tests


_NUM = frozenset({"numeric"})
_CAT = frozenset({"categorical"})
_BOTH = frozenset({"numeric", "categorical"})

DEFAULT_REGISTRY = Registry([
    StatTest(name="psi", fn=psi, rows=psi_rows, kinds=_BOTH, default_threshold=0.2, min_effect=0.05,
             description="Population Stability Index over reference-quantile bins or reference categories"),
    StatTest(name="kl", fn=kl_div, rows=kl_rows, kinds=_BOTH, default_threshold=0.1, min_effect=0.025,
             description="Kullback-Leibler divergence KL(reference || current), nats"),
    StatTest(name="js", fn=js, rows=js_rows, kinds=_BOTH, default_threshold=0.1, min_effect=0.05,
             description="Jensen-Shannon distance (natural log)"),
    StatTest(name="ks", fn=ks, rows=ks_rows, kinds=_NUM, default_threshold=0.1, min_effect=0.05,
             description="Kolmogorov-Smirnov statistic at the bin edges"),
    StatTest(name="wasserstein", fn=wasserstein, rows=wasserstein_rows, kinds=_NUM, default_threshold=0.1,
             min_effect=0.05,
             description="Wasserstein-1 distance in reference standard deviations"),
    StatTest(name="chisquare", fn=chisquare, rows=chisquare_rows, kinds=_CAT, default_threshold=0.05,
             alert_when="below", effect=psi, min_effect=0.05,
             description="p-value of the chi-square test of homogeneity (effect size: PSI on the same bins)"),
    StatTest(name="ks_p", fn=ks_p, rows=ks_p_rows, kinds=_NUM, default_threshold=0.05, alert_when="below",
             effect=ks, min_effect=0.05,
             description="p-value of the Kolmogorov-Smirnov test (effect size: the KS statistic)"),
    StatTest(name="z", fn=z_test, rows=z_rows, kinds=_BOTH, default_threshold=0.05, alert_when="below",
             effect=psi, min_effect=0.05,
             description="p-value of the two-proportion z-test, binary features (effect size: PSI)"),
    StatTest(name="new_categories", fn=new_categories, kinds=_CAT, default_threshold=0.01,
             description="share of current rows in categories unseen in the reference"),
    StatTest(name="vanished_categories", fn=vanished_categories, kinds=_CAT, default_threshold=0.01,
             description="share of reference mass in categories absent from the current window"),
])
