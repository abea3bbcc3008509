"""Performance before labels: confidence-based performance estimation (CBPE, as NannyML does it).

A classifier's calibrated probabilities say how often it is right: if a prediction of class ``c`` has a
calibrated probability ``q`` of being ``c``, it is correct with probability ``q``. Summed over a window,
that is the expected confusion matrix, hence the expected accuracy, F1 and ROC AUC, long before labels
arrive.

1. :func:`fit_calibration` calibrates once, on a labelled window of the model's predictions (joined to
   their latest labels, :func:`collector.fragments.join_latest_label`): per class, SQL counts reference
   rows, their summed scores and their positives per score cell (``cells`` equal cells of ``[0, 1]``);
   Python fits a weighted isotonic regression (:mod:`detectors.cbpe_math`) when it lowers the calibration
   error (NannyML's test), and stores the step function in ``cbpe_calibrations``.
2. :func:`cbpe_results` estimates a window: SQL applies the stored map to every row (the arrays are bound
   values), and returns per slice (``""`` all traffic, ``key=value`` per slice tag), class, predicted-or-not
   and cell the rows, the sums of ``q`` and ``q^2``, the labelled rows and their true positives. Python turns
   those rows into the estimate, a 95 % band of the realized metric given the probabilities (Poisson-binomial
   variance plus the calibration's own variance; F1/AUC from seeded draws) and, for the labels that have
   arrived, the realized metric and the label coverage, side by side.

A binary model gives a score (``pred_score``, or ``pred_probs`` of the positive class): F1 and AUC are those
of the positive class. A multiclass model gives ``pred_probs``: the calibrated probabilities are normalised
per row (as NannyML does), F1 and AUC are macro averages (AUC one-vs-rest). The predicted class is
``pred_label`` (missing: score >= 0.5, or the most probable class).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from collector.fragments import join_latest_label, model_window
from collector.schema import CBPE_CALIBRATIONS
from collector.sql import SQL, sql
from collector.store import Store
from detectors import cbpe_math as cm
from detectors.cbpe_math import METRICS, ClassCalibration
from detectors.results import ALERT, OK, Result
from serving_shim.contract import as_utc

__all__ = ["CBPEConfig", "Calibration", "fit_calibration", "load_calibration", "cbpe_results", "cbpe_run",
           "DETECTOR"]

DETECTOR = "estimated_performance"
_FOLDS = 10
_CHUNKS = 20            # reference chunks for the extra variance
_MIN_CHUNK_ROWS = 200
MAX_CLASSES = 50


@dataclass(frozen=True, kw_only=True)
class CBPEConfig:
    """``calibration``: the stored calibration to use; ``min_samples``: scored rows a slice needs;
    ``thresholds``: e.g. ``{"accuracy": 0.8}`` (alert when the whole band is below it)."""

    calibration: str = "default"
    min_samples: int = 30
    confidence: float = 0.95
    draws: int = 200
    seed: int = 0
    slices: bool = True
    thresholds: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        bad = set(self.thresholds) - set(METRICS)
        if bad:
            raise ValueError(f"cbpe.thresholds: unknown metric(s) {sorted(bad)}; known: {list(METRICS)}")
        if not 0 < self.confidence < 1:
            raise ValueError(f"cbpe.confidence: {self.confidence} is not in (0, 1)")
        if self.draws < 20:
            raise ValueError(f"cbpe.draws: {self.draws} is below 20")


@dataclass(frozen=True)
class Calibration:
    """A stored calibration: ``binary`` (one map, of ``positive_class``) or multiclass (one per class)."""

    model: str
    name: str
    kind: str
    positive_class: str
    classes: tuple[str, ...]
    cells: int
    maps: tuple[ClassCalibration, ...]
    rows: int
    built_at: _dt.datetime | None = None
    #: accuracy variance beyond independent outcomes, seen across reference chunks (added to every band)
    extra_variance: float = 0.0

    @property
    def binary(self) -> bool:
        return self.kind == "binary"


def _preds(of: SQL) -> SQL:
    return sql("""(SELECT model, request_id, ts, pred_label, pred_score, pred_probs, slices
                   FROM {db}.predictions FINAL WHERE %(of)s)""", of=of)


def _score(pos: str) -> SQL:
    """A binary model's score: ``pred_score``, else the probability of the positive class (NULL: neither)."""
    return sql("if(p.pred_score IS NOT NULL, p.pred_score, if(mapContains(p.pred_probs, %(pos)s), "
               "p.pred_probs[%(pos)s], NULL))", pos=pos)


def _cell(x: str, cells: int) -> SQL:
    return sql("least(toUInt32(greatest(0., least(1., " + x + ")) * %(g)s), %(g1)s)", g=cells, g1=cells - 1)


def _class_rows(of: SQL, kind: str, pos: str, classes: list[str], cells: int, *, inner: bool,
                cal: Calibration | None, labels: bool = True) -> SQL:
    """Per prediction and evaluated class: ``ci`` (1-based), raw score ``x``, its ``cell``, calibrated ``q``
    (raw without ``cal``), ``flag`` (predicted as the class), ``truth`` (NULL: no label) and ``sl`` (slices map).
    ``labels`` False: the window has no label (no join; ``truth`` is NULL)."""
    if labels:
        joined = sql("%(j)s", j=join_latest_label(_preds(of), of, inner=inner))
        truth = sql("l.label_class")
    else:
        joined = sql("%(p)s AS p", p=_preds(of))
        truth = sql("CAST(NULL AS Nullable(String))")
    if kind == "binary":
        on = bool(cal and cal.maps[0].calibrated)
        vals = cal.maps[0].values.tolist() if cal and on else [0.0]
        # one evaluated class: plain columns, no arrays
        return sql("""(SELECT p.slices AS sl, p.request_id AS rid, p.ts AS ts, %(truth)s AS truth, 1 AS ci,
                              assumeNotNull(%(s)s) AS x, %(cell)s AS cell, if(%(on)s, %(vals)s[cell + 1], x) AS q,
                              if(p.pred_label IS NULL, x >= 0.5, p.pred_label = %(pos)s) AS flag, %(pos)s AS klass
                       FROM %(j)s WHERE %(s)s IS NOT NULL)""",
                   s=_score(pos), pos=pos, cell=_cell("x", cells), on=on, vals=vals, j=joined, truth=truth)
    else:
        ons = [int(m.calibrated) for m in cal.maps] if cal else [0] * len(classes)
        mvals = [m.values.tolist() if m.calibrated else [0.0] for m in cal.maps] if cal else [[0.0] for _ in classes]
        row = sql("""SELECT p.slices AS sl, p.request_id AS rid, p.ts AS ts, %(truth)s AS truth,
                            arrayMap(c -> greatest(0., least(1., p.pred_probs[c])), %(cls)s) AS xs,
                            ifNull(p.pred_label, %(cls)s[indexOf(xs, arrayMax(xs))]) AS predicted,
                            arrayMap(c -> c = predicted, %(cls)s) AS flags,
                            arrayMap(x -> %(cell)s, xs) AS cs,
                            arrayMap(i -> if(%(on)s[i] = 1, %(vals)s[i][cs[i] + 1], xs[i]), range(1, %(k)s + 1)) AS us,
                            arraySum(us) AS su,
                            arrayMap(u -> if(su > 0, u / su, 1 / %(k)s), us) AS qs, %(cls)s AS cls
                     FROM %(j)s WHERE notEmpty(p.pred_probs)""",
                  cls=classes, cell=_cell("x", cells), on=ons, vals=mvals, k=len(classes), j=joined, truth=truth)
    return sql("""(SELECT sl, rid, ts, truth, ci, xs[ci] AS x, cs[ci] AS cell, qs[ci] AS q, flags[ci] AS flag,
                          cls[ci] AS klass
                   FROM (%(row)s) ARRAY JOIN arrayEnumerate(xs) AS ci)""", row=row)


def _detect_kind(store: Store, of: SQL, positive_class: str | None) -> tuple[str, str, list[str]]:
    """(kind, positive class, classes) of the labelled reference rows."""
    info = store.rows(sql(
        """SELECT countIf(p.pred_score IS NOT NULL) AS scored, countIf(notEmpty(p.pred_probs)) AS probed,
                  groupUniqArrayArray(%(lim)s)(mapKeys(p.pred_probs)) AS keys,
                  groupUniqArray(%(lim)s)(l.label_class) AS labels
           FROM %(j)s""", lim=MAX_CLASSES + 1, j=join_latest_label(_preds(of), of, inner=True)))[0]
    keys = sorted(info["keys"])
    labels = sorted(x for x in info["labels"] if x is not None)
    if not info["scored"] and not info["probed"]:
        raise ValueError("cbpe: the reference window has no labelled predictions with pred_score or pred_probs")
    if len(keys) > MAX_CLASSES or len(labels) > MAX_CLASSES:
        raise ValueError(f"cbpe: more than {MAX_CLASSES} classes")
    classes = sorted(set(keys) | set(labels)) if keys else labels
    if info["scored"] >= info["probed"] or len(keys) <= 2:
        if len(set(classes)) > 2:
            raise ValueError(f"cbpe: a score-only model needs 2 classes; the reference has {classes[:10]}")
        pos = positive_class
        if pos is not None and pos not in classes:
            raise ValueError(f"positive_class: {pos!r} is not a class of the reference ({classes})")
        if pos is None:
            # the class the score rises with: the label class with the higher mean score
            rows = store.rows(sql("""SELECT l.label_class AS c, avg(%(s)s) AS m FROM %(j)s
                                     WHERE c IS NOT NULL GROUP BY c ORDER BY m DESC, c LIMIT 1""",
                                  s=_score(""), j=join_latest_label(_preds(of), of, inner=True)))
            if keys and not info["scored"]:
                pos = keys[-1]
            elif rows:
                pos = rows[0]["c"]
        if pos is None:
            raise ValueError("cbpe: cannot tell the positive class; set positive_class")
        return "binary", pos, [pos]
    return "multiclass", "", keys


def fit_calibration(store: Store, model: str, start: _dt.datetime, end: _dt.datetime, *, name: str = "default",
                    version: str | None = None, positive_class: str | None = None, cells: int = 500,
                    save: bool = True) -> Calibration:
    """Calibrate on the labelled predictions of ``model`` in ``[start, end)`` and store the map as ``name``."""
    if not 10 <= cells <= 5000:
        raise ValueError(f"cells: {cells} is not in [10, 5000]")
    start, end = as_utc(start), as_utc(end)
    if end <= start:
        raise ValueError("end: must be after start")
    of = model_window(model, start, end, version=version)
    kind, pos, classes = _detect_kind(store, of, positive_class)
    rows = store.rows(sql(
        """SELECT ci, cityHash64(rid) % %(f)s AS fold, cell, count() AS n, sum(x) AS sx,
                  countIf(truth = klass) AS npos
           FROM %(r)s WHERE truth IS NOT NULL GROUP BY ci, fold, cell""",
        f=_FOLDS, r=_class_rows(of, kind, pos, classes, cells, inner=True, cal=None)))
    if not rows:
        raise ValueError("cbpe: no labelled, scored predictions in the reference window")
    k = len(classes)
    agg = np.zeros((3, k, _FOLDS, cells))
    for r in rows:
        agg[:, int(r["ci"]) - 1, int(r["fold"]), int(r["cell"])] += (float(r["n"]), float(r["sx"]), float(r["npos"]))
    maps = []
    for c in range(k):
        n, sx, npos = agg[0, c], agg[1, c], agg[2, c]
        maps.append(cm.fit_isotonic(n.sum(0), sx.sum(0), npos.sum(0), calibrated=cm.needs_calibration(n, sx, npos)))
    total = int(agg[0, 0].sum())
    cal = Calibration(model=model, name=name, kind=kind, positive_class=pos,
                      classes=tuple(classes) if kind == "multiclass" else (), cells=cells, maps=tuple(maps),
                      rows=total, built_at=_dt.datetime.now(_dt.UTC))
    cal = dataclasses.replace(cal, extra_variance=_extra_variance(store, cal, of, start, end))
    if save:
        store.insert(CBPE_CALIBRATIONS, {
            "model": [model] * k, "name": [name] * k, "built_at": [cal.built_at] * k, "kind": [kind] * k,
            "positive_class": [pos] * k, "classes": [list(cal.classes)] * k, "class": list(classes),
            "calibrated": [int(m.calibrated) for m in maps], "cells": [cells] * k,
            "values": [m.values.tolist() for m in maps], "blocks": [m.blocks.tolist() for m in maps],
            "variances": [m.variances.tolist() for m in maps], "window_start": [start] * k,
            "window_end": [end] * k, "model_version": [version or "*"] * k, "rows": [total] * k,
            "extra_variance": [cal.extra_variance] * k})
    return cal


def load_calibration(store: Store, model: str, name: str = "default") -> Calibration | None:
    """The latest stored calibration ``name`` of ``model``, or None."""
    rows = store.rows(sql(
        """SELECT * FROM {db}.cbpe_calibrations
           WHERE model = %(m)s AND name = %(n)s
             AND built_at = (SELECT max(built_at) FROM {db}.cbpe_calibrations WHERE model = %(m)s AND name = %(n)s)
           ORDER BY class""", m=model, n=name))
    if not rows:
        return None
    r0 = rows[0]
    order = list(r0["classes"]) or [r0["positive_class"]]
    by_class = {r["class"]: r for r in rows}
    maps = tuple(ClassCalibration(values=np.asarray(by_class[c]["values"], float),
                                  blocks=np.asarray(by_class[c]["blocks"], np.int64),
                                  variances=np.asarray(by_class[c]["variances"], float),
                                  calibrated=bool(by_class[c]["calibrated"])) for c in order)
    return Calibration(model=model, name=name, kind=r0["kind"], positive_class=r0["positive_class"],
                       classes=tuple(r0["classes"]), cells=int(r0["cells"]), maps=maps, rows=int(r0["rows"]),
                       built_at=r0["built_at"], extra_variance=float(r0["extra_variance"]))


#: A row's groups for per-slice results, from its slices map ``key``: all traffic ('') and ``k=v`` per slice
SLICE_GROUPS = sql("arrayConcat([''], arrayMap((k, v) -> concat(k, '=', v), mapKeys(key), mapValues(key)))")


def _window_rows(store: Store, cal: Calibration, of: SQL, key: SQL, groups: SQL) -> list[dict[str, Any]]:
    """Per group, class, predicted-or-not and cell: rows, sums of the calibrated probability and its square,
    labelled rows, true positives. Rows are summed per ``key`` first (an expression per row: its slices map
    ``sl``, a time chunk of ``ts``), then ``groups`` (an array expression of ``key``) spreads the sums over
    their groups: a few rows per slice, and no string built per prediction. A window without any label skips
    the label join."""
    classes = list(cal.classes) or [cal.positive_class]
    # whether any label of the window's requests has arrived: a probe by hash, no latest-label join (a collision
    # only makes a window without labels take the join, which then finds none)
    labelled = store.scalar(sql("""SELECT count() > 0 FROM {db}.labels WHERE cityHash64(model, request_id) IN
                                   (SELECT cityHash64(model, request_id) FROM {db}.predictions WHERE %(of)s)""",
                                of=of))
    rows = _class_rows(of, cal.kind, cal.positive_class, classes, cal.cells, inner=False, cal=cal,
                       labels=bool(labelled))
    return store.rows(sql(
        """SELECT slice, ci, flag, groupArray(cell) AS cells, groupArray(n) AS n, groupArray(sq) AS sq,
                  groupArray(sq2) AS sq2, groupArray(nl) AS nl, groupArray(npos) AS npos
           FROM (SELECT slice, ci, flag, cell, sum(n0) AS n, sum(sq0) AS sq, sum(sq20) AS sq2, sum(nl0) AS nl,
                        sum(npos0) AS npos
                 FROM (SELECT %(g)s AS g, ci, flag, cell, n0, sq0, sq20, nl0, npos0
                       FROM (SELECT %(key)s AS key, ci, flag, cell, count() AS n0, sum(q) AS sq0, sum(q * q) AS sq20,
                                    countIf(truth IS NOT NULL) AS nl0, countIf(truth = klass) AS npos0
                             FROM %(r)s GROUP BY key, ci, flag, cell))
                 ARRAY JOIN g AS slice GROUP BY slice, ci, flag, cell)
           GROUP BY slice, ci, flag""", r=rows, g=groups, key=key))


def _aggregates(store: Store, cal: Calibration, of: SQL, key: SQL, groups: SQL) -> dict[str, np.ndarray]:
    """{group: array (n, sq, sq2, nl, npos) x class x predicted x cell} of :func:`_window_rows`."""
    k, g = len(cal.maps), cal.cells
    per: dict[str, np.ndarray] = {}
    for r in _window_rows(store, cal, of, key, groups):
        a = per.setdefault(r["slice"], np.zeros((5, k, 2, g)))
        idx = np.asarray(r["cells"], np.int64)
        for j, col in enumerate(("n", "sq", "sq2", "nl", "npos")):
            a[j, int(r["ci"]) - 1, int(r["flag"]), idx] = np.asarray(r[col], float)
    return per


def _extra_variance(store: Store, cal: Calibration, of: SQL, start: _dt.datetime, end: _dt.datetime) -> float:
    """The variance of a window's accuracy beyond independent outcomes, as the reference shows it: split into
    equal time chunks, ``var(realized - estimated) - mean(sum q(1-q) / n^2)`` (method of moments, >= 0).
    Real data wobble from chunk to chunk more than Bernoulli draws do; the band takes that in."""
    k = max(5, min(_CHUNKS, cal.rows // 2000))
    if cal.rows < 5 * _MIN_CHUNK_ROWS:
        return 0.0
    ms0 = int(start.timestamp() * 1000)
    width = max(1, -(-(int(end.timestamp() * 1000) - ms0) // k))
    chunk = sql("least(%(k1)s, intDiv(toUnixTimestamp64Milli(ts) - %(t0)s, %(w)s))", k1=k - 1, t0=ms0, w=width)
    resid, pbv = [], []
    for a in _aggregates(store, cal, of, chunk, sql("[toString(key)]")).values():
        n, sq, sq2, nl, npos = a
        total = float(n[0].sum())
        if float(nl[0].sum()) < max(_MIN_CHUNK_ROWS, 0.95 * total):    # a chunk whose labels have all arrived
            continue
        est = cm.metrics(n, sq, binary=cal.binary)["accuracy"]
        real = cm.metrics(nl, npos, binary=cal.binary)["accuracy"]
        resid.append(float(real) - float(est))
        pbv.append(float((sq - sq2)[0].sum() if cal.binary else (sq - sq2)[:, 1].sum()) / total ** 2)
    if len(resid) < 5:
        return 0.0
    return max(0.0, float(np.var(resid, ddof=1)) - float(np.mean(pbv)))


def cbpe_results(store: Store, model: str, start: _dt.datetime, end: _dt.datetime, *, version: str | None = None,
                 config: CBPEConfig | None = None, required: bool = False) -> list[Result]:
    """Estimated (and, where labels exist, realized) accuracy, F1 and ROC AUC per slice of the window.
    Without a stored calibration: no results, or a "not enough data" result when ``required``."""
    cfg = config or CBPEConfig()
    cal = load_calibration(store, model, cfg.calibration)
    if cal is None:
        return [Result.no_data(DETECTOR, "", "calibration", f"no cbpe calibration {cfg.calibration!r} for model "
                               f"{model!r} (fit one on a labelled window)")] if required else []
    of = model_window(model, start, end, version=version)
    per = _aggregates(store, cal, of, sql("sl"), SLICE_GROUPS) if cfg.slices else \
        _aggregates(store, cal, of, sql("0"), sql("['']"))
    out: list[Result] = []
    if not per:
        return [Result.no_data(DETECTOR, "", m, "no scored predictions in the window", calibration=cal.name)
                for m in METRICS]
    for s in sorted(per):
        out += _slice_results(s, per[s], cal, cfg)
    return out


def _slice_results(subject: str, a: np.ndarray, cal: Calibration, cfg: CBPEConfig) -> list[Result]:
    n, sq, sq2, nl, npos = a
    total = float(n[0].sum())
    if total < cfg.min_samples:
        return [Result.no_data(DETECTOR, subject, m, f"{int(total)} scored predictions (< {cfg.min_samples})",
                               threshold=cfg.thresholds.get(m), sample_size=int(total), min_samples=cfg.min_samples)
                for m in METRICS]
    binary = cal.binary
    est = cm.metrics(n, sq, binary=binary)
    labelled = float(nl[0].sum())
    real = cm.metrics(nl, npos, binary=binary) if labelled else None
    pb = float((sq - sq2)[:, 1].sum() if not binary else (sq - sq2)[0].sum())
    cal_var = cm.calibration_variance(n, list(cal.maps), binary=binary)
    acc_lo, acc_hi, acc_sd = cm.accuracy_band(float(est["accuracy"]), total, pb, cal_var + cal.extra_variance,
                                              cfg.confidence)
    bands = cm.draw_band(n, sq, sq2, list(cal.maps), binary=binary, draws=cfg.draws, confidence=cfg.confidence,
                         seed=cfg.seed)
    if cal.extra_variance > 0:  # F1 and AUC bands widen as the accuracy band does
        inner = math.sqrt(pb / total ** 2 + cal_var)
        f = acc_sd / inner if inner > 0 else 1.0
        bands = {m: (float(est[m]) - f * (float(est[m]) - lo), float(est[m]) + f * (hi - float(est[m])))
                 for m, (lo, hi) in bands.items()}
    bands["accuracy"] = (acc_lo, acc_hi)
    out = []
    for m in METRICS:
        v = float(est[m])
        thr = cfg.thresholds.get(m)
        if not math.isfinite(v):
            out.append(Result.no_data(DETECTOR, subject, m, f"no {m} denominator (one class only)", threshold=thr,
                                      sample_size=int(total)))
            continue
        lo, hi = bands[m]
        detail: dict[str, Any] = {"low": lo, "high": hi, "confidence": cfg.confidence, "method": "cbpe",
                                  "calibration": cal.name, "label_coverage": labelled / total,
                                  "labelled": int(labelled)}
        if m == "accuracy":
            detail["sd"] = acc_sd
        if real is not None and math.isfinite(float(real[m])):
            detail["realized"] = float(real[m])
        out.append(Result(detector=DETECTOR, subject=subject, test=m, value=v, threshold=thr,
                          status=ALERT if thr is not None and hi < thr else OK, sample_size=int(total),
                          detail=detail))
    return out


def cbpe_run(store: Store, model: str, start: _dt.datetime, end: _dt.datetime, *,
             config: CBPEConfig | None = None) -> list[Result]:
    """The CBPE part of a detector run alone (for overhead benchmarks): :func:`cbpe_results` of the window."""
    return cbpe_results(store, model, start, end, config=config, required=True)
