"""CBPE maths on cell aggregates: hand values, sklearn on labels drawn from the calibrated probabilities,
isotonic calibration against sklearn's, and the coverage of the band."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

from detectors.cbpe_math import ClassCalibration, accuracy_band, draw_band, fit_isotonic, metrics, needs_calibration

G = 100


def _aggregate(probs: np.ndarray, predicted: np.ndarray, classes: int, binary: bool,
               labels: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
    """(n, sum q, sum q^2, positives) per (class, predicted, cell), as the SQL returns them."""
    k = 1 if binary else classes
    out = np.zeros((4, k, 2, G))
    for c in range(k):
        cls = 1 if binary else c
        q = probs[:, cls]
        cell = np.minimum((q * G).astype(int), G - 1)
        flag = (predicted == cls).astype(int)
        for arr, w in ((0, np.ones_like(q)), (1, q), (2, q * q)):
            np.add.at(out[arr, c], (flag, cell), w)
        if labels is not None:
            np.add.at(out[3, c], (flag, cell), (labels == cls).astype(float))
    return tuple(out)


def _on_cells(q: np.ndarray) -> np.ndarray:
    """Probabilities at cell centres: every row of a cell has the same one (as a step calibration gives)."""
    return (np.minimum((q * G).astype(int), G - 1) + 0.5) / G


def test_hand_values_binary() -> None:
    # cell 90 (q=0.9): 10 rows predicted positive; cell 20 (q=0.2): 10 rows predicted negative
    n = np.zeros((1, 2, G))
    pos = np.zeros((1, 2, G))
    n[0, 1, 90], pos[0, 1, 90] = 10, 9.0
    n[0, 0, 20], pos[0, 0, 20] = 10, 2.0
    m = metrics(n, pos, binary=True)
    assert m["accuracy"] == pytest.approx((9 + 8) / 20)
    assert m["f1"] == pytest.approx(2 * 9 / (2 * 9 + 1 + 2))            # tp 9, fp 1, fn 2
    # AUC: positives 9 above 2; negatives 1 above 8: pairs ranked right 9*8 + ties (9*1 + 2*8)/2 of 11*9
    assert m["roc_auc"] == pytest.approx((9 * 8 + 0.5 * (9 * 1 + 2 * 8)) / (11 * 9))


def test_realized_metrics_from_counts_equal_sklearn() -> None:
    rng = np.random.default_rng(1)
    q = _on_cells(rng.beta(2, 2, 3000))
    y = (rng.random(3000) < q).astype(int)
    pred = (q >= 0.5).astype(int)
    n, _, _, pos = _aggregate(np.c_[1 - q, q], pred, 2, True, labels=y)
    m = metrics(n, pos, binary=True)
    assert m["accuracy"] == pytest.approx(accuracy_score(y, pred), abs=1e-12)
    assert m["f1"] == pytest.approx(f1_score(y, pred), abs=1e-12)
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y, q), abs=1e-12)


@pytest.mark.parametrize("binary", [True, False])
def test_estimate_is_the_mean_of_metrics_on_labels_drawn_from_the_probabilities(binary: bool) -> None:
    rng = np.random.default_rng(2)
    rows, k = 4000, (2 if binary else 3)
    if binary:
        q = _on_cells(rng.beta(2, 3, rows))
        probs = np.c_[1 - q, q]
        pred = (q >= 0.4).astype(int)                   # a threshold other than 0.5: pred_label decides
    else:
        raw = rng.dirichlet([2, 1, 1], rows)
        probs = raw
        pred = raw.argmax(1)
    n, sq, _, _ = _aggregate(probs, pred, k, binary)
    est = metrics(n, sq, binary=binary)
    acc, f1, auc = [], [], []
    for _ in range(300):
        if binary:
            y = (rng.random(rows) < probs[:, 1]).astype(int)
            acc.append(accuracy_score(y, pred))
            f1.append(f1_score(y, pred))
            auc.append(roc_auc_score(y, probs[:, 1]))
        else:
            y = (rng.random(rows)[:, None] > np.cumsum(probs, 1)).sum(1)
            acc.append(accuracy_score(y, pred))
            f1.append(f1_score(y, pred, average="macro"))
            auc.append(np.mean([roc_auc_score(y == c, _on_cells(probs[:, c])) for c in range(k)]))
    assert est["accuracy"] == pytest.approx(np.mean(acc), abs=0.002)
    assert est["f1"] == pytest.approx(np.mean(f1), abs=0.003)
    assert est["roc_auc"] == pytest.approx(np.mean(auc), abs=0.003)


def test_multiclass_auc_is_macro_one_vs_rest_of_realized_labels() -> None:
    rng = np.random.default_rng(3)
    probs = rng.dirichlet([2, 1, 1], 3000)
    cells = _on_cells(probs)
    y = (rng.random(3000)[:, None] > np.cumsum(probs, 1)).sum(1)
    n, _, _, pos = _aggregate(probs, probs.argmax(1), 3, False, labels=y)
    m = metrics(n, pos, binary=False)
    assert m["roc_auc"] == pytest.approx(np.mean([roc_auc_score(y == c, cells[:, c]) for c in range(3)]), abs=1e-12)
    assert m["f1"] == pytest.approx(f1_score(y, probs.argmax(1), average="macro"), abs=1e-12)


def test_isotonic_on_cells_matches_sklearn_on_rows() -> None:
    rng = np.random.default_rng(4)
    s = rng.beta(2, 2, 20000)
    y = (rng.random(20000) < s ** 2).astype(float)
    cell = np.minimum((s * 1000).astype(int), 999)
    n = np.bincount(cell, minlength=1000).astype(float)
    cal = fit_isotonic(n, np.bincount(cell, weights=s, minlength=1000), np.bincount(cell, weights=y, minlength=1000))
    ref = IsotonicRegression(out_of_bounds="clip").fit(s, y)
    t = rng.beta(2, 2, 5000)
    ours = cal.values[np.minimum((t * 1000).astype(int), 999)]
    assert np.mean(ours) == pytest.approx(np.mean(ref.predict(t)), abs=0.003)
    assert np.all(np.diff(cal.values) >= -1e-12)                       # a monotone step function
    assert cal.variances.max() > 0 and cal.blocks.max() > 5


def test_needs_calibration_for_a_distorted_score_only() -> None:
    rng = np.random.default_rng(5)

    def folds(power: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        s = rng.beta(2, 2, 20000)
        y = (rng.random(20000) < s ** power).astype(float)
        cell = np.minimum((s * 200).astype(int), 199)
        f = rng.integers(0, 10, 20000)
        out = np.zeros((3, 10, 200))
        for arr, w in ((0, np.ones_like(s)), (1, s), (2, y)):
            np.add.at(out[arr], (f, cell), w)
        return out[0], out[1], out[2]

    assert needs_calibration(*folds(3.0))
    n, sx, pos = folds(1.0)
    assert not needs_calibration(n, sx, n * 0)                         # one label class only


def test_bands_cover_the_realized_metrics() -> None:
    rng = np.random.default_rng(6)
    q = _on_cells(rng.beta(2, 2, 2000))
    pred = (q >= 0.5).astype(int)
    n, sq, sq2, _ = _aggregate(np.c_[1 - q, q], pred, 2, True)
    est = metrics(n, sq, binary=True)
    flat = ClassCalibration(values=np.zeros(G), blocks=np.zeros(G, np.int64), variances=np.zeros(G),
                            calibrated=False)                         # probabilities known exactly
    lo, hi, _ = accuracy_band(float(est["accuracy"]), 2000, float((sq - sq2)[0].sum()), 0.0)
    bands = draw_band(n, sq, sq2, [flat], binary=True, draws=400)
    hits = {"accuracy": 0, "f1": 0, "roc_auc": 0}
    trials = 400
    for _ in range(trials):
        y = (rng.random(2000) < q).astype(int)
        real = {"accuracy": accuracy_score(y, pred), "f1": f1_score(y, pred), "roc_auc": roc_auc_score(y, q)}
        hits["accuracy"] += lo <= real["accuracy"] <= hi
        for k in ("f1", "roc_auc"):
            hits[k] += bands[k][0] <= real[k] <= bands[k][1]
    for k, h in hits.items():
        assert 0.90 <= h / trials <= 0.99, (k, h / trials)
    assert bands["accuracy"][0] == pytest.approx(lo, abs=0.01) and bands["accuracy"][1] == pytest.approx(hi, abs=0.01)
