"""CBPE through the store (real chDB): calibrate on a labelled window, estimate a later window whose score
distribution has shifted before its labels arrive, then see the realized metrics beside the estimate."""

from __future__ import annotations

import datetime as _dt

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

from collector.store import ChdbStore
from detectors.cbpe import CBPEConfig, cbpe_results, fit_calibration, load_calibration
from detectors.runner import run_detectors
from tests.detector_data import T0, insert_labels, insert_predictions

H = _dt.timedelta(hours=1)


def _binary(store: ChdbStore, rng: np.random.Generator, start: _dt.datetime, n: int, a: float, b: float,
            labels: bool) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    score = rng.beta(a, b, n)
    truth = (rng.random(n) < score ** 1.5).astype(int)                 # scores that overstate: calibration needed
    region = np.array(["eu", "us"])[np.arange(n) % 2]
    rids = insert_predictions(store, start=start, seconds=3000, features=[{"x": float(s)} for s in score],
                              preds=[{"score": float(s), "label": "yes" if s >= 0.5 else "no"} for s in score],
                              slices=[{"region": r} for r in region])
    if labels:
        insert_labels(store, rids, classes=["yes" if t else "no" for t in truth])
    return rids, score, truth, region


def test_binary_estimate_before_labels_then_realized_beside_it(store: ChdbStore) -> None:
    rng = np.random.default_rng(11)
    _binary(store, rng, T0, 6000, 2, 2, labels=True)
    cal = fit_calibration(store, "m1", T0, T0 + H)
    assert cal.kind == "binary" and cal.positive_class == "yes" and cal.maps[0].calibrated
    stored = load_calibration(store, "m1")
    assert stored is not None and stored.extra_variance == cal.extra_variance
    assert stored.maps[0].values.tolist() == pytest.approx(cal.maps[0].values.tolist())
    rids, score, truth, region = _binary(store, rng, T0 + H, 4000, 3, 1.5, labels=False)   # shifted scores
    rep = run_detectors(store, "m1", T0 + 2 * H, H, config={"cbpe": {"thresholds": {"accuracy": 0.9}}})
    est = {(r.subject, r.test): r for r in rep.results if r.detector == "estimated_performance"}
    assert {s for s, _ in est} == {"", "region=eu", "region=us"}
    acc = est[("", "accuracy")]
    assert acc.detail["label_coverage"] == 0 and "realized" not in acc.detail
    assert acc.status == "alert" and acc.threshold == 0.9                # the whole band is below 0.9
    pred = (score >= 0.5).astype(int)
    truep = score ** 1.5
    expected = float(np.mean(np.where(pred == 1, truep, 1 - truep)))   # the truth the estimate aims at
    assert acc.detail["low"] <= expected <= acc.detail["high"]
    assert acc.detail["high"] - acc.detail["low"] < 0.06
    # the labels arrive: the band covered the realized accuracy, now shown beside the estimate
    insert_labels(store, rids, classes=["yes" if t else "no" for t in truth])
    res = {(r.subject, r.test): r for r in cbpe_results(store, "m1", T0 + H, T0 + 2 * H)}
    for subject, mask in (("", np.ones(len(score), bool)), ("region=eu", region == "eu")):
        t, p, s = truth[mask], pred[mask], score[mask]
        real = {"accuracy": accuracy_score(t, p), "f1": f1_score(t, p), "roc_auc": roc_auc_score(t, s)}
        for m, v in real.items():
            r = res[(subject, m)]
            assert r.detail["label_coverage"] == 1.0 and r.detail["labelled"] == mask.sum()
            assert r.detail["realized"] == pytest.approx(v, abs=1e-12 if m != "roc_auc" else 2e-3), (subject, m)
            assert r.detail["low"] <= v <= r.detail["high"], (subject, m, r.value, r.detail)
            assert r.detail["method"] == "cbpe"
        assert res[(subject, "accuracy")].value == pytest.approx(est[(subject, "accuracy")].value)
    # stored and readable like every detector result
    rows = store.rows("SELECT subject, test, value FROM {db}.detector_results "
                      "WHERE detector = 'estimated_performance' ORDER BY subject, test")
    assert len(rows) == 9


def test_multiclass_with_hostile_class_names(store: ChdbStore) -> None:
    rng = np.random.default_rng(12)
    classes = ["a'b", "c--d", "{db}"]

    def window(start: _dt.datetime, alpha: list[float], n: int) -> tuple[list[str], np.ndarray, np.ndarray]:
        probs = rng.dirichlet(alpha, n)
        truth = (rng.random(n)[:, None] > np.cumsum(probs ** 1.3 / (probs ** 1.3).sum(1, keepdims=True), 1)).sum(1)
        rids = insert_predictions(store, start=start, seconds=3000, features=[{"x": 1.0}] * n,
                                  preds=[{"label": classes[int(p.argmax())],
                                          "probabilities": dict(zip(classes, map(float, p), strict=True))}
                                         for p in probs])
        return rids, probs, truth

    rids, _, truth = window(T0, [1, 1, 1], 6000)
    insert_labels(store, rids, classes=[classes[t] for t in truth])
    cal = fit_calibration(store, "m1", T0, T0 + H)
    assert cal.kind == "multiclass" and list(cal.classes) == sorted(classes)
    rids, probs, truth = window(T0 + H, [3, 1, 1], 4000)
    res = {r.test: r for r in cbpe_results(store, "m1", T0 + H, T0 + 2 * H, config=CBPEConfig(slices=False))}
    assert set(res) == {"accuracy", "f1", "roc_auc"} and "realized" not in res["accuracy"].detail
    insert_labels(store, rids, classes=[classes[t] for t in truth])
    after = {r.test: r for r in cbpe_results(store, "m1", T0 + H, T0 + 2 * H, config=CBPEConfig(slices=False))}
    pred = probs.argmax(1)
    real = {"accuracy": accuracy_score(truth, pred), "f1": f1_score(truth, pred, average="macro"),
            "roc_auc": float(np.mean([roc_auc_score(truth == c, probs[:, c]) for c in range(3)]))}
    for m, v in real.items():
        assert after[m].detail["realized"] == pytest.approx(v, abs=1e-12 if m != "roc_auc" else 2e-3), m
        assert after[m].value == pytest.approx(res[m].value)
        assert abs(after[m].value - v) < 0.03, (m, after[m].value, v)
    assert after["accuracy"].detail["low"] <= real["accuracy"] <= after["accuracy"].detail["high"]


def test_no_calibration_no_results_unless_asked(store: ChdbStore) -> None:
    insert_predictions(store, start=T0, seconds=3000, features=[{"x": 1.0}] * 50,
                       preds=[{"score": 0.7, "label": "yes"}] * 50)
    assert cbpe_results(store, "m1", T0, T0 + H) == []
    rep = run_detectors(store, "m1", T0 + H, H, config={"detectors": ["estimated_performance"]})
    (r,) = [r for r in rep.results if r.detector == "estimated_performance"]
    assert r.status == "not enough data" and "no cbpe calibration" in r.detail["reason"]
    with pytest.raises(ValueError, match="no labelled predictions"):
        fit_calibration(store, "m1", T0, T0 + H)
    with pytest.raises(ValueError, match="thresholds"):
        CBPEConfig(thresholds={"auc": 0.9})


def test_binary_model_sending_probabilities_only(store: ChdbStore) -> None:
    rng = np.random.default_rng(13)
    s = rng.beta(2, 2, 3000)
    truth = rng.random(3000) < s
    rids = insert_predictions(store, start=T0, seconds=3000, features=[{"x": 1.0}] * 3000,
                              preds=[{"probabilities": {"churn": float(v), "stay": float(1 - v)}} for v in s])
    insert_labels(store, rids, classes=["churn" if t else "stay" for t in truth])
    cal = fit_calibration(store, "m1", T0.replace(tzinfo=None), (T0 + H).replace(tzinfo=None),
                          positive_class="churn")
    assert (cal.kind, cal.positive_class) == ("binary", "churn")
    with pytest.raises(ValueError, match="positive_class: 'Churn' is not a class"):
        fit_calibration(store, "m1", T0, T0 + H, positive_class="Churn")
    res = {r.test: r for r in cbpe_results(store, "m1", T0, T0 + H, config=CBPEConfig(slices=False))}
    pred = s >= 0.5                                       # no pred_label: the score decides
    assert res["accuracy"].detail["realized"] == pytest.approx(accuracy_score(truth, pred), abs=1e-12)
    assert res["f1"].detail["realized"] == pytest.approx(f1_score(truth, pred), abs=1e-12)
    assert abs(res["accuracy"].value - accuracy_score(truth, pred)) < 0.03
