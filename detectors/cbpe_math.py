"""The maths of confidence-based performance estimation (CBPE), on the few rows SQL returns.

Everything here works on *cell aggregates*: a score in ``[0, 1]`` falls in one of ``G`` equal cells;
SQL counts rows per (class, predicted-or-not, cell). For each evaluated class ``c`` the arrays have the
shape ``(..., C, 2, G)``: axis ``-2`` is 0 for rows not predicted as ``c`` and 1 for rows predicted as
``c``. A *binary* model has one evaluated class (the positive one); a multiclass model has one per class
(each row is counted once per class).

- :func:`metrics`: accuracy, F1 (binary: positive class; multiclass: macro) and ROC AUC (binary; multiclass
  one-vs-rest macro) from counts and positives. With expected positives (sums of calibrated probabilities)
  it gives the CBPE estimate; with labelled rows and their true positives, the realized metrics (AUC with
  ties inside a cell).
- :func:`fit_isotonic`: the calibration map of one class, fitted on cell aggregates of a labelled
  reference (weighted isotonic regression of the label rate on the mean score), as a step function on the
  cells, with each cell's isotonic block and the variance of the block's rate (the calibration's own
  uncertainty); :func:`needs_calibration` decides, as NannyML does, whether calibrating lowers the expected
  calibration error in cross-validation.
- :func:`accuracy_band` and :func:`draw_band`: the confidence band of the realized metric given the
  calibrated probabilities: a Poisson-binomial variance (sum of q(1-q)) plus the calibration's variance;
  F1 and AUC from seeded normal draws of the positives per cell.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["metrics", "fit_isotonic", "needs_calibration", "ClassCalibration", "accuracy_band", "draw_band",
           "calibration_variance", "METRICS"]

METRICS = ("accuracy", "f1", "roc_auc")


def _safe_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b > 0, a / np.where(b > 0, b, 1.0), np.nan)


def metrics(n: np.ndarray, pos: np.ndarray, *, binary: bool) -> dict[str, np.ndarray]:
    """{accuracy, f1, roc_auc} from rows ``n`` and positives ``pos`` per (class, predicted, cell).

    ``pos`` may be expected positives (floats) or counted ones. Leading axes (draws) are kept. A metric
    without a denominator is NaN (no rows; AUC: one class only)."""
    n = np.asarray(n, dtype=float)
    pos = np.asarray(pos, dtype=float)
    tp = pos[..., 1, :].sum(-1)                        # (..., C)
    predicted = n[..., 1, :].sum(-1)
    fp = predicted - tp
    fn = pos[..., 0, :].sum(-1)
    total = n[..., 0, 0, :].sum(-1) + n[..., 0, 1, :].sum(-1)           # every row, once (class 0)
    if binary:
        tn = n[..., 0, 0, :].sum(-1) - pos[..., 0, 0, :].sum(-1)
        acc = _safe_div(tp[..., 0] + tn, total)
    else:
        acc = _safe_div(tp.sum(-1), total)
    f1c = _safe_div(2 * tp, 2 * tp + fp + fn)
    f1c = np.where(np.isnan(f1c) & (total[..., None] > 0), 0.0, f1c)
    f1 = f1c[..., 0] if binary else f1c.mean(-1)
    # AUC: cells from the highest score down; ties inside a cell count half
    p = pos.sum(-2)[..., ::-1]                          # (..., C, G)
    neg = n.sum(-2)[..., ::-1] - p
    above = np.cumsum(p, -1) - p
    auc_c = _safe_div((neg * (above + p / 2)).sum(-1), p.sum(-1) * neg.sum(-1))
    auc = auc_c[..., 0] if binary else auc_c.mean(-1)
    return {"accuracy": acc, "f1": f1, "roc_auc": auc}


@dataclass(frozen=True)
class ClassCalibration:
    """The calibration map of one class on ``G`` cells: ``values[b]`` is the calibrated probability of a
    score in cell ``b``; ``blocks[b]`` the isotonic block it belongs to and ``variances[b]`` the variance of
    that block's rate (p(1-p)/rows). ``calibrated`` False: scores are used as they are (NannyML's no-op)."""

    values: np.ndarray
    blocks: np.ndarray
    variances: np.ndarray
    calibrated: bool


def _pav(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted isotonic regression of ``y`` on increasing ``x``: (fitted values, block id per point)."""
    from sklearn.isotonic import IsotonicRegression

    fit = IsotonicRegression(out_of_bounds="clip", increasing=True, y_min=0.0, y_max=1.0)
    yhat = fit.fit_transform(x, y, sample_weight=w)
    blocks = np.concatenate([[0], np.cumsum(np.abs(np.diff(yhat)) > 1e-12)])
    return yhat, blocks


def fit_isotonic(n: np.ndarray, sum_score: np.ndarray, positives: np.ndarray, *,
                 calibrated: bool = True) -> ClassCalibration:
    """The calibration map from one class's reference aggregates per cell: rows, sum of raw scores, rows
    whose label is the class. Cells without reference rows take the value interpolated between their
    neighbours (clipped at the ends), as sklearn's ``IsotonicRegression(out_of_bounds="clip")`` does."""
    n = np.asarray(n, dtype=float)
    g = len(n)
    centers = (np.arange(g) + 0.5) / g
    has = n > 0
    if not has.any():
        raise ValueError("calibration: the reference has no scored rows for this class")
    x = _safe_div(np.asarray(sum_score, float), n)[has]
    y = np.asarray(positives, float)[has] / n[has]
    yhat, blk = _pav(x, y, n[has])
    # the step function on the cells: interpolated between reference points like sklearn's predict
    values = np.interp(centers, x, yhat) if calibrated else centers
    values[has] = yhat if calibrated else x
    nb = int(blk.max()) + 1
    rows = np.bincount(blk, weights=n[has], minlength=nb)
    rate = np.bincount(blk, weights=n[has] * yhat, minlength=nb) / rows
    var_b = rate * (1 - rate) / rows
    idx = np.arange(g)
    blocks = np.rint(np.interp(idx, idx[has], blk)).astype(np.int64)
    return ClassCalibration(values=np.clip(values, 0.0, 1.0), blocks=blocks, variances=var_b[blocks],
                            calibrated=calibrated)


def _ece(prob: np.ndarray, n: np.ndarray, pos: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error on equal-count bins of items (prob, rows, positives) sorted by prob."""
    order = np.argsort(prob, kind="stable")
    prob, n, pos = prob[order], n[order], pos[order]
    total = n.sum()
    cum = np.cumsum(n) - n
    b = np.minimum((cum / total * bins).astype(int), bins - 1)
    err = np.bincount(b, weights=n * prob, minlength=bins) - np.bincount(b, weights=pos, minlength=bins)
    return float(np.abs(err).sum() / total)


def needs_calibration(n: np.ndarray, sum_score: np.ndarray, positives: np.ndarray) -> bool:
    """Whether isotonic calibration lowers the expected calibration error (10 equal-count bins) on held-out
    folds, from per (fold, cell) aggregates (NannyML's test, on cells): False for one label class only or a
    reference AUC above 0.999."""
    n = np.asarray(n, float)
    sx = np.asarray(sum_score, float)
    pos = np.asarray(positives, float)
    tot_n, tot_p = n.sum(), pos.sum()
    if tot_p <= 0 or tot_p >= tot_n:
        return False
    cells = n.sum(0)
    auc = metrics(np.stack([cells * 0, cells])[None], np.stack([cells * 0, pos.sum(0)])[None], binary=True)
    if float(auc["roc_auc"]) > 0.999:
        return False
    before, after, items_n, items_p = [], [], [], []
    for f in range(n.shape[0]):
        test = n[f] > 0
        train_n = cells - n[f]
        if not test.any() or not (train_n > 0).any():
            continue
        cal = fit_isotonic(train_n, sx.sum(0) - sx[f], pos.sum(0) - pos[f])
        before.append(sx[f][test] / n[f][test])
        after.append(cal.values[test])
        items_n.append(n[f][test])
        items_p.append(pos[f][test])
    if not before:
        return False
    nn, pp = np.concatenate(items_n), np.concatenate(items_p)
    return _ece(np.concatenate(before), nn, pp) > _ece(np.concatenate(after), nn, pp)


def accuracy_band(estimate: float, total: float, pb_var_sum: float, cal_var: float,
                  confidence: float = 0.95) -> tuple[float, float, float]:
    """(low, high, sd) of the realized accuracy: Poisson-binomial variance ``sum q(1-q) / n^2`` plus the
    calibration's variance ``cal_var`` (already a variance of the accuracy), normal quantiles."""
    from scipy import stats

    sd = math.sqrt(max(pb_var_sum, 0.0) / total ** 2 + max(cal_var, 0.0))
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    return max(0.0, estimate - z * sd), min(1.0, estimate + z * sd), sd


def calibration_variance(n: np.ndarray, cals: list[ClassCalibration], *, binary: bool) -> float:
    """The variance of the estimated accuracy that comes from the calibration map: the error of an
    isotonic block's rate moves every row of the block together (rows predicted as the class gain, in a
    binary model the rows predicted negative lose)."""
    n = np.asarray(n, float)
    total = n[0].sum()
    out = 0.0
    for c, cal in enumerate(cals):
        if not cal.calibrated:
            continue
        coef = (n[c, 1] - n[c, 0]) if binary else n[c, 1]
        s = np.bincount(cal.blocks, weights=coef / total)
        v = np.zeros(len(s))
        v[cal.blocks] = cal.variances
        out += float((s * s * v).sum())
    return out


def draw_band(n: np.ndarray, sq: np.ndarray, sq2: np.ndarray, cals: list[ClassCalibration], *, binary: bool,
              draws: int = 200, confidence: float = 0.95, seed: int = 0) -> dict[str, tuple[float, float]]:
    """(low, high) per metric of the realized metrics given the calibrated probabilities: per draw, the
    positives of each (class, predicted, cell) are normal with mean ``sum q`` and variance
    ``sum q(1-q)``, shifted by a draw of each isotonic block's error (shared by its cells)."""
    rng = np.random.default_rng(seed)
    n = np.asarray(n, float)
    sq = np.asarray(sq, float)
    var = np.maximum(sq - np.asarray(sq2, float), 0.0)
    shift = np.zeros((draws, *n.shape))
    for c, cal in enumerate(cals):
        if cal.calibrated:
            nb = int(cal.blocks.max()) + 1
            v = np.zeros(nb)
            v[cal.blocks] = cal.variances
            d = rng.standard_normal((draws, nb)) * np.sqrt(v)
            shift[:, c] = d[:, cal.blocks][:, None, :] * n[c][None]
    x = sq[None] + rng.standard_normal((draws, *n.shape)) * np.sqrt(var)[None] + shift
    x = np.clip(x, 0.0, n[None])
    m = metrics(np.broadcast_to(n, x.shape), x, binary=binary)
    a = (1 - confidence) / 2
    out = {}
    for k, v in m.items():
        v = v[np.isfinite(v)]
        out[k] = (float(np.quantile(v, a)), float(np.quantile(v, 1 - a))) if len(v) else (math.nan, math.nan)
    return out
