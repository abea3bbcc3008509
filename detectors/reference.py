"""Reference profiles: compact statistics of a reference, built once in SQL and stored.

A profile holds, per numeric feature, the reference quantile grid (levels 0.01 .. 0.99: approximate
quantiles, the counts on them are exact), the bin edges ``[min, quantiles..., next float after max]``
with the exact reference count in every bin, and min, max, mean and standard deviation; per categorical
feature, the most frequent categories with their counts and the count of the rest ("other"). The outer
bins (below the minimum, above the maximum) are empty in the reference and count out-of-range values in a
current window.

Numeric features are summarised in one full pass: a :class:`~detectors.grid.Grid` placed on the
range of the first rows counts every value into one of its cells, the quantiles are the cell
boundaries nearest to each level, and the same pass gives the exact count, min, max, mean and
standard deviation. The grid is stored with the profile, so windows are later counted on it just as
cheaply. A feature the grid does not resolve (a cell with more than 1% of the values: point masses,
outliers stretching the range) is retried once on a grid over its exact range when values fell
outside the first grid, else summarised as before: ``quantilesTDigest`` edges, then a counting pass.

Kinds of reference: an uploaded training baseline (:mod:`detectors.upload`), a fixed time window,
or the previous window (rolling; built on first use and stored under ``previous:<start>``).
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from collector.fragments import models_filter
from collector.schema import DETECTOR_REFERENCES
from collector.sql import sql
from collector.store import Store
from detectors.drift_sql import (
    QUANTILE_LEVELS,
    Layouts,
    NumStats,
    Source,
    bins_and_stats,
    category_counts,
    grid_counts,
    grid_for,
    key_layouts,
    null_counts,
    numeric_stats,
    sample_ranges,
    window_source,
)
from detectors.grid import Grid, grid_quantiles, resolves
from serving_shim.contract import as_utc

__all__ = ["FeatureProfile", "Profile", "build_profile", "save_profile", "load_profile",
           "reference_from_window", "previous_window_reference", "coarse_bins", "list_references"]

_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)


@dataclass(frozen=True, kw_only=True)
class FeatureProfile:
    feature: str
    kind: str                                   # numeric | categorical | null (only nulls seen)
    n: int
    quantiles: np.ndarray = field(default_factory=lambda: np.zeros(0))
    edges: np.ndarray = field(default_factory=lambda: np.zeros(0))
    counts: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    lo: float = 0.0
    hi: float = 0.0
    mean: float = 0.0
    std: float = 0.0
    categories: tuple[str, ...] = ()
    category_counts: tuple[int, ...] = ()
    other_count: int = 0
    distinct: int = 0
    grid: Grid | None = None                    # the grid the edges come from (None: TDigest edges)


@dataclass(frozen=True, kw_only=True)
class Profile:
    model: str
    name: str
    source: str
    rows: int
    features: dict[str, FeatureProfile]
    window_start: _dt.datetime = _EPOCH
    window_end: _dt.datetime = _EPOCH
    built_at: _dt.datetime | None = None


def _edges(lo: float, hi: float, quantiles: Sequence[float] | np.ndarray) -> np.ndarray:
    inner = [q for q in quantiles if lo <= q <= hi]
    return np.unique(np.asarray([lo, *inner, np.nextafter(hi, np.inf)], dtype=float))


def coarse_bins(fp: FeatureProfile, bins: int) -> np.ndarray:
    """Inner edges of ``bins`` reference-quantile bins (a subset of ``fp.edges``; duplicates merge)."""
    if not 2 <= bins <= 100:
        raise ValueError(f"bins: {bins} is not within 2..100")
    q = fp.quantiles
    picks = [q[min(len(q) - 1, max(0, round(100 * j / bins) - 1))] for j in range(1, bins)] if q.size else []
    e = np.unique(np.asarray([x for x in picks if x in set(fp.edges.tolist())], dtype=float))
    return e if e.size else fp.edges[:1]


def regroup(fine_edges: np.ndarray, fine_counts: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts over ``edges`` (a subset of ``fine_edges``) from counts over ``fine_edges``."""
    pos = np.searchsorted(fine_edges, edges)
    if not np.array_equal(fine_edges[np.minimum(pos, fine_edges.size - 1)], edges):
        raise ValueError("edges must be a subset of the fine edges")
    return np.add.reduceat(np.asarray(fine_counts), np.concatenate([[0], pos + 1]))


def numeric_profiles(store: Store, src: Source, layouts: Layouts | None = None) -> dict[str, FeatureProfile]:
    """Profiles of the numeric features of ``src`` (``layouts``: its census, taken if not given): see the
    module docstring."""
    layouts = layouts if layouts is not None else key_layouts(store, src)
    keys = numeric_stats(store, src, counts_only=True, layouts=layouts)  # exact n (and the pseudo features' statistics)
    if not keys:
        return {}
    present = {f: st.n for f, st in keys.items()}
    ranges = sample_ranges(store, src)
    grids = {f: g for f, st in keys.items()
             if (g := grid_for(st.lo, st.hi) if f in src.pseudo_num else grid_for(*ranges.get(f, (0.0, 0.0))))}
    counts, stats = grid_counts(store, src, grids, stats=[f for f in keys if f not in src.pseudo_num], layouts=layouts)
    stats.update({f: st for f, st in keys.items() if f in src.pseudo_num})
    out: dict[str, FeatureProfile] = {}
    retry: dict[str, Grid] = {}
    for f, st in stats.items():
        c = counts.get(f)
        if st.lo == st.hi:
            out[f] = FeatureProfile(feature=f, kind="numeric", n=st.n, quantiles=np.full(len(QUANTILE_LEVELS), st.lo),
                                    edges=_edges(st.lo, st.hi, ()), counts=np.array([0, st.n, 0]), lo=st.lo, hi=st.hi,
                                    mean=st.mean, std=st.std)
        elif c is not None and resolves(c, st.n):
            out[f] = _grid_profile(f, st, grids[f], c)
        elif (c is None or max(c[0], c[-1]) * 100 > st.n) and (g := grid_for(st.lo, st.hi, margin=0.0)):
            retry[f] = g                                     # values outside the first grid: once more, on the range
    if retry:
        again, _ = grid_counts(store, src, retry, layouts=layouts)
        out.update({f: _grid_profile(f, stats[f], retry[f], c) for f, c in again.items() if resolves(c, stats[f].n)})
    rest = [f for f in stats if f not in out]
    if rest:                                                 # not resolved by a grid: TDigest edges, then counts
        q = numeric_stats(store, src, quantiles=True, only=rest)
        edges = {f: _edges(stats[f].lo, stats[f].hi, q[f].quantiles) for f in rest if f in q}
        binned, _ = bins_and_stats(store, src, edges, present, layouts=layouts)
        for f, e in edges.items():
            st = stats[f]
            out[f] = FeatureProfile(feature=f, kind="numeric", n=st.n, quantiles=np.asarray(q[f].quantiles), edges=e,
                                    counts=binned[f], lo=st.lo, hi=st.hi, mean=st.mean, std=st.std)
    return out


def _grid_profile(f: str, st: NumStats, grid: Grid, codes: np.ndarray) -> FeatureProfile:
    """Quantiles at the grid boundaries, and the exact counts on the edges they make."""
    q = grid_quantiles(grid, codes, QUANTILE_LEVELS)
    edges = _edges(st.lo, st.hi, q)
    b = grid.boundaries()
    pos = np.minimum(np.searchsorted(b, edges), b.size - 1)
    below = np.cumsum(codes)[pos]                            # values below each boundary edge
    outer = (edges == st.lo) | (edges == np.nextafter(st.hi, np.inf))
    below[edges == st.lo] = 0                                # the outer edges: the min and the float after the max
    below[edges == np.nextafter(st.hi, np.inf)] = st.n
    counts = np.diff(np.concatenate([[0], below, [st.n]]))
    if not np.array_equal(b[pos][~outer], edges[~outer]) or counts.min() < 0 or counts.sum() != st.n:
        raise ValueError(f"grid counts of {f!r} do not add up")  # a bug, not data: fail loudly
    return FeatureProfile(feature=f, kind="numeric", n=st.n, quantiles=q, edges=edges, counts=counts, lo=st.lo,
                          hi=st.hi, mean=st.mean, std=st.std, grid=grid)


def build_profile(store: Store, src: Source, *, model: str, name: str, source: str,
                  window: tuple[_dt.datetime, _dt.datetime] | None = None,
                  labels: Source | None = None, max_categories: int = 100) -> Profile:
    """Summarise ``src`` (and optionally a labels source) into a profile: one full pass for the numeric
    features in the common case, a few cheap ones for the rest."""
    feats: dict[str, FeatureProfile] = {}
    rows = 0
    for s in [src] + ([labels] if labels is not None else []):
        census = key_layouts(store, s)
        if s is src:
            rows = census.rows
        feats.update(numeric_profiles(store, s, census))
        for f, (n, distinct, top) in category_counts(store, s, layouts=census).items():
            kept = list(top.items())[:max_categories]
            feats.setdefault(f, FeatureProfile(
                feature=f, kind="categorical", n=n, categories=tuple(k for k, _ in kept),
                category_counts=tuple(c for _, c in kept), other_count=n - sum(c for _, c in kept), distinct=distinct))
        for f in null_counts(store, s, layouts=census):
            feats.setdefault(f, FeatureProfile(feature=f, kind="null", n=0))
    w0, w1 = window or (_EPOCH, _EPOCH)
    return Profile(model=model, name=name, source=source, rows=rows, features=feats, window_start=w0, window_end=w1)


def save_profile(store: Store, p: Profile) -> Profile:
    built = _dt.datetime.now(_dt.UTC)
    # an empty reference is still recorded (one "none" row), so "no data" differs from "not built"
    fs = list(p.features.values()) or [FeatureProfile(feature="", kind="none", n=0)]
    cols: dict[str, list] = {
        "model": [p.model] * len(fs), "name": [p.name] * len(fs), "built_at": [built] * len(fs),
        "source": [p.source] * len(fs), "window_start": [p.window_start] * len(fs),
        "window_end": [p.window_end] * len(fs), "rows": [p.rows] * len(fs),
        "feature": [f.feature for f in fs], "kind": [f.kind for f in fs], "n": [f.n for f in fs],
        "quantiles": [f.quantiles.tolist() for f in fs], "edges": [f.edges.tolist() for f in fs],
        "counts": [[int(x) for x in f.counts] for f in fs], "lo": [f.lo for f in fs], "hi": [f.hi for f in fs],
        "mean": [f.mean for f in fs], "std": [f.std for f in fs], "categories": [list(f.categories) for f in fs],
        "category_counts": [list(f.category_counts) for f in fs], "other_count": [f.other_count for f in fs],
        "distinct": [f.distinct for f in fs],
        "grid_lo": [f.grid.lo if f.grid else 0.0 for f in fs], "grid_hi": [f.grid.hi if f.grid else 0.0 for f in fs],
        "grid_cells": [f.grid.cells if f.grid else 0 for f in fs],
    }
    store.insert(DETECTOR_REFERENCES, cols)
    return Profile(model=p.model, name=p.name, source=p.source, rows=p.rows, features=p.features,
                   window_start=p.window_start, window_end=p.window_end, built_at=built)


def load_profile(store: Store, model: str, name: str) -> Profile | None:
    """The latest build of a stored reference, or None."""
    rows = store.rows(sql(
        """SELECT * FROM {db}.detector_references
           WHERE model = %(model)s AND name = %(name)s
             AND built_at = (SELECT max(built_at) FROM {db}.detector_references """
           """WHERE model = %(model)s AND name = %(name)s)
           ORDER BY feature""", model=model, name=name))
    if not rows:
        return None
    feats = {}
    for r in rows:
        if r["kind"] == "none":
            continue
        feats[r["feature"]] = FeatureProfile(
            feature=r["feature"], kind=r["kind"], n=int(r["n"]), quantiles=np.asarray(r["quantiles"], dtype=float),
            edges=np.asarray(r["edges"], dtype=float), counts=np.asarray(r["counts"], dtype=np.int64),
            lo=float(r["lo"]), hi=float(r["hi"]), mean=float(r["mean"]), std=float(r["std"]),
            categories=tuple(r["categories"]), category_counts=tuple(int(x) for x in r["category_counts"]),
            other_count=int(r["other_count"]), distinct=int(r["distinct"]),
            grid=Grid(float(r["grid_lo"]), float(r["grid_hi"]), int(r["grid_cells"])) if r["grid_cells"] else None)
    r0 = rows[0]
    return Profile(model=model, name=name, source=r0["source"], rows=int(r0["rows"]), features=feats,
                   window_start=as_utc(r0["window_start"]), window_end=as_utc(r0["window_end"]),
                   built_at=as_utc(r0["built_at"]))


def list_references(store: Store, model: str | None = None, models: Sequence[str] = ()) -> list[dict]:
    """Stored references, of ``model`` if given, of ``models`` only if not empty."""
    return store.rows(sql(
        """SELECT model, name, max(r.built_at) AS last_built, argMax(r.source, r.built_at) AS source,
                  argMax(r.rows, r.built_at) AS rows, argMax(r.window_start, r.built_at) AS window_start,
                  argMax(r.window_end, r.built_at) AS window_end, uniqExact(r.feature) AS features
           FROM {db}.detector_references AS r WHERE (%(model)s = '' OR model = %(model)s)
             AND %(models)s
           GROUP BY model, name ORDER BY model, name""", model=model or "", models=models_filter(models)))


def reference_from_window(store: Store, model: str, start: _dt.datetime, end: _dt.datetime, *, name: str,
                          version: str | None = None, labels: bool = True) -> Profile:
    """Build and store the profile of a fixed time window of ``model``."""
    from detectors.drift_sql import labels_source

    src = window_source(model, start, end, version)
    lab = labels_source(model, start, end, version) if labels else None
    p = build_profile(store, src, model=model, name=name, source="window", window=(start, end), labels=lab)
    return save_profile(store, p)


def previous_window_reference(store: Store, model: str, start: _dt.datetime, end: _dt.datetime, *,
                              version: str | None = None) -> Profile:
    """The profile of the window ``[start, end)``: loaded if stored, else built once and stored."""
    name = f"previous:{start.astimezone(_dt.UTC).isoformat()}:{(end - start).total_seconds():g}"
    if version is not None:
        name += f":{version}"
    p = load_profile(store, model, name)
    if p is not None:
        return p
    from detectors.drift_sql import labels_source

    prof = build_profile(store, window_source(model, start, end, version), model=model, name=name, source="previous",
                         window=(start, end), labels=labels_source(model, start, end, version))
    return save_profile(store, prof)


def audit_reference(store: Store, before: Sequence[dict], p: Profile, *, actor: str) -> None:
    """Record a reference stored by a user (``reference.save``): ``before`` is :func:`list_references` of
    its model and name as it was, the after its summary (rows, features, source, window)."""
    from collector.audit import record

    prev = [r for r in before if r["name"] == p.name]
    record(store, actor=actor, action="reference.save", target=f"{p.model}/{p.name}", model=p.model,
           before=prev[0] if prev else None,
           after={"model": p.model, "name": p.name, "source": p.source, "rows": p.rows, "features": len(p.features),
                  "window_start": p.window_start, "window_end": p.window_end})
