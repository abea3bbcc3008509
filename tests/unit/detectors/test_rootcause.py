"""The root-cause rankings on results (detectors.rootcause): slice contributions and drift x importance."""

from __future__ import annotations

import math
from typing import Any

import pytest

from detectors.results import Result
from detectors.rootcause import feature_contributions, slice_contributions


def perf(subject: str, value: float, n: int, test: str = "accuracy", detector: str = "performance") -> Result:
    return Result(detector=detector, subject=subject, test=test, value=value, threshold=None, status="ok",
                  sample_size=n)


def test_a_confined_drop_in_a_small_slice_ranks_first() -> None:
    # eu: 10% of traffic at 0.5; us 60% and apac 30% at 0.9; plan=pro is eu-heavy, plan=free the rest
    rs = [perf("", 0.86, 1000), perf("region=eu", 0.5, 100), perf("region=us", 0.9, 600),
          perf("region=apac", 0.9, 300), perf("plan=pro", 0.78, 200), perf("plan=free", 0.88, 800),
          perf("region=tiny", 0.0, 0)]
    ranked = slice_contributions(rs)
    assert [r["slice"] for r in ranked] == ["region=eu", "plan=pro"]
    eu = ranked[0]
    assert eu["baseline"] == pytest.approx((860 - 50) / 900)
    assert eu["contribution"] == pytest.approx((810 / 900 - 0.5) * 0.1)
    assert eu["share"] == pytest.approx(0.1) and eu["n"] == 100 and eu["source"] == "performance"


def test_a_big_slice_with_a_small_drop_and_the_per_key_fallback() -> None:
    # no all-traffic row: each key's slices are its traffic
    rs = [perf("region=us", 0.85, 900, detector="estimated_performance"), perf("region=eu", 0.95, 100,
                                                                               detector="estimated_performance")]
    ranked = slice_contributions(rs)
    assert [r["slice"] for r in ranked] == ["region=us"]
    assert ranked[0]["contribution"] == pytest.approx((0.95 - 0.85) * 0.9)
    assert ranked[0]["source"] == "estimated_performance"
    # a lower-is-better metric: a larger error is the cost
    mae = slice_contributions([perf("", 2.0, 100, "mae"), perf("k=a", 6.0, 20, "mae"), perf("k=b", 1.0, 80, "mae")],
                              metric="mae")
    assert [r["slice"] for r in mae] == ["k=a"] and mae[0]["contribution"] == pytest.approx((6 - 1) * 0.2)
    assert slice_contributions([perf("", 0.9, 100), perf("k=all", 0.9, 100)]) == []


def drift(subject: str, test: str, value: float, threshold: float, status: str, **detail: Any) -> Result:
    return Result(detector="drift", subject=subject, test=test, value=value, threshold=threshold, status=status,
                  sample_size=500, detail=detail)


def test_drift_is_normalised_by_the_threshold_and_weighted() -> None:
    rs = [drift("a", "psi", 0.4, 0.2, "alert"),                       # 2x its threshold
          drift("b", "chisquare", 1e-6, 0.05, "alert"),               # p-value: log p / log thr
          drift("c", "psi", 0.1, 0.2, "ok", primary=True), drift("c", "ks", 0.9, 0.1, "alert"),  # primary decides
          drift("d", "chisquare", 0.2, 0.05, "ok", p_adjusted=0.01),  # the adjusted p-value counts
          drift("@pred.score", "psi", 5.0, 0.2, "alert"), drift("", "drift_share", 1.0, 0.5, "alert")]
    ranked = feature_contributions(rs)
    by = {r["feature"]: r for r in ranked}
    assert by["a"]["drift"] == pytest.approx(2.0)
    assert by["b"]["drift"] == pytest.approx(math.log(1e-6) / math.log(0.05))
    assert by["c"]["drift"] == pytest.approx(0.5) and by["c"]["test"] == "psi"
    assert by["d"]["drift"] == pytest.approx(math.log(0.01) / math.log(0.05))
    assert [r["feature"] for r in ranked] == ["b", "a", "d", "c"]
    weighted = feature_contributions(rs, importance={"a": 0.9, "b": 0.1, "c": 0.5})
    assert [r["feature"] for r in weighted] == ["a", "b", "c"]   # d has no importance
    assert weighted[0]["contribution"] == pytest.approx(1.8) and weighted[0]["importance"] == 0.9
