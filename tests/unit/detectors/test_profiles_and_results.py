"""Pure parts: bin regrouping, config parsing, results never carrying NaN."""

from __future__ import annotations

import math

import numpy as np
import pytest

from detectors.drift import DriftConfig, binned_categorical
from detectors.reference import FeatureProfile, coarse_bins, regroup
from detectors.results import Result
from detectors.runner import DetectorConfig
from detectors.stattests import OTHER


def _fp() -> FeatureProfile:
    q = np.linspace(1, 99, 99)
    edges = np.unique(np.concatenate([[0.0], q, [np.nextafter(100.0, np.inf)]]))
    return FeatureProfile(feature="x", kind="numeric", n=1000, quantiles=q, edges=edges,
                          counts=np.arange(edges.size + 1), lo=0.0, hi=100.0, std=29.0)


def test_coarse_bins_are_the_reference_deciles_and_regroup_sums_fine_counts() -> None:
    fp = _fp()
    e = coarse_bins(fp, 10)
    assert e.tolist() == [10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0]
    got = regroup(fp.edges, fp.counts, e)
    full = np.concatenate([[-np.inf], fp.edges, [np.inf]])
    lower = full[:-1]                              # lower bound of every fine bin
    want = [fp.counts[(lower >= a) & (lower < b)].sum() for a, b in zip([-np.inf, *e], [*e, np.inf], strict=True)]
    assert got.tolist() == want and got.sum() == fp.counts.sum()
    with pytest.raises(ValueError):
        regroup(fp.edges, fp.counts, np.array([10.5]))
    with pytest.raises(ValueError):
        coarse_bins(fp, 1)


def test_constant_feature_collapses_to_two_bins() -> None:
    fp = FeatureProfile(feature="k", kind="numeric", n=10, quantiles=np.full(99, 7.0),
                        edges=np.array([7.0, np.nextafter(7.0, np.inf)]), counts=np.array([0, 10, 0]), lo=7.0, hi=7.0)
    e = coarse_bins(fp, 10)
    assert e.tolist() == [7.0]
    assert regroup(fp.edges, fp.counts, e).tolist() == [0, 10]


def test_categorical_binning_has_an_other_bucket_and_new_categories() -> None:
    fp = FeatureProfile(feature="c", kind="categorical", n=100, categories=("a", "b"), category_counts=(60, 40))
    b = binned_categorical(fp, 50, {"a": 20, "z": 30})
    assert b.labels == ("a", "b", OTHER) and b.reference.tolist() == [60, 40, 0] and b.current.tolist() == [20, 0, 30]
    assert dict(b.new) == {"z": 30}
    truncated = FeatureProfile(feature="c", kind="categorical", n=110, categories=("a", "b"), category_counts=(60, 40),
                               other_count=10)
    assert dict(binned_categorical(truncated, 50, {"a": 20, "z": 30}).new) == {}   # unknowable: the tail was cut


def test_config_parsing() -> None:
    c = DriftConfig.parse({"psi": 0.3, "ks": None, "js": {"threshold": 0.2, "smoothing": 0.01}}, bins=20)
    assert c.tests["psi"].threshold == 0.3 and c.tests["ks"].threshold is None and c.bins == 20
    assert c.tests["js"].params == {"smoothing": 0.01} and c.needs_full_grid
    assert not DriftConfig.parse({"psi": None}).needs_full_grid
    d = DetectorConfig.from_dict({"drift": {"tests": {"psi": 0.1}}, "quality": {"ignore": ["a"]},
                                  "performance": {"min_samples": 5}, "detectors": ["drift"]})
    assert d.quality.ignore == frozenset({"a"}) and d.performance.min_samples == 5 and d.detectors == {"drift"}


def test_results_never_carry_nan_or_inf() -> None:
    r = Result(detector="drift", subject="x", test="psi", value=math.inf, threshold=0.2, status="alert")
    assert r.value is None and r.detail["raw_value"] == "inf"
    assert Result(detector="drift", subject="x", test="psi", value=math.nan, threshold=None,
                  status="error").value is None
    with pytest.raises(ValueError):
        Result(detector="drift", subject="x", test="psi", value=1.0, threshold=None, status="drift")
    d = Result.no_data("drift", "x", "psi", "why").as_dict()
    assert d["status"] == "not enough data" and d["detail"] == {"reason": "why"}
