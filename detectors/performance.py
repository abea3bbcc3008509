"""Per-slice model performance once labels arrive.

SQL joins the window's predictions (``FINAL``) to their latest labels
(:func:`collector.fragments.latest_labels`) and returns a confusion table (classification) or error sums
(regression) per slice: ``""`` for all traffic and ``key=value`` per slice tag. Python turns those few
rows into metrics with intervals:

- accuracy, and precision/recall for a configured ``positive_class``: Wilson score intervals;
- F1, and macro precision/recall/F1 when no positive class is set: percentile bootstrap over the
  confusion table (multinomial resampling, seeded);
- MAE, RMSE: normal intervals (delta method for RMSE, from the sums of |e|, e^2 and e^4).

Below ``min_samples`` labelled predictions the result is "not enough data". A metric with a
threshold alerts only when its whole interval is on the wrong side of it.
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from collector.fragments import join_latest_label, model_window
from collector.sql import sql
from collector.stats import wilson_interval
from collector.store import Store
from detectors.results import ALERT, OK, Result

__all__ = ["PerformanceConfig", "performance_results", "classification_metrics", "regression_metrics"]

_HIGHER_IS_BETTER = {"accuracy": True, "precision": True, "recall": True, "f1": True, "mae": False, "rmse": False}


@dataclass(frozen=True, kw_only=True)
class PerformanceConfig:
    min_samples: int = 30
    confidence: float = 0.95
    positive_class: str | None = None
    thresholds: Mapping[str, float] = field(default_factory=dict)   # e.g. {"accuracy": 0.8, "mae": 5}
    bootstrap: int = 400
    seed: int = 0


def _z(confidence: float) -> float:
    from scipy import stats  # imported when a metric needs it, not with the detectors

    return float(stats.norm.ppf(0.5 + confidence / 2))


def _prf(cm: np.ndarray, pos: int | None) -> tuple[float, float, float]:
    """Precision, recall, F1 from a confusion matrix (rows: truth, columns: prediction)."""
    tp = np.diag(cm).astype(float)
    pred = cm.sum(axis=0).astype(float)
    true = cm.sum(axis=1).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(pred > 0, tp / pred, 0.0)
        r = np.where(true > 0, tp / true, 0.0)
        f = np.where(p + r > 0, 2 * p * r / (p + r), 0.0)
    if pos is not None:
        return float(p[pos]), float(r[pos]), float(f[pos])
    present = (true + pred) > 0
    return float(p[present].mean()), float(r[present].mean()), float(f[present].mean())


def classification_metrics(cm: np.ndarray, classes: list[str], cfg: PerformanceConfig) -> dict[str, tuple]:
    """{metric: (value, low, high, n)} from a confusion matrix."""
    n = int(cm.sum())
    correct = int(np.trace(cm))
    out: dict[str, tuple] = {"accuracy": (correct / n, *wilson_interval(correct, n, cfg.confidence), n)}
    pos = classes.index(cfg.positive_class) if cfg.positive_class in classes else None
    p, r, f = _prf(cm, pos)
    rng = np.random.default_rng(cfg.seed)
    draws = rng.multinomial(n, cm.ravel() / n, size=cfg.bootstrap).reshape(cfg.bootstrap, *cm.shape)
    boot = np.array([_prf(d, pos) for d in draws])
    a = (1 - cfg.confidence) / 2
    lo, hi = np.quantile(boot, a, axis=0), np.quantile(boot, 1 - a, axis=0)
    if pos is not None:
        tp, npred, ntrue = int(cm[pos, pos]), int(cm[:, pos].sum()), int(cm[pos].sum())
        out["precision"] = (p, *wilson_interval(tp, npred, cfg.confidence), npred) if npred else (None, None, None, 0)
        out["recall"] = (r, *wilson_interval(tp, ntrue, cfg.confidence), ntrue) if ntrue else (None, None, None, 0)
    else:
        out["precision"] = (p, float(lo[0]), float(hi[0]), n)
        out["recall"] = (r, float(lo[1]), float(hi[1]), n)
    out["f1"] = (f, float(lo[2]), float(hi[2]), n)
    return out


def regression_metrics(n: int, s_abs: float, s_sq: float, s_4: float, confidence: float = 0.95) -> dict[str, tuple]:
    z = _z(confidence)
    mae, mse = s_abs / n, s_sq / n
    se_mae = math.sqrt(max(0.0, mse - mae * mae) / n)
    se_mse = math.sqrt(max(0.0, s_4 / n - mse * mse) / n)
    return {"mae": (mae, max(0.0, mae - z * se_mae), mae + z * se_mae, n),
            "rmse": (math.sqrt(mse), math.sqrt(max(0.0, mse - z * se_mse)), math.sqrt(mse + z * se_mse), n)}


def performance_results(store: Store, model: str, start: _dt.datetime, end: _dt.datetime, *,
                        version: str | None = None, config: PerformanceConfig | None = None) -> list[Result]:
    cfg = config or PerformanceConfig()
    of = model_window(model, start, end, version=version)
    preds = sql("""(SELECT model, request_id, pred_label, pred_value,
                           arrayConcat([''], arrayMap((k, v) -> concat(k, '=', v), """
                """mapKeys(slices), mapValues(slices))) AS ss
                    FROM {db}.predictions FINAL WHERE %(of)s)""", of=of)
    joined = sql("FROM %(j)s ARRAY JOIN p.ss AS slice", j=join_latest_label(preds, of, inner=True))
    cls_rows = store.rows(sql("""SELECT slice, l.label_class AS truth, p.pred_label AS pred, count() AS c %(joined)s
                                 WHERE truth IS NOT NULL AND pred IS NOT NULL """
                                 """GROUP BY slice, truth, pred""", joined=joined))
    reg_rows = store.rows(sql("""SELECT slice, count() AS n, sum(abs(e)) AS s_abs, sum(e * e) AS s_sq, """
                                 """sum(e * e * e * e) AS s_4
                                 FROM (SELECT slice, p.pred_value - l.label_value AS e %(joined)s
                                       WHERE l.label_value IS NOT NULL AND p.pred_value IS NOT NULL)
                                 GROUP BY slice""", joined=joined))
    out: list[Result] = []
    slices: dict[str, list[dict]] = {}
    for r in cls_rows:
        slices.setdefault(r["slice"], []).append(r)
    classes = sorted({r["truth"] for r in cls_rows} | {r["pred"] for r in cls_rows})
    for s, rs in sorted(slices.items()):
        cm = np.zeros((len(classes), len(classes)), dtype=np.int64)
        for r in rs:
            cm[classes.index(r["truth"]), classes.index(r["pred"])] += int(r["c"])
        out += _emit(s, classification_metrics(cm, classes, cfg) if cm.sum() >= cfg.min_samples else None,
                     ("accuracy", "precision", "recall", "f1"), int(cm.sum()), cfg)
    for r in sorted(reg_rows, key=lambda r: r["slice"]):
        n = int(r["n"])
        m = regression_metrics(n, float(r["s_abs"]), float(r["s_sq"]), float(r["s_4"]), cfg.confidence) \
            if n >= cfg.min_samples else None
        out += _emit(r["slice"], m, ("mae", "rmse"), n, cfg)
    if not cls_rows and not reg_rows:
        out.append(Result.no_data("performance", "", "labelled_predictions", "no labelled predictions in the window"))
    return out


def _emit(subject: str, metrics: dict[str, tuple] | None, names: tuple[str, ...], n: int,
          cfg: PerformanceConfig) -> list[Result]:
    out = []
    for name in names:
        thr = cfg.thresholds.get(name)
        if metrics is None or metrics[name][0] is None:
            why = f"{n} labelled predictions (< {cfg.min_samples})" if metrics is None else f"no {name} denominator"
            out.append(Result.no_data("performance", subject, name, why, threshold=thr, sample_size=n,
                                      min_samples=cfg.min_samples))
            continue
        v, lo, hi, k = metrics[name]
        bad = thr is not None and (hi < thr if _HIGHER_IS_BETTER[name] else lo > thr)
        out.append(Result(detector="performance", subject=subject, test=name, value=float(v),
                          threshold=None if thr is None else float(thr), status=ALERT if bad else OK,
                          sample_size=int(k), detail={"low": lo, "high": hi, "confidence": cfg.confidence}))
    return out
