"""SQL that builds the inputs of the detectors: a few rows per feature, never raw events.

A :class:`Source` names the rows to summarise: the predictions of a model in a time window
(``FINAL``, so redelivered events count once), a reference uploaded from a file, or the labels
joined to a window's predictions (the latest label per ``request_id``). Features live in Map
columns; the prediction and the label are read as pseudo-features whose names start with ``@``
(``@pred.value``, ``@pred.score``, ``@pred.label``, ``@label.value``, ``@label.class``), which the
event contract does not allow as feature names, so they never collide.

Bin counts take one scan for every feature: per feature a code per row (the reference's counting
grid, :mod:`detectors.grid`, when its edges come from one; else the bin index, a sum of comparisons
with the edges or ``roundDown`` for long edge lists) counted by ``countResample``, a few numbers per
feature back. Map values are read by position: the event tables keep, per row, a signature of its
numeric features' keys in stored order (``num_layout``), so the rows of one layout hold every feature
at the same index of ``features_num.values`` (reading that is 10 to 30 times cheaper than 20 lookups
by key, measured). The rows of a source's commonest layouts (:func:`key_layouts`, a census of the
source) are read by position, the rows of any other layout by key, in a second branch of the scan.
"""

from __future__ import annotations

import datetime as _dt
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from collector.sql import literal
from collector.store import Store
from detectors.grid import Grid

__all__ = ["Source", "Layouts", "key_layouts", "window_source", "upload_source", "labels_source", "QUANTILE_LEVELS", "numeric_stats",
           "bins_and_stats", "grid_counts", "grid_for", "sample_ranges", "category_counts", "null_counts", "window_facts"]

#: Reference quantile grid: bins for every test are subsets of these edges.
QUANTILE_LEVELS: tuple[float, ...] = tuple(round(i / 100, 2) for i in range(1, 100))
MAX_CATEGORIES_READ = 1000  # per feature and window, most frequent first


@dataclass(frozen=True)
class Source:
    table: str                      # table expression, e.g. "{db}.predictions FINAL"
    where: str                      # condition with %(name)s parameters
    params: Mapping[str, Any]
    maps: bool = True               # has features_num / features_cat / features_null
    pseudo_num: Mapping[str, str] = field(default_factory=dict)   # name -> Nullable column
    pseudo_cat: Mapping[str, str] = field(default_factory=dict)
    has_ts: bool = True


def window_source(model: str, start: _dt.datetime, end: _dt.datetime, version: str | None = None) -> Source:
    where = "model = %(model)s AND ts >= %(start)s AND ts < %(end)s"
    if version is not None:
        where += " AND model_version = %(version)s"
    return Source("{db}.predictions FINAL", where, {"model": model, "start": start, "end": end, "version": version},
                  pseudo_num={"@pred.value": "pred_value", "@pred.score": "pred_score"},
                  pseudo_cat={"@pred.label": "pred_label"})


def labels_source(model: str, start: _dt.datetime, end: _dt.datetime, version: str | None = None) -> Source:
    """Labels of the window's predictions: the latest label per request_id (labels may come first)."""
    vcond = " AND model_version = %(version)s" if version is not None else ""
    table = f"""(
        SELECT l.lab.1 AS label_value, l.lab.2 AS label_class
        FROM (SELECT request_id FROM {{db}}.predictions FINAL
              WHERE model = %(model)s AND ts >= %(start)s AND ts < %(end)s{vcond}) AS p
        INNER JOIN (SELECT request_id, argMax((label_value, label_class), ts) AS lab
                    FROM {{db}}.labels FINAL WHERE model = %(model)s GROUP BY request_id) AS l
        USING (request_id))"""
    return Source(table, "1", {"model": model, "start": start, "end": end, "version": version}, maps=False,
                  pseudo_num={"@label.value": "label_value"}, pseudo_cat={"@label.class": "label_class"}, has_ts=False)


def upload_source(upload_id: str) -> Source:
    return Source("{db}.reference_rows", "upload_id = %(upload_id)s", {"upload_id": upload_id},
                  pseudo_num={"@pred.value": "pred_value", "@pred.score": "pred_score", "@label.value": "label_value"},
                  pseudo_cat={"@pred.label": "pred_label", "@label.class": "label_class"}, has_ts=False)


@dataclass(frozen=True)
class NumStats:
    n: int
    lo: float
    hi: float
    mean: float
    std: float
    quantiles: tuple[float, ...] = ()


def _q(levels: Sequence[float]) -> str:
    return ", ".join(repr(float(x)) for x in levels)


#: The scans' expressions embed each reference's grid (new constants with every reference, every window
#: for a rolling one): ClickHouse would JIT-compile them on their third use, inside that query (0.2 to 0.6 s
#: per run, measured; compiled or not, a run takes the same 0.3 s once done).
NO_JIT = " SETTINGS compile_expressions = 0, compile_aggregate_expressions = 0"

#: Key layouts of a source read by position (the commonest first); rows of the others are read by key.
MAX_LAYOUTS = 4


@dataclass(frozen=True)
class Layouts:
    """A census of a source's rows: how they hold their numeric (Map) features, and what else they hold."""
    rows: int = 0                                               # all rows
    groups: tuple[tuple[int, tuple[str, ...], int], ...] = ()   # (num_layout, keys in stored order, rows)
    present: Mapping[str, int] = field(default_factory=dict)    # rows holding each Map feature
    pseudo: Mapping[str, NumStats] = field(default_factory=dict)  # statistics of the numeric pseudo features
    categorical_rows: Mapping[str, int] = field(default_factory=dict)  # "" (any Map category), pseudo ones
    null_rows: int = 0                                          # rows with an explicit null feature

    @property
    def rest_rows(self) -> int:
        """Rows of the other layouts (read by key)."""
        return self.rows - sum(n for _, _, n in self.groups)

    def condition(self, common: bool) -> str:
        """SQL condition on the rows of the common layouts (``common``) or on the rest."""
        if not self.groups:
            return "0" if common else "1"
        return f"num_layout {'' if common else 'NOT '}IN ({', '.join(str(sig) for sig, _, _ in self.groups)})"


def key_layouts(store: Store, src: Source, *, limit: int | None = None) -> Layouts:
    """A census of ``src`` in one scan (plus a tiny query for the keys of each layout, and one more when
    rows of uncommon layouts exist): its rows; its key layouts (at most ``limit``, default
    :data:`MAX_LAYOUTS`, read by position) and the rows holding each Map feature; the numeric pseudo
    features' statistics; whether any row holds a category or an explicit null (the queries for those
    are skipped when none does)."""
    limit = MAX_LAYOUTS if limit is None else limit
    aggs = ["count() AS n"]
    for i, col in enumerate(src.pseudo_num.values()):
        aggs.append(f"count({col}) AS pn{i}, min({col}) AS plo{i}, max({col}) AS phi{i}, avg({col}) AS pmean{i}, "
                    f"stddevPop({col}) AS pstd{i}")
    aggs += [f"count({col}) AS pc{i}" for i, col in enumerate(src.pseudo_cat.values())]
    if src.maps:
        aggs += ["countIf(notEmpty(features_cat)) AS cat", "countIf(notEmpty(features_null)) AS nul"]
        sigs = store.rows(f"SELECT num_layout AS s, {', '.join(aggs)} FROM {src.table} WHERE {src.where} "
                          f"GROUP BY s ORDER BY n DESC, s{NO_JIT}", src.params)
    else:
        sigs = [r for r in store.rows(f"SELECT 0 AS s, {', '.join(aggs)} FROM {src.table} WHERE {src.where}{NO_JIT}",
                                      src.params) if r["n"]]
    pseudo: dict[str, NumStats] = {}
    for i, name in enumerate(src.pseudo_num):
        ps = _pooled([NumStats(int(r[f"pn{i}"]), _f(r[f"plo{i}"]), _f(r[f"phi{i}"]), _f(r[f"pmean{i}"]),
                               _f(r[f"pstd{i}"])) for r in sigs])
        if ps is not None:
            pseudo[name] = ps
    cats = {name: sum(int(r[f"pc{i}"]) for r in sigs) for i, name in enumerate(src.pseudo_cat)}
    census = Layouts(rows=sum(int(r["n"]) for r in sigs), pseudo=pseudo,
                     null_rows=sum(int(r.get("nul", 0)) for r in sigs),
                     categorical_rows={"": sum(int(r.get("cat", 0)) for r in sigs), **cats})
    if not src.maps:
        return census
    top = [(int(r["s"]), int(r["n"])) for r in sigs[:limit]]
    keys: dict[int, tuple[str, ...]] = {}
    if top:
        q = " UNION ALL ".join(f"""SELECT * FROM (SELECT num_layout AS s, mapKeys(features_num) AS k FROM {src.table}
                                   WHERE ({src.where}) AND num_layout = {sig} LIMIT 1)""" for sig, _ in top)
        keys = {int(r["s"]): tuple(str(k) for k in r["k"]) for r in store.rows(q, src.params)}
    # a layout whose rows went between the two queries (replaced by a redelivery, dropped) is left to the
    # rows read by key
    census = replace(census, groups=tuple((sig, keys[sig], n) for sig, n in top if sig in keys))
    present: Counter[str] = Counter()
    for _, ks, n in census.groups:
        for k in ks:
            present[k] += n
    if census.rest_rows:
        for r in store.rows(f"""SELECT toString(k) AS k, count() AS n FROM {src.table} ARRAY JOIN features_num.keys AS k
                                WHERE ({src.where}) AND {census.condition(common=False)} GROUP BY k""", src.params):
            present[r["k"]] += int(r["n"])
    return replace(census, present=dict(present))


def numeric_stats(store: Store, src: Source, *, quantiles: bool = False, counts_only: bool = False,
                  only: Collection[str] | None = None, layouts: Layouts | None = None) -> dict[str, NumStats]:
    """Count, min, max, mean, std (and the reference quantile grid) per numeric feature.

    ``counts_only``: only the counts of the Map features are exact (from the census,
    :func:`key_layouts`, taken unless ``layouts`` is given); their min, max, mean and std are NaN.
    ``only``: these features alone.
    """
    qa = f", quantilesTDigest({_q(QUANTILE_LEVELS)})(v) AS q" if quantiles else ""
    out: dict[str, NumStats] = {}
    rows: list[dict[str, Any]] = []
    keys = "" if only is None else f" AND has({literal(sorted(only) or [''])}, k)"
    pseudo = {k: v for k, v in src.pseudo_num.items() if only is None or k in only}
    if counts_only:                 # from the census: the Map features' counts, the pseudo features' statistics
        layouts = layouts if layouts is not None else key_layouts(store, src)
        nan = float("nan")
        rows = [{"k": k, "n": n, "lo": nan, "hi": nan, "mean": nan, "std": nan}
                for k, n in layouts.present.items() if only is None or k in only]
        rows += [{"k": k, "n": st.n, "lo": st.lo, "hi": st.hi, "mean": st.mean, "std": st.std}
                 for k, st in layouts.pseudo.items() if k in pseudo]
        pseudo = {}
    elif src.maps and (only is None or set(only) - set(pseudo)):
        rows = store.rows(
            f"""SELECT k, count() AS n, min(v) AS lo, max(v) AS hi, avg(v) AS mean, stddevPop(v) AS std{qa}
                FROM {src.table} ARRAY JOIN mapKeys(features_num) AS k, mapValues(features_num) AS v
                WHERE {src.where}{keys} GROUP BY k""", src.params)
    if pseudo:
        parts = []
        for i, col in enumerate(pseudo.values()):
            parts.append(f"count({col}) AS n{i}, min({col}) AS lo{i}, max({col}) AS hi{i}, avg({col}) AS mean{i}, "
                         f"stddevPop({col}) AS std{i}"
                         + (f", quantilesTDigest({_q(QUANTILE_LEVELS)})({col}) AS q{i}" if quantiles else ""))
        r = store.rows(f"SELECT {', '.join(parts)} FROM {src.table} WHERE {src.where}", src.params)[0]
        for i, name in enumerate(pseudo):
            if r[f"n{i}"]:
                rows.append({"k": name, **{c: r[f"{c}{i}"] for c in ("n", "lo", "hi", "mean", "std")},
                             **({"q": r[f"q{i}"]} if quantiles else {})})
    for r in rows:
        if not r["n"]:
            continue
        out[r["k"]] = NumStats(int(r["n"]), _f(r["lo"]), _f(r["hi"]), _f(r["mean"]),
                               _f(r["std"]), tuple(float(x) for x in r.get("q") or ()))
    return out


def _f(x: Any) -> float:
    return float("nan") if x is None else float(x)


#: Up to this many edges a bin index is a sum of comparisons (vectorised, about twice as fast as
#: ``roundDown`` on these machines); above it, ``roundDown`` over the sorted edges.
MAX_COMPARISON_EDGES = 16
#: Rows read to place the reference grid (the first rows of the source, one thread: deterministic).
SAMPLE_ROWS = 16384
#: The grid spans the sampled range widened by this share of it on each side.
GRID_MARGIN = 0.1


@dataclass(frozen=True)
class _Codes:
    expr: str                       # SQL code of the value ``x``
    n: int                          # codes 0 .. n - 1
    thresholds: np.ndarray          # x >= edges[i] exactly when code >= thresholds[i]


def _edge_codes(x: str, edges: np.ndarray, grid: Grid | None) -> _Codes:
    """How to count ``x`` on ``edges``: the reference grid's code plus a comparison with each outer
    edge when every inner edge is one of the grid's boundaries (the code then rises exactly at every
    edge), else the bin index (a sum of comparisons, or ``roundDown``)."""
    k = len(edges)
    if grid is not None and k >= 2:
        b = grid.boundaries()
        inner = edges[1:-1]
        if np.array_equal(b[np.minimum(np.searchsorted(b, inner), b.size - 1)], inner):
            lo, hi = float(edges[0]), float(edges[-1])
            expr = f"({x} >= {literal(lo)}) + ({x} >= {literal(hi)}) + {grid.code_expr(x)}"
            thr = [int(e >= lo) + int(e >= hi) + grid.code_of(float(e)) for e in edges]
            return _Codes(expr, grid.codes + 2, np.asarray(thr, dtype=np.int64))
    if k == 0:
        return _Codes("0", 1, np.zeros(0, dtype=np.int64))
    if k <= MAX_COMPARISON_EDGES:
        expr = "toUInt16(" + " + ".join(f"({x} >= {literal(float(e))})" for e in edges) + ")"
    else:
        bounds = literal([float("-inf"), *map(float, edges)])
        expr = f"transform(roundDown({x}, {bounds}), {bounds}, {literal(list(range(k + 1)))}, 0)"
    return _Codes(expr, k + 1, np.arange(1, k + 1))


def _pooled(parts: Sequence[NumStats]) -> NumStats | None:
    """Count, min, max, mean and standard deviation of the union of disjoint row sets."""
    parts = [p for p in parts if p.n]
    if not parts:
        return None
    if len(parts) == 1:
        return parts[0]
    n = sum(p.n for p in parts)
    mean = sum(p.n * p.mean for p in parts) / n
    var = sum(p.n * (p.std ** 2 + (p.mean - mean) ** 2) for p in parts) / n
    return NumStats(n, min(p.lo for p in parts), max(p.hi for p in parts), mean, float(np.sqrt(var)))


def _scan(store: Store, src: Source, codes: Mapping[str, Grid | _Codes], stats: Sequence[str] = (),
          layouts: Layouts | None = None) -> tuple[dict[str, np.ndarray], dict[str, NumStats]]:
    """One scan: per feature of ``codes`` the count of every code among the rows holding it (a ``Grid``:
    its cells; a ``_Codes``: the values below each threshold), and for the features in ``stats`` count,
    min, max, mean and standard deviation.

    The rows of the source's common key ``layouts`` are read by position (a constant position when every
    layout holds the feature at the same one, else the position of the row's layout); the rows of other
    layouts are read by key, in a second branch of the same statement (``mapContains`` telling the rows
    without the feature). One aggregation counts both branches."""
    names = list(dict.fromkeys([*codes, *stats]))
    if not names:
        return {}, {}
    branches: list[tuple[str, tuple[tuple[int, tuple[str, ...], int], ...] | None]] = []
    if not src.maps:
        branches.append(("1", ()))
    else:
        lay = layouts if layouts is not None else key_layouts(store, src)
        if lay.groups:
            branches.append((lay.condition(common=True), lay.groups))
        if lay.rest_rows:
            branches.append((lay.condition(common=False), None))
    if not branches:
        return {}, {}
    reads: list[list[tuple[str, str | None]]] = []       # per branch, per feature: (value, presence or None)
    for _, groups in branches:
        row = []
        for f in names:
            if f in src.pseudo_num:
                row.append((f"ifNull({src.pseudo_num[f]}, 0)", f"isNotNull({src.pseudo_num[f]})"))
            elif groups is None:
                row.append((f"features_num[{literal(f)}]", f"mapContains(features_num, {literal(f)})"))
            else:
                pos = [ks.index(f) + 1 if f in ks else 0 for _, ks, _ in groups]
                if not any(pos):                       # no row of these layouts holds the feature
                    row.append(("toFloat64(0)", "0"))
                elif len(set(pos)) == 1:
                    row.append((f"features_num.values[{pos[0]}]", None))
                else:
                    at = f"transform(num_layout, {literal([sig for sig, _, _ in groups])}, {literal(pos)}, 0)"
                    row.append((f"features_num.values[{at}]", f"{at} > 0"))
        reads.append(row)
    checked = [any(r[i][1] is not None for r in reads) for i in range(len(names))]   # needs a presence column
    selects = []
    for (cond, _), row in zip(branches, reads, strict=True):
        cols = []
        for i, (x, p) in enumerate(row):
            cols.append(f"{x} AS x{i}" + (f", {p or 1} AS p{i}" if checked[i] else ""))
        selects.append(f"SELECT {', '.join(cols)} FROM {src.table} WHERE ({src.where}) AND {cond}")
    aggs, outer = [], []
    for i, f in enumerate(names):
        cnt, arg = ("countResampleIf", f", p{i}") if checked[i] else ("countResample", "")
        c = codes.get(f)
        if isinstance(c, Grid):
            aggs.append(f"{cnt}(0, {c.codes}, 1)({c.code_expr(f'x{i}')}{arg}) AS h{i}")
            outer.append(f"h{i}")
        elif isinstance(c, _Codes):                   # values below each threshold, from the cumulative code counts
            aggs.append(f"arrayCumSum({cnt}(0, {c.n}, 1)({c.expr.replace('{x}', f'x{i}')}{arg})) AS cs{i}")
            outer.append(f"arrayMap(t -> cs{i}[t], {literal([int(t) for t in c.thresholds])}) AS h{i}"
                         if len(c.thresholds) else f"[] AS h{i}")
        if f in stats:
            if checked[i]:
                aggs.append(f"countIf(p{i}) AS n{i}, minIf(x{i}, p{i}) AS lo{i}, maxIf(x{i}, p{i}) AS hi{i}, "
                            f"avgIf(x{i}, p{i}) AS mean{i}, stddevPopIf(x{i}, p{i}) AS std{i}")
            else:
                aggs.append(f"count() AS n{i}, min(x{i}) AS lo{i}, max(x{i}) AS hi{i}, avg(x{i}) AS mean{i}, "
                            f"stddevPop(x{i}) AS std{i}")
            outer.append(f"n{i}, lo{i}, hi{i}, mean{i}, std{i}")
    rows = " UNION ALL ".join(selects)
    r = store.rows(f"SELECT {', '.join(outer)} FROM (SELECT {', '.join(aggs)} FROM ({rows})){NO_JIT}", src.params)[0]
    counts = {f: np.asarray(r[f"h{i}"], dtype=np.int64) for i, f in enumerate(names) if f in codes}
    st = {f: NumStats(int(r[f"n{i}"]), _f(r[f"lo{i}"]), _f(r[f"hi{i}"]), _f(r[f"mean{i}"]), _f(r[f"std{i}"]))
          for i, f in enumerate(names) if f in stats and r[f"n{i}"]}
    return counts, st


def sample_ranges(store: Store, src: Source, *, rows: int = SAMPLE_ROWS) -> dict[str, tuple[float, float]]:
    """Min and max of every Map feature over the first ``rows`` rows of ``src`` (read by one thread, so
    the same rows every time): where to put the reference grid before the one full pass."""
    if not src.maps:
        return {}
    res = store.rows(
        f"""SELECT k, min(v) AS lo, max(v) AS hi
            FROM (SELECT features_num FROM {src.table} WHERE {src.where} LIMIT {int(rows)})
            ARRAY JOIN mapKeys(features_num) AS k, mapValues(features_num) AS v
            GROUP BY k SETTINGS max_threads = 1""", src.params)
    return {r["k"]: (float(r["lo"]), float(r["hi"])) for r in res}


def grid_for(lo: float, hi: float, *, margin: float = GRID_MARGIN) -> Grid | None:
    """A grid over ``[lo, hi]`` widened by ``margin`` of its width on each side (None if degenerate)."""
    w = (hi - lo) * margin
    try:
        return Grid(lo - w, hi + w)
    except ValueError:
        return None


def grid_counts(store: Store, src: Source, grids: Mapping[str, Grid], *, stats: Sequence[str] = (),
                layouts: Layouts | None = None) -> tuple[dict[str, np.ndarray], dict[str, NumStats]]:
    """Code counts of every feature on its grid (rows holding it), and the statistics of the Map
    features in ``stats``, in one scan (``layouts``: the source's, from :func:`key_layouts`)."""
    counts, st = _scan(store, src, grids, [f for f in stats if f not in src.pseudo_num], layouts)
    for f, g in grids.items():
        counts.setdefault(f, np.zeros(g.codes, dtype=np.int64))
    return counts, st


def bins_and_stats(store: Store, src: Source, edges: Mapping[str, np.ndarray], present: Mapping[str, int], *,
                   grids: Mapping[str, Grid] | None = None, layouts: Layouts | None = None,
                   stats: Sequence[str] = ()) -> tuple[dict[str, np.ndarray], dict[str, NumStats]]:
    """Counts per bin ``[-inf, e0), [e0, e1), ..., [e_last, inf)`` for every feature, and count, min, max,
    mean and standard deviation of the Map features in ``stats``, in one scan.

    A feature whose inner edges are boundaries of its reference grid (``grids``) is counted with the
    grid's code; the others with a sum of comparisons (short edge lists) or ``roundDown``.
    ``present``: non-null values per feature in this source (from :func:`numeric_stats`);
    ``layouts``: the source's, from :func:`key_layouts`. Returns the counts (length
    ``len(edges) + 1``) per feature, and the statistics.
    """
    feats = [f for f in edges if (f in src.pseudo_num or src.maps)]
    out = {f: np.zeros(len(edges[f]) + 1, dtype=np.int64) for f in feats}
    feats = [f for f in feats if present.get(f)]
    stats = [f for f in stats if src.maps and f not in src.pseudo_num and present.get(f)]
    if not feats and not stats:
        return out, {}
    grids = grids or {}
    plans = {f: _edge_codes("{x}", np.asarray(edges[f], dtype=float), grids.get(f)) for f in feats}
    below, st = _scan(store, src, plans, stats, layouts=layouts)
    for f in feats:
        b = below.get(f, np.zeros(len(edges[f]), dtype=np.int64))
        out[f] = np.diff(np.concatenate([[0], b, [int(present[f])]]))
    return out, st


def category_counts(store: Store, src: Source, *, limit: int = MAX_CATEGORIES_READ, layouts: Layouts | None = None
                    ) -> dict[str, tuple[int, int, dict[str, int]]]:
    """Per categorical feature: (non-null rows, distinct values, counts of its ``limit`` most frequent values).
    ``layouts``: the source's census; what no row holds is not queried."""
    out: dict[str, tuple[int, int, dict[str, int]]] = {}
    held = layouts.categorical_rows if layouts is not None else {}
    parts = []                              # one query: per feature and value its count, the feature's total
    if src.maps and held.get("", 1):        # and distinct values over the groups, the top ``limit`` kept
        parts.append(f"""SELECT toString(k) AS k, v, count() AS c, sum(c) OVER (PARTITION BY k) AS n,
                                count() OVER (PARTITION BY k) AS d
                         FROM {src.table} ARRAY JOIN mapKeys(features_cat) AS k, mapValues(features_cat) AS v
                         WHERE {src.where} GROUP BY k, v""")
    for name, col in src.pseudo_cat.items():
        if not held.get(name, 1):
            continue
        parts.append(f"""SELECT {literal(name)} AS k, assumeNotNull({col}) AS v, count() AS c, sum(c) OVER () AS n,
                                count() OVER () AS d
                         FROM {src.table} WHERE {src.where} AND {col} IS NOT NULL GROUP BY v""")
    if not parts:
        return out
    res = store.rows(f"SELECT k, v, c, n, d FROM ({' UNION ALL '.join(parts)}) ORDER BY k, c DESC, v "
                     f"LIMIT {int(limit)} BY k", src.params)
    for r in res:
        out.setdefault(r["k"], (int(r["n"]), int(r["d"]), {}))[2][r["v"]] = int(r["c"])
    return out


def null_counts(store: Store, src: Source, *, layouts: Layouts | None = None) -> dict[str, int]:
    """Rows where each feature was sent as an explicit null (``layouts``: the census; none, no query)."""
    if not src.maps or (layouts is not None and not layouts.null_rows):
        return {}
    rows = store.rows(f"SELECT k, count() AS n FROM {src.table} ARRAY JOIN features_null AS k WHERE {src.where} GROUP BY k",
                      src.params)
    return {r["k"]: int(r["n"]) for r in rows}


def window_facts(store: Store, src: Source, *, rows_only: bool = False) -> dict[str, Any]:
    """Rows, newest event time and the 95th percentile of ingest lag (seconds) of a window source
    (``rows_only``: the rows alone)."""
    if not src.has_ts or rows_only:
        return {"rows": int(store.scalar(f"SELECT count() FROM {src.table} WHERE {src.where}", src.params) or 0)}
    r = store.rows(f"""SELECT count() AS rows, max(ts) AS newest,
                              quantile(0.95)(dateDiff('millisecond', ts, ingested_at)) / 1000 AS lag_p95_s
                       FROM {src.table} WHERE {src.where}""", src.params)[0]
    return r
