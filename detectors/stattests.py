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
           "psi", "kl_div", "js", "ks", "wasserstein", "chisquare", "new_categories", "vanished_categories"]

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


def _proportions(b: Binned, smoothing: float) -> tuple[np.ndarray, np.ndarray]:
    if smoothing < 0:
        raise ValueError("smoothing cannot be negative")
    if b.n_reference <= 0 or b.n_current <= 0:
        raise NotApplicable("reference and current need at least one observation each")
    r = b.reference / b.reference.sum() + smoothing
    c = b.current / b.current.sum() + smoothing
    return r / r.sum(), c / c.sum()


def psi(b: Binned, *, smoothing: float = 1e-4) -> float:
    """Population Stability Index: sum((c - r) * ln(c / r)) over proportions.

    ``smoothing`` is added to every proportion (then renormalised) so an empty bin stays finite;
    with ``smoothing=0`` an empty bin on one side gives ``inf``.
    """
    r, c = _proportions(b, smoothing)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where((r == 0) & (c == 0), 0.0, (c - r) * np.log(c / r))
    return float(np.sum(terms))


def kl_div(b: Binned, *, smoothing: float = 1e-4) -> float:
    """Kullback–Leibler divergence KL(reference || current) in nats (scipy.stats.entropy)."""
    from scipy import stats  # scipy (about 60 MB resident) only for the tests that use it

    r, c = _proportions(b, smoothing)
    return float(stats.entropy(r, c))


def js(b: Binned, *, smoothing: float = 0.0) -> float:
    """Jensen–Shannon distance (natural log; the square root of the divergence), scipy's definition."""
    from scipy.spatial.distance import jensenshannon

    r, c = _proportions(b, smoothing)
    return float(jensenshannon(r, c))


def ks(b: Binned) -> float:
    """Kolmogorov–Smirnov statistic at the bin edges: max |F_ref - F_cur| (see module notes)."""
    if b.n_reference <= 0 or b.n_current <= 0:
        raise NotApplicable("reference and current need at least one observation each")
    fr = np.cumsum(b.reference) / b.reference.sum()
    fc = np.cumsum(b.current) / b.current.sum()
    return float(np.max(np.abs(fr - fc)))


def ks_pvalue(b: Binned, statistic: float) -> float:
    """Asymptotic two-sample p-value of ``statistic`` (scipy's Kolmogorov distribution)."""
    from scipy import stats

    n, m = b.n_reference, b.n_current
    return float(stats.kstwobign.sf(statistic * np.sqrt(n * m / (n + m))))


def wasserstein(b: Binned) -> float:
    """Wasserstein-1 distance between the binned samples, in reference standard deviations."""
    if b.n_reference <= 0 or b.n_current <= 0:
        raise NotApplicable("reference and current need at least one observation each")
    if b.scale is None or not b.scale > 0:
        raise NotApplicable("the reference is constant (standard deviation 0): normalised Wasserstein is undefined")
    from scipy import stats

    pts = b.midpoints()
    d = stats.wasserstein_distance(pts, pts, u_weights=b.reference, v_weights=b.current)
    return float(d / b.scale)


def chisquare(b: Binned) -> float:
    """p-value of Pearson's chi-square test of homogeneity on the 2 x k table (no continuity correction).

    Bins empty on both sides are dropped (they carry no information and would divide by zero).
    """
    keep = (b.reference + b.current) > 0
    if keep.sum() < 2:
        raise NotApplicable("chi-square needs at least two non-empty categories")
    if b.n_reference <= 0 or b.n_current <= 0:
        raise NotApplicable("reference and current need at least one observation each")
    from scipy import stats

    table = np.vstack([b.reference[keep], b.current[keep]])
    return float(stats.chi2_contingency(table, correction=False).pvalue)


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


@dataclass(frozen=True, kw_only=True)
class StatTest:
    """A named test: the function, the column kinds it applies to, and when it alerts."""

    name: str
    fn: Callable[..., float]
    kinds: frozenset[str]
    default_threshold: float
    alert_when: Literal["above", "below"] = "above"
    description: str = ""

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
    StatTest(name="psi", fn=psi, kinds=_BOTH, default_threshold=0.2,
             description="Population Stability Index over reference-quantile bins or reference categories"),
    StatTest(name="kl", fn=kl_div, kinds=_BOTH, default_threshold=0.1,
             description="Kullback-Leibler divergence KL(reference || current), nats"),
    StatTest(name="js", fn=js, kinds=_BOTH, default_threshold=0.1,
             description="Jensen-Shannon distance (natural log)"),
    StatTest(name="ks", fn=ks, kinds=_NUM, default_threshold=0.1,
             description="Kolmogorov-Smirnov statistic at the bin edges"),
    StatTest(name="wasserstein", fn=wasserstein, kinds=_NUM, default_threshold=0.1,
             description="Wasserstein-1 distance in reference standard deviations"),
    StatTest(name="chisquare", fn=chisquare, kinds=_CAT, default_threshold=0.05, alert_when="below",
             description="p-value of the chi-square test of homogeneity"),
    StatTest(name="new_categories", fn=new_categories, kinds=_CAT, default_threshold=0.01,
             description="share of current rows in categories unseen in the reference"),
    StatTest(name="vanished_categories", fn=vanished_categories, kinds=_CAT, default_threshold=0.01,
             description="share of reference mass in categories absent from the current window"),
])
