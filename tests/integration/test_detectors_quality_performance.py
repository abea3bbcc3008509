"""Data quality and per-slice performance through the store (real chDB)."""

from __future__ import annotations

import datetime as _dt
from typing import Any

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, mean_absolute_error, precision_score, recall_score
from statsmodels.stats.proportion import proportion_confint

from collector.stats import wilson_interval as wilson
from collector.store import ChdbStore
from detectors.performance import PerformanceConfig, performance_results
from detectors.runner import run_detectors
from tests.detector_data import T0, insert_labels, insert_predictions

H = _dt.timedelta(hours=1)


def test_quality_missing_type_range_schema_and_freshness(store: ChdbStore) -> None:
    rng = np.random.default_rng(3)
    ref: list[dict[str, Any]] = [{"x": float(rng.uniform(0, 10)), "plan": "free", "old": 1.0} for _ in range(1000)]
    cur = []
    for i in range(1000):
        f: dict = {"x": float(rng.uniform(0, 10)), "plan": "pro", "brand_new": "y"}
        if i < 200:
            del f["x"]                         # 20 % missing
        elif i < 230:
            f["x"] = "ten"                     # 3 % sent as a string: type violation
        elif i < 280:
            f["x"] = 50.0                      # 5 % above the reference max
        cur.append(f)
    insert_predictions(store, start=T0, seconds=3000, features=ref)
    insert_predictions(store, start=T0 + H, seconds=1800, features=cur)      # newest event 30 min before the end
    rep = run_detectors(store, "m1", T0 + 2 * H, H, config={"quality": {"freshness_s": 600}})
    q = {(r.subject, r.test): r for r in rep.results if r.detector == "quality"}
    assert q[("x", "missing_rate")].value == pytest.approx(0.23) and q[("x", "missing_rate")].status == "alert"
    assert q[("x", "missing_rate")].threshold == pytest.approx(0.05)
    assert q[("x", "type_violation_rate")].value == pytest.approx(0.03)
    assert q[("x", "type_violation_rate")].status == "alert"
    lo, hi = min(r["x"] for r in ref), max(r["x"] for r in ref)
    xs = [r["x"] for r in cur if isinstance(r.get("x"), float)]
    below, above = sum(v < lo for v in xs), sum(v > hi for v in xs)
    assert above >= 50 and len(xs) == 770
    assert q[("x", "out_of_range_rate")].value == pytest.approx((below + above) / 770, abs=1e-12)
    assert q[("x", "out_of_range_rate")].status == "alert"
    assert (q[("x", "out_of_range_rate")].detail["below"],
            q[("x", "out_of_range_rate")].detail["above"]) == (below, above)
    assert q[("plan", "missing_rate")].status == "ok"
    assert q[("old", "schema")].status == "alert"                     # in the reference, absent now
    assert q[("brand_new", "schema")].status == "alert"               # unknown to the reference
    assert q[("", "schema_violations")].value == 2
    fresh = q[("", "freshness_s")]
    assert fresh.status == "alert" and fresh.value == pytest.approx(1800, abs=5)


def _classification(store: ChdbStore, n: int = 600) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(8)
    truth = rng.choice(["cat", "dog", "fox"], n, p=[0.5, 0.3, 0.2])
    pred = np.where(rng.random(n) < 0.7, truth, rng.choice(["cat", "dog", "fox"], n))
    region = np.array(["eu", "us", "apac"])[np.arange(n) % 3]
    region[:20] = "tiny"                                                # a slice below the minimum size
    rids = insert_predictions(store, start=T0, seconds=3000, features=[{"x": 1.0}] * n,
                              preds=[{"label": p} for p in pred], slices=[{"region": r} for r in region])
    insert_labels(store, rids, classes=list(truth))
    return truth, pred, region


def test_classification_metrics_per_slice_match_sklearn(store: ChdbStore) -> None:
    truth, pred, region = _classification(store)
    cfg = PerformanceConfig(min_samples=30, thresholds={"accuracy": 0.95})
    res = {(r.subject, r.test): r for r in performance_results(store, "m1", T0, T0 + H, config=cfg)}
    for subject, mask in (("", np.ones(len(truth), bool)), ("region=eu", region == "eu")):
        t, p = truth[mask], pred[mask]
        assert res[(subject, "accuracy")].value == pytest.approx(accuracy_score(t, p), abs=1e-12)
        assert res[(subject, "precision")].value == pytest.approx(precision_score(t, p, average="macro"), abs=1e-12)
        assert res[(subject, "recall")].value == pytest.approx(recall_score(t, p, average="macro"), abs=1e-12)
        assert res[(subject, "f1")].value == pytest.approx(f1_score(t, p, average="macro"), abs=1e-12)
        k = int((t == p).sum())
        lo, hi = proportion_confint(k, len(t), alpha=0.05, method="wilson")
        assert res[(subject, "accuracy")].detail["low"] == pytest.approx(lo, abs=1e-9)
        assert res[(subject, "accuracy")].detail["high"] == pytest.approx(hi, abs=1e-9)
        assert res[(subject, "accuracy")].sample_size == len(t)
        assert res[(subject, "accuracy")].status == "alert"          # whole interval below 0.95
        f1 = res[(subject, "f1")]
        assert f1.detail["low"] <= f1.value <= f1.detail["high"]
    assert res[("region=tiny", "accuracy")].status == "not enough data"
    assert res[("region=tiny", "accuracy")].sample_size == 20


def test_binary_precision_recall_with_a_positive_class(store: ChdbStore) -> None:
    rng = np.random.default_rng(2)
    truth = rng.choice(["yes", "no"], 400)
    pred = np.where(rng.random(400) < 0.8, truth, np.where(truth == "yes", "no", "yes"))
    rids = insert_predictions(store, start=T0, seconds=3000, features=[{}] * 400, preds=[{"label": p} for p in pred])
    insert_labels(store, rids, classes=list(truth))
    res = {r.test: r for r in performance_results(store, "m1", T0, T0 + H,
                                                  config=PerformanceConfig(positive_class="yes"))}
    assert res["precision"].value == pytest.approx(precision_score(truth, pred, pos_label="yes"), abs=1e-12)
    assert res["recall"].value == pytest.approx(recall_score(truth, pred, pos_label="yes"), abs=1e-12)
    tp, npred = int(((pred == "yes") & (truth == "yes")).sum()), int((pred == "yes").sum())
    lo, hi = proportion_confint(tp, npred, method="wilson")
    assert (res["precision"].detail["low"], res["precision"].detail["high"]) == pytest.approx((lo, hi), abs=1e-9)


def test_regression_metrics_and_labels_arriving_first(store: ChdbStore) -> None:
    rng = np.random.default_rng(4)
    y = rng.normal(10, 3, 300)
    yhat = y + rng.normal(0, 1, 300)
    rids = [f"req-{i}" for i in range(300)]
    insert_labels(store, rids, values=list(y))                       # the labels come before the predictions
    insert_predictions(store, start=T0, seconds=3000, features=[{}] * 300,
                       preds=[{"value": float(v)} for v in yhat], request_ids=rids)
    res = {r.test: r for r in performance_results(store, "m1", T0, T0 + H,
                                                  config=PerformanceConfig(thresholds={"mae": 0.1}))}
    assert res["mae"].value == pytest.approx(mean_absolute_error(y, yhat), abs=1e-9)
    assert res["rmse"].value == pytest.approx(float(np.sqrt(np.mean((yhat - y) ** 2))), abs=1e-9)
    assert res["mae"].status == "alert" and res["rmse"].status == "ok" and res["rmse"].threshold is None
    assert res["mae"].detail["low"] < res["mae"].value < res["mae"].detail["high"]


def test_no_labels_is_not_enough_data(store: ChdbStore) -> None:
    insert_predictions(store, start=T0, seconds=60, features=[{"x": 1.0}] * 10, preds=[{"label": "a"}] * 10)
    res = performance_results(store, "m1", T0, T0 + H)
    assert [r.status for r in res] == ["not enough data"]


def test_wilson_matches_statsmodels() -> None:
    for k, n in ((0, 10), (7, 10), (10, 10), (480, 1000)):
        assert wilson(k, n) == pytest.approx(proportion_confint(k, n, method="wilson"), abs=1e-12)


def test_feature_age_from_timestamp_features(store: ChdbStore) -> None:
    n = 100
    start = T0 + H
    feats = [{"x": 1.0, "computed_at": (start + _dt.timedelta(seconds=i * 30)).timestamp() - 120 - (i % 2) * 600}
             for i in range(n)]
    insert_predictions(store, start=start, seconds=n * 30, features=feats)
    rep = run_detectors(store, "m1", T0 + 2 * H, H, reference="previous",
                        config={"quality": {"timestamp_features": ["computed_at"], "feature_age_s": 300},
                                "detectors": ["quality"]})
    age = [r for r in rep.results if r.test == "feature_age_p95_s"][0]
    assert age.subject == "computed_at" and age.value == pytest.approx(720, abs=1) and age.status == "alert"
    assert age.sample_size == n
