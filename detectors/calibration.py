"""Calibrated drift thresholds: when a feature's test alerts, learned from the variability it already shows.

A test configured with ``{"threshold": "calibrated"}`` (options ``k``, default 3, and ``fallback``, the fixed
threshold of the last resort) gets its threshold from, in this order:

1. ``calibrated:chunks`` (NannyML's rule): the reference split into chunks of the current window's size, each
   chunk's statistic against the whole reference, threshold = mean + k·σ. Needs a reference whose rows are still
   in the store (a fixed time window: :func:`reference_chunks` counts every chunk's bins in one scan, sliced by
   time into chunks of about the window's row count, the row count rounded to a power of √2 so one count serves
   every window of about that size; at most the first :data:`MAX_CHUNKS`; cached in this process per reference,
   chunk size and bins, so a scheduled run rescans nothing) and at least :data:`MIN_CHUNKS` chunks. The chunks
   are time slices: their row counts follow the reference's traffic, and they hold every model version. An
   uploaded reference (its rows are not kept) or a rolling previous window (one chunk) falls through.
2. ``calibrated:history``: the same rule over the model's own last :data:`HISTORY` windows of that feature and
   test in ``detector_results`` that did not alert (at least :data:`MIN_HISTORY` of them).
3. ``calibrated:sampling``: the statistic's null distribution at this window size, by resampling: reference and
   current counts drawn (multinomial, :data:`DRAWS` draws seeded per feature and shared by its tests on the same
   bins; the normal approximation when every bin expects :data:`NORMAL_FROM` counts or more) from the reference's own
   bin proportions, at the sizes of the reference and the window; a gamma distribution fitted to the draws'
   mean and variance gives its :data:`FLOOR_QUANTILE` quantile (smoother than the 1-in-200 order statistic).
4. ``fixed``: the configured ``fallback`` (the test's default threshold) when none of these can be computed.

A distance test's calibrated threshold never goes under its ``min_effect`` (the smallest drift worth an alert;
:class:`~detectors.stattests.StatTest`, configurable per test): a reference whose chunks barely vary would
otherwise alert on differences no one acts on (measured on the census data of bench/alert_quality.py: JS
distances of 0.02-0.04 between years). p-value tests apply their minimum to the effect size instead
(:func:`detectors.drift.drift_results`).

The sampling quantile is also a *floor* under the chunk and history thresholds: threshold = max(mean + k·σ,
floor). σ from 5 to 20 chunks is noisy, and a chunk threshold below what sampling noise alone reaches at this
window size gives false alerts on a stationary feature (measured: bench/alert_quality.py).

In short: threshold = max(mean + k·σ of chunks, else of history, sampling floor, min_effect), or the sampling
floor alone (not under min_effect), or the fixed fallback; ``detail["threshold_method"]`` says which, and
``detail["calibration"]`` what it came from (chunks or windows, chunk size, window size, mean, σ, floor).

p-value tests (chi-square, KS p-value, z) are calibrated on the score -log10(p) (a larger score is more drift,
as for the distance tests) and the threshold is given back as a p-value.
"""

from __future__ import annotations

import datetime as _dt
import functools
import math
import threading
import zlib
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from collector.sql import sql
from collector.store import Store
from detectors.drift_sql import category_chunk_counts, chunk_bins, window_source
from detectors.reference import Profile, regroup
from detectors.stattests import OTHER, Binned, NotApplicable, StatTest

__all__ = ["K", "MIN_CHUNKS", "MAX_CHUNKS", "MIN_HISTORY", "HISTORY", "DRAWS", "FLOOR_QUANTILE", "Chunks",
           "CalibrationInputs", "Threshold", "score", "unscore", "sampling_floor", "chunk_scores", "calibrate",
           "reference_chunks", "history_scores", "chunk_size_bucket", "gather"]

K = 3.0
MIN_CHUNKS = 5
MAX_CHUNKS = 100
#: Up to this many chunks, features with a reference grid are counted on its cells (a state of 8192 counts per
#: feature and chunk; faster per value than comparing with 100 edges)
GRID_CHUNKS = 16
MIN_HISTORY = 8
HISTORY = 30
DRAWS = 200
FLOOR_QUANTILE = 0.995
_P_MIN = 1e-300


def score(test: StatTest, value: float | np.ndarray) -> Any:
    """What the calibration works on: the value, or -log10(p) for a p-value test."""
    if test.pvalue:
        return -np.log10(np.maximum(value, _P_MIN))
    return value


def unscore(test: StatTest, s: float) -> float:
    return float(10.0 ** -s) if test.pvalue else float(s)


def _scores(test: StatTest, b: Binned, current: np.ndarray, reference: np.ndarray | None,
            params: Mapping[str, Any]) -> np.ndarray:
    if test.rows is not None:
        v = test.rows(b, current, reference, **params)
    else:                                           # a test without a row-wise form: one call per row
        refs = reference if reference is not None else [b.reference] * len(current)
        v = np.array([test.fn(replace(b, reference=r, current=c, new={}), **params)
                      for r, c in zip(refs, current, strict=True)])
    return np.asarray(score(test, np.asarray(v, dtype=float)), dtype=float)


def sampling_floor(test: StatTest, b: Binned, params: Mapping[str, Any], *, draws: int = DRAWS,
                   q: float = FLOOR_QUANTILE, seed: int = 0) -> float:
    """The ``q`` quantile of the test's score when reference and window come from the same distribution (the
    reference's bin proportions), at the reference's and the window's sizes. NaN when it cannot be computed."""
    n, big_n = b.n_current, b.n_reference
    if n <= 0 or big_n <= 0:
        return math.nan
    p = b.reference / b.reference.sum()
    try:
        cur, ref = _draws(p.tobytes(), n, big_n, draws, seed)
        s = _scores(test, b, cur, ref, params)
    except (NotApplicable, ValueError, ArithmeticError):
        return math.nan
    s = s[np.isfinite(s)]
    if s.size < draws // 2:
        return math.nan
    mean, var = float(s.mean()), float(s.var())
    if mean <= 0 or var <= 0:
        return float(np.quantile(s, q)) if s.size else math.nan
    return float(max(_gamma_quantile(q, mean * mean / var, var / mean), np.quantile(s, q)))


def _gamma_quantile(q: float, shape: float, scale: float) -> float:
    """The ``q`` quantile of a gamma distribution, Wilson-Hilferty's cube-root normal approximation (within 1% of
    scipy's ``gamma.ppf`` at q = 0.995 for shape >= 0.5, a hundred times cheaper)."""
    from statistics import NormalDist

    z = NormalDist().inv_cdf(q)
    c = 1 / (9 * shape)
    return shape * scale * max(1 - c + z * math.sqrt(c), 0.0) ** 3


#: Above this expected count in every non-empty bin, multinomial draws are taken from their normal
#: approximation (same mean and covariance; 10 to 30 times faster on a 100-bin grid, measured).
NORMAL_FROM = 50


def _multinomial(rng: np.random.Generator, n: int, p: np.ndarray, draws: int) -> np.ndarray:
    """``draws`` multinomial(n, p) count vectors (the normal approximation when every cell expects many)."""
    held = p[p > 0]
    if held.size == 0 or n * held.min() < NORMAL_FROM:
        return rng.multinomial(n, p, size=draws).astype(float)
    w = rng.standard_normal((draws, p.size)) * np.sqrt(p)     # covariance n (diag(p) - p p^T):
    x = n * p + np.sqrt(n) * (w - np.outer(w.sum(axis=1), p))  # sqrt(n) (W - p 1^T W), Cov(W) = diag(p)
    return np.maximum(x, 0.0)


@functools.lru_cache(maxsize=32)
def _draws(p: bytes, n: int, big_n: int, draws: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Current and reference draws from the proportions ``p`` (shared by the tests of a feature on the same bins)."""
    rng = np.random.default_rng(seed)
    props = np.frombuffer(p, dtype=float)
    return _multinomial(rng, n, props, draws), _multinomial(rng, big_n, props, draws)


def chunk_scores(test: StatTest, b: Binned, chunks: np.ndarray, params: Mapping[str, Any]) -> np.ndarray:
    """The score of each chunk (a row of counts on ``b``'s bins) against ``b``'s reference."""
    try:
        s = _scores(test, b, chunks, None, params)
    except (NotApplicable, ValueError, ArithmeticError):
        return np.zeros(0)
    return s[np.isfinite(s)]


@dataclass(frozen=True)
class Threshold:
    value: float                    # in the test's own unit (a p-value for a p-value test)
    method: str                     # fixed | calibrated:chunks | calibrated:history | calibrated:sampling
    detail: Mapping[str, Any] = field(default_factory=dict)


def calibrate(test: StatTest, b: Binned, params: Mapping[str, Any], *, k: float = K, fallback: float,
              chunks: np.ndarray | None = None, chunk_size: int = 0, history: np.ndarray | None = None,
              chunks_skipped: str = "", minimum: float = 0.0, seed_key: str = "") -> Threshold:
    """The threshold of ``test`` on this window's bins ``b`` (see the module docstring for the rule); a distance
    test's threshold is at least ``minimum`` (its smallest drift worth an alert)."""
    th = _calibrate(test, b, params, k=k, fallback=fallback, chunks=chunks, chunk_size=chunk_size, history=history,
                    chunks_skipped=chunks_skipped, seed_key=seed_key)
    if test.pvalue or th.method == "fixed" or th.value >= minimum:
        return th
    return Threshold(minimum, th.method, {**th.detail, "at_min_effect": minimum, "calibrated": th.value})


def _calibrate(test: StatTest, b: Binned, params: Mapping[str, Any], *, k: float, fallback: float,
               chunks: np.ndarray | None, chunk_size: int, history: np.ndarray | None, chunks_skipped: str,
               seed_key: str) -> Threshold:
    floor = sampling_floor(test, b, params, seed=zlib.crc32(seed_key.encode()))
    info: dict[str, Any] = {"k": k, "window_n": b.n_current, **({"chunks_skipped": chunks_skipped} if chunks_skipped
                                                                   else {})}
    if math.isfinite(floor):
        info["floor"] = unscore(test, floor)
    for method, values in (("chunks", chunks), ("history", history)):
        if values is None:
            continue
        s = chunk_scores(test, b, values, params) if method == "chunks" else np.asarray(values, dtype=float)
        need = MIN_CHUNKS if method == "chunks" else MIN_HISTORY
        if s.size < need:
            info[f"{method}_skipped"] = f"{s.size} usable {method} (< {need})"
            continue
        mean, sd = float(s.mean()), float(s.std(ddof=1))
        t = mean + k * sd
        info.update({method: int(s.size), "mean": unscore(test, mean), "std": sd})
        if method == "chunks":
            info["chunk_size"] = chunk_size
        if math.isfinite(floor) and floor > t:
            t, info["floored"] = floor, True
        return Threshold(unscore(test, t), f"calibrated:{method}", info)
    if math.isfinite(floor):
        return Threshold(unscore(test, floor), "calibrated:sampling", {**info, "draws": DRAWS, "q": FLOOR_QUANTILE})
    return Threshold(fallback, "fixed", {**info, "reason": "no chunks, history or sampling distribution"})


# --------------------------------------------------------------------------------------------------------------
# Inputs read from the store: the reference's chunks (cached) and the model's history.


@dataclass(frozen=True)
class Chunks:
    """Per feature, the counts of every reference chunk: numeric ones on ``edges[f]`` (the window's edges),
    categorical ones per category."""
    size: int                                       # rows per chunk (about)
    count: int                                      # chunks
    numeric: Mapping[str, np.ndarray]               # feature -> chunks x (len(edges) + 1)
    edges: Mapping[str, np.ndarray]
    categorical: Mapping[str, Mapping[int, Mapping[str, int]]]
    reason: str = ""                                # why there are none (count 0)

    def binned(self, f: str, b: Binned, bins: int | None, fp_edges: np.ndarray | None) -> np.ndarray | None:
        """The chunks of feature ``f`` as rows of counts on the bins of ``b``."""
        if b.kind == "numeric":
            m = self.numeric.get(f)
            if m is None or fp_edges is None:
                return None
            e = self.edges[f]
            if bins is None:
                return m if np.array_equal(e, fp_edges) else None
            return np.array([regroup(e, row, b.edges) for row in m]) if b.edges is not None else None
        cats = self.categorical.get(f)
        if not cats:
            return None
        labels = list(b.labels)
        rows = []
        for counts in cats.values():
            row = [counts.get(c, 0) for c in labels if c != OTHER]
            if OTHER in labels:
                row.append(sum(counts.values()) - sum(row))
            rows.append(row)
        return np.asarray(rows, dtype=float)


def chunk_size_bucket(rows: int) -> int:
    """The chunk size used for a window of ``rows`` rows: rows rounded to a power of √2."""
    return max(1, round(2 ** (round(2 * math.log2(max(rows, 1))) / 2)))


_CACHE: OrderedDict[tuple, Chunks] = OrderedDict()
_CACHE_LOCK = threading.Lock()
_CACHE_SIZE = 64


def reference_chunks(store: Store, profile: Profile, window_rows: int, edges: Mapping[str, np.ndarray]) -> Chunks:
    """The reference's chunks of about ``window_rows`` rows (cached in this process; see the module docstring).
    ``edges``: per numeric feature, the edges the window was counted on."""
    size = chunk_size_bucket(window_rows)
    none = Chunks(size=size, count=0, numeric={}, edges={}, categorical={})
    if profile.source != "window":
        why = ("the rows of an uploaded reference are not kept" if profile.source == "upload"
               else "a rolling previous-window reference is one chunk")
        return replace(none, reason=why)
    total = profile.rows // size
    if total < MIN_CHUNKS:
        return replace(none, reason=f"{profile.rows} reference rows make {total} chunks of {size} (< {MIN_CHUNKS})")
    edge_key = tuple(sorted((f, e.size, float(e[0]) if e.size else 0.0) for f, e in edges.items()))
    key = (getattr(store, "database", id(store)), profile.model, profile.name, profile.built_at, size, edge_key)
    with _CACHE_LOCK:
        hit = _CACHE.get(key)
        if hit is not None:
            _CACHE.move_to_end(key)
            return hit
    count = min(total, MAX_CHUNKS)
    span_ms = (profile.window_end - profile.window_start) / _dt.timedelta(milliseconds=1)
    slice_ms = max(1, int(span_ms / total))
    start = profile.window_start
    src = window_source(profile.model, start, start + _dt.timedelta(milliseconds=slice_ms * count))
    chunk = sql("intDiv(toUnixTimestamp64Milli(ts) - %(t0)s, %(w)s)",
                t0=int(start.timestamp() * 1000), w=slice_ms)
    feats = {f: e for f, e in edges.items() if not f.startswith("@label.")}
    grids = {f: g for f in feats if (fp := profile.features.get(f)) is not None and (g := fp.grid) is not None} \
        if count <= GRID_CHUNKS else None
    num = chunk_bins(store, src, feats, chunk, grids=grids)
    cats = [f for f, fp in profile.features.items() if fp.kind == "categorical" and not f.startswith("@label.")]
    cat = category_chunk_counts(store, src, chunk, cats) if cats else {}
    out = Chunks(size=size, count=count, edges=dict(feats), categorical=cat,
                 numeric={f: np.array([per[c] for c in sorted(per)]) for f, per in num.items() if per})
    with _CACHE_LOCK:
        _CACHE[key] = out
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return out


def history_scores(store: Store, model: str, model_version: str, before: _dt.datetime, *,
                   limit: int = HISTORY) -> dict[tuple[str, str], np.ndarray]:
    """Per (feature, test): the values of the model's last ``limit`` drift results before ``before`` that did
    not alert, one query."""
    rows = store.rows(sql(
        """SELECT subject, test, groupArray(value) AS v FROM (
               SELECT subject, test, value FROM {db}.detector_results FINAL
               WHERE model = %(m)s AND model_version = %(v)s AND detector = 'drift' AND window_end <= %(t)s
                 AND status = 'ok' AND value IS NOT NULL
               ORDER BY window_start DESC LIMIT %(n)s BY subject, test)
           GROUP BY subject, test""", m=model, v=model_version, t=before, n=int(limit)))
    return {(r["subject"], r["test"]): np.asarray(r["v"], dtype=float) for r in rows}


@dataclass(frozen=True)
class CalibrationInputs:
    """What the store gives the calibration of one run: the reference's chunks and the model's history (raw
    values; :func:`calibrate` turns p-values into scores)."""
    chunks: Chunks | None = None
    history: Mapping[tuple[str, str], np.ndarray] = field(default_factory=dict)

    def for_feature(self, f: str, test: StatTest, b: Binned, bins: int | None, fp_edges: np.ndarray | None
                    ) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.chunks is not None and self.chunks.reason:
            out["chunks_skipped"] = self.chunks.reason
        if self.chunks is not None and self.chunks.count:
            rows = self.chunks.binned(f, b, bins, fp_edges)
            if rows is not None:
                out["chunks"] = rows[rows.sum(axis=1) > 0] if rows.size else rows
                out["chunk_size"] = self.chunks.size
        h = self.history.get((f, test.name))
        if h is not None:
            out["history"] = score(test, h)
        return out



def gather(store: Store, profile: Profile, window_rows: int, edges: Mapping[str, np.ndarray], *, model: str,
           model_version: str, before: _dt.datetime) -> CalibrationInputs:
    """The chunks of ``profile`` for a window of ``window_rows`` rows and the model's history before ``before``.
    A failing read leaves that input out (the reason in the chunks), never the drift results."""
    try:
        chunks = reference_chunks(store, profile, window_rows, edges)
    except Exception as exc:  # noqa: BLE001 - calibration falls through to the next method
        chunks = Chunks(size=chunk_size_bucket(window_rows), count=0, numeric={}, edges={}, categorical={},
                        reason=f"{type(exc).__name__}: {exc}"[:500])
    try:
        history = history_scores(store, model, model_version, before)
    except Exception:  # noqa: BLE001 - as above
        history = {}
    return CalibrationInputs(chunks=chunks, history=history)
