"""SQL that builds the inputs of the detectors: a few rows per feature, never raw events.

A :class:`Source` names the rows to summarise: the predictions of a model in a time window
(``FINAL``, so redelivered events count once), a reference uploaded from a file, or the labels
joined to a window's predictions (the latest label of each request). Features live in Map
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
import logging
from collections import Counter
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from collector.fragments import join_latest_label, model_window
from collector.sql import SQL, Ident, commas, ident, join, sql
from collector.store import Store
from detectors.grid import Grid

__all__ = ["Source", "Layouts", "key_layouts", "scan_statement", "sql_log", "window_source", "upload_source",
           "labels_source", "QUANTILE_LEVELS", "numeric_stats", "bins_and_stats", "grid_counts", "grid_for",
           "sample_ranges", "category_counts", "null_counts", "window_facts", "chunk_bins",
           "category_chunk_counts"]

#: The logger of the detectors' generated SQL: every scan's statement at DEBUG.
sql_log = logging.getLogger("driftline.sql")

#: Reference quantile grid: bins for every test are subsets of these edges.
QUANTILE_LEVELS: tuple[float, ...] = tuple(round(i / 100, 2) for i in range(1, 100))
MAX_CATEGORIES_READ = 1000  # per feature and window, most frequent first


@dataclass(frozen=True)
class Source:
    table: SQL                      # table expression, e.g. {db}.predictions FINAL
    where: SQL                      # condition, its values bound
    maps: bool = True               # has features_num / features_cat / features_null
    pseudo_num: Mapping[str, str] = field(default_factory=dict)   # name -> Nullable column
    pseudo_cat: Mapping[str, str] = field(default_factory=dict)
    has_ts: bool = True


def window_source(model: str, start: _dt.datetime, end: _dt.datetime, version: str | None = None) -> Source:
    """The predictions of ``model`` (of ``version``, or every version) in ``[start, end)``."""
    return Source(sql("{db}.predictions FINAL"), model_window(model, start, end, version=version),
                  pseudo_num={"@pred.value": "pred_value", "@pred.score": "pred_score"},
                  pseudo_cat={"@pred.label": "pred_label"})


def labels_source(model: str, start: _dt.datetime, end: _dt.datetime, version: str | None = None) -> Source:
    """The labels of the window's predictions: each labelled prediction's latest label
    (:func:`collector.fragments.latest_labels`; a label may come before its prediction)."""
    of = model_window(model, start, end, version=version)
    joined = join_latest_label(sql("(SELECT model, request_id FROM {db}.predictions FINAL WHERE %(of)s)", of=of), of,
                               inner=True)
    table = sql("(SELECT l.label_value AS label_value, l.label_class AS label_class FROM %(joined)s)", joined=joined)
    return Source(table, sql("1"), maps=False,
                  pseudo_num={"@label.value": "label_value"}, pseudo_cat={"@label.class": "label_class"}, has_ts=False)


def upload_source(upload_id: str) -> Source:
    return Source(sql("{db}.reference_rows"), sql("upload_id = %(upload_id)s", upload_id=upload_id),
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


def _q(levels: Sequence[float]) -> SQL:
    return commas(float(x) for x in levels)


class _Aliases(dict[str, Any]):
    """The columns of feature ``i`` in a query (``prefix`` + name + ``i``): ``x`` (its value), ``p`` (the row
    holds it), ``h`` (code counts), ``cs`` (cumulative code counts), ``n``, ``lo``, ``hi``, ``mean``, ``std``
    (statistics), ``q`` (quantiles), ``c`` (a count of categories); bound to templates by name."""

    def __init__(self, i: int, prefix: str = "") -> None:
        super().__init__({k: ident(f"{prefix}{k}{i}")
                          for k in ("x", "p", "h", "cs", "n", "lo", "hi", "mean", "std", "q", "c")})

    def key(self, k: str) -> str:
        """The name of column ``k`` in the result row."""
        return str(self[k].name)

    def stats(self, r: Mapping[str, Any]) -> NumStats:
        """The statistics of :func:`_value_stats` in the result row ``r``."""
        lo, hi, mean, std = (_f(r[self.key(k)]) for k in ("lo", "hi", "mean", "std"))
        return NumStats(int(r[self.key("n")]), lo, hi, mean, std)


def _value_stats(v: SQL | Ident, a: _Aliases) -> SQL:
    """Count, min, max, mean and standard deviation of the non-null values of ``v``, as ``a``'s columns."""
    return sql("count(%(v)s) AS %(n)s, min(%(v)s) AS %(lo)s, max(%(v)s) AS %(hi)s, avg(%(v)s) AS %(mean)s, "
               "stddevPop(%(v)s) AS %(std)s", v=v, **a)


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

    def condition(self, common: bool) -> SQL:
        """SQL condition on the rows of the common layouts (``common``) or on the rest."""
        if not self.groups:
            return sql("0" if common else "1")
        return sql("num_layout IN (%(s)s)" if common else "num_layout NOT IN (%(s)s)",
                   s=commas(int(sig) for sig, _, _ in self.groups))


def key_layouts(store: Store, src: Source, *, limit: int | None = None) -> Layouts:
    """A census of ``src`` in one scan (plus a tiny query for the keys of each layout, and one more when
    rows of uncommon layouts exist): its rows; its key layouts (at most ``limit``, default
    :data:`MAX_LAYOUTS`, read by position) and the rows holding each Map feature; the numeric pseudo
    features' statistics; whether any row holds a category or an explicit null (the queries for those
    are skipped when none does)."""
    limit = MAX_LAYOUTS if limit is None else limit
    aggs = [sql("count() AS n")]
    aggs += [_value_stats(ident(col), _Aliases(i, "p")) for i, col in enumerate(src.pseudo_num.values())]
    aggs += [sql("count(%(v)s) AS %(c)s", v=ident(col), c=_Aliases(i, "p")["c"])
             for i, col in enumerate(src.pseudo_cat.values())]
    if src.maps:
        aggs.append(sql("countIf(notEmpty(features_cat)) AS cat, countIf(notEmpty(features_null)) AS nul"))
        sigs = store.rows(sql("SELECT num_layout AS s, %(aggs)s FROM %(t)s WHERE %(w)s GROUP BY s ORDER BY n DESC, s"
                              + NO_JIT, aggs=join(", ", aggs), t=src.table, w=src.where))
    else:
        sigs = [r for r in store.rows(sql("SELECT 0 AS s, %(aggs)s FROM %(t)s WHERE %(w)s" + NO_JIT,
                                          aggs=join(", ", aggs), t=src.table, w=src.where)) if r["n"]]
    pseudo: dict[str, NumStats] = {}
    for i, name in enumerate(src.pseudo_num):
        ps = _pooled([_Aliases(i, "p").stats(r) for r in sigs])
        if ps is not None:
            pseudo[name] = ps
    cats = {name: sum(int(r[_Aliases(i, "p").key("c")]) for r in sigs) for i, name in enumerate(src.pseudo_cat)}
    census = Layouts(rows=sum(int(r["n"]) for r in sigs), pseudo=pseudo,
                     null_rows=sum(int(r.get("nul", 0)) for r in sigs),
                     categorical_rows={"": sum(int(r.get("cat", 0)) for r in sigs), **cats})
    if not src.maps:
        return census
    top = [(int(r["s"]), int(r["n"])) for r in sigs[:limit]]
    keys: dict[int, tuple[str, ...]] = {}
    if top:
        q = join(" UNION ALL ", [sql("""SELECT * FROM (SELECT num_layout AS s, mapKeys(features_num) AS k FROM %(t)s
                                        WHERE (%(w)s) AND num_layout = %(sig)s LIMIT 1)""",
                                     t=src.table, w=src.where, sig=sig) for sig, _ in top])
        keys = {int(r["s"]): tuple(str(k) for k in r["k"]) for r in store.rows(q)}
    # a layout whose rows went between the two queries (replaced by a redelivery, dropped) is left to the
    # rows read by key
    census = replace(census, groups=tuple((sig, keys[sig], n) for sig, n in top if sig in keys))
    present: Counter[str] = Counter()
    for _, ks, n in census.groups:
        for k in ks:
            present[k] += n
    if census.rest_rows:
        for r in store.rows(sql("""SELECT toString(k) AS k, count() AS n FROM %(t)s ARRAY JOIN features_num.keys AS k
                                   WHERE (%(w)s) AND %(rest)s GROUP BY k""",
                                t=src.table, w=src.where, rest=census.condition(common=False))):
            present[r["k"]] += int(r["n"])
    return replace(census, present=dict(present))


def numeric_stats(store: Store, src: Source, *, quantiles: bool = False, counts_only: bool = False,
                  only: Collection[str] | None = None, layouts: Layouts | None = None) -> dict[str, NumStats]:
    """Count, min, max, mean, std (and the reference quantile grid) per numeric feature.

    ``counts_only``: only the counts of the Map features are exact (from the census,
    :func:`key_layouts`, taken unless ``layouts`` is given); their min, max, mean and std are NaN.
    ``only``: these features alone.
    """
    qa = sql(", quantilesTDigest(%(lv)s)(v) AS q", lv=_q(QUANTILE_LEVELS)) if quantiles else sql("")
    out: dict[str, NumStats] = {}
    rows: list[dict[str, Any]] = []
    keys = sql("") if only is None else sql(" AND has(%(only)s, k)", only=sorted(only) or [""])
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
        rows = store.rows(sql(
            """SELECT k, count() AS n, min(v) AS lo, max(v) AS hi, avg(v) AS mean, stddevPop(v) AS std%(qa)s
               FROM %(t)s ARRAY JOIN mapKeys(features_num) AS k, mapValues(features_num) AS v
               WHERE %(w)s%(keys)s GROUP BY k""", qa=qa, t=src.table, w=src.where, keys=keys))
    if pseudo:
        parts = []
        for i, col in enumerate(pseudo.values()):
            a = _Aliases(i)
            parts.append(_value_stats(ident(col), a))
            if quantiles:
                parts.append(sql("quantilesTDigest(%(lv)s)(%(v)s) AS %(q)s", lv=_q(QUANTILE_LEVELS), v=ident(col),
                                 q=a["q"]))
        r = store.rows(sql("SELECT %(parts)s FROM %(t)s WHERE %(w)s", parts=join(", ", parts), t=src.table,
                           w=src.where))[0]
        for i, name in enumerate(pseudo):
            a = _Aliases(i)
            if r[a.key("n")]:
                rows.append({"k": name, **{c: r[a.key(c)] for c in ("n", "lo", "hi", "mean", "std")},
                             **({"q": r[a.key("q")]} if quantiles else {})})
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
    expr: Callable[[SQL], SQL]      # SQL code of a value
    n: int                          # codes 0 .. n - 1
    thresholds: np.ndarray          # x >= edges[i] exactly when code >= thresholds[i]


def _edge_codes(edges: np.ndarray, grid: Grid | None) -> _Codes:
    """How to count ``x`` on ``edges``: the reference grid's code plus a comparison with each outer
    edge when every inner edge is one of the grid's boundaries (the code then rises exactly at every
    edge), else the bin index (a sum of comparisons, or ``roundDown``)."""
    k = len(edges)
    if grid is not None and k >= 2:
        b = grid.boundaries()
        inner = edges[1:-1]
        if np.array_equal(b[np.minimum(np.searchsorted(b, inner), b.size - 1)], inner):
            lo, hi = float(edges[0]), float(edges[-1])
            g = grid
            thr = [int(e >= lo) + int(e >= hi) + grid.code_of(float(e)) for e in edges]
            return _Codes(lambda x: sql("(%(x)s >= %(lo)s) + (%(x)s >= %(hi)s) + %(code)s", x=x, lo=lo, hi=hi,
                                        code=g.code_expr(x)), grid.codes + 2, np.asarray(thr, dtype=np.int64))
    if k == 0:
        return _Codes(lambda x: sql("0"), 1, np.zeros(0, dtype=np.int64))
    fl = [float(e) for e in edges]
    if k <= MAX_COMPARISON_EDGES:
        def expr(x: SQL) -> SQL:
            return sql("toUInt16(%(s)s)", s=join(" + ", [sql("(%(x)s >= %(e)s)", x=x, e=e) for e in fl]))
    else:
        bounds = [float("-inf"), *fl]

        def expr(x: SQL) -> SQL:
            return sql("transform(roundDown(%(x)s, %(b)s), %(b)s, %(i)s, 0)", x=x, b=bounds, i=list(range(k + 1)))
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


_Groups = tuple[tuple[int, tuple[str, ...], int], ...]     # Layouts.groups


@dataclass(frozen=True)
class _Branch:
    """Rows of a source read one way: the common key layouts by position (``groups``), or the rest by key (None)."""
    rows: SQL                       # condition on the source's rows
    groups: _Groups | None


@dataclass(frozen=True)
class _Read:
    """How a branch reads one feature: its value, and whether the row holds it (None: every row does)."""
    value: SQL
    present: SQL | None


def _branches(src: Source, layouts: Layouts | None) -> list[_Branch]:
    if not src.maps:
        return [_Branch(sql("1"), ())]
    if layouts is None:
        raise ValueError("a source with Map features is scanned with its key layouts (key_layouts)")
    out = []
    if layouts.groups:
        out.append(_Branch(layouts.condition(common=True), layouts.groups))
    if layouts.rest_rows:
        out.append(_Branch(layouts.condition(common=False), None))
    return out


def _read(src: Source, f: str, groups: _Groups | None) -> _Read:
    """Feature ``f`` in the rows of a branch: a pseudo feature's column; by key (``groups`` None); else by position
    (a constant one when every layout holds ``f`` at the same index, else the index of the row's layout)."""
    if f in src.pseudo_num:
        c = ident(src.pseudo_num[f])
        return _Read(sql("ifNull(%(c)s, 0)", c=c), sql("isNotNull(%(c)s)", c=c))
    if groups is None:
        return _Read(sql("features_num[%(f)s]", f=f), sql("mapContains(features_num, %(f)s)", f=f))
    pos = [ks.index(f) + 1 if f in ks else 0 for _, ks, _ in groups]
    if not any(pos):                                    # no row of these layouts holds the feature
        return _Read(sql("toFloat64(0)"), sql("0"))
    if len(set(pos)) == 1:
        return _Read(sql("features_num.values[%(p)s]", p=pos[0]), None)
    at = sql("transform(num_layout, %(sigs)s, %(pos)s, 0)", sigs=[sig for sig, _, _ in groups], pos=pos)
    return _Read(sql("features_num.values[%(at)s]", at=at), sql("%(at)s > 0", at=at))


def _counted(code: SQL, n: int, checked: bool, a: _Aliases) -> SQL:
    """Rows per code ``0 .. n - 1`` (among the rows holding the feature when ``checked``)."""
    if checked:
        return sql("countResampleIf(0, %(k)s, 1)(%(code)s, %(p)s)", k=n, code=code, p=a["p"])
    return sql("countResample(0, %(k)s, 1)(%(code)s)", k=n, code=code)


def _statistics(checked: bool, a: _Aliases) -> SQL:
    """The statistics of the feature's value ``x`` (among the rows holding it when ``checked``)."""
    if checked:
        return sql("countIf(%(p)s) AS %(n)s, minIf(%(x)s, %(p)s) AS %(lo)s, maxIf(%(x)s, %(p)s) AS %(hi)s, "
                   "avgIf(%(x)s, %(p)s) AS %(mean)s, stddevPopIf(%(x)s, %(p)s) AS %(std)s", **a)
    return _value_stats(a["x"], a)


_LIST = ",\n       "


def scan_statement(src: Source, codes: Mapping[str, Grid | _Codes], stats: Sequence[str] = (),
                   layouts: Layouts | None = None, group: SQL | None = None) -> SQL | None:
    """The statement of one scan (see :func:`_scan`; ``layouts``: the census of a source with Map features), None
    when there is nothing to read. ``group``: an expression over the source's rows (a chunk key); the counts are
    then per value of it (column ``chunk_``, and per feature its rows ``c<i>``). It reads, top to bottom:

    1. per branch of rows, each feature's value ``x<i>`` (and ``p<i>``: the row holds it, when some branch cannot
       tell without a check), the branches' rows as one ``UNION ALL``;
    2. per feature, its code counts (``h<i>``, or cumulative ``cs<i>``) and statistics (``n<i>``, ``lo<i>``, ...);
    3. the counts below each edge, from the cumulative counts."""
    names = list(dict.fromkeys([*codes, *stats]))
    branches = _branches(src, layouts)
    if not names or not branches:
        return None
    aliases = [_Aliases(i) for i in range(len(names))]
    reads = [[_read(src, f, b.groups) for f in names] for b in branches]
    checked = [any(r[i].present is not None for r in reads) for i in range(len(names))]

    rows = []                                           # 1. the values of every branch's rows
    for b, read in zip(branches, reads, strict=True):
        cols = [sql("%(v)s AS %(x)s, %(p)s AS %(pa)s", v=r.value, p=r.present or sql("1"), pa=a["p"], x=a["x"])
                if c else sql("%(v)s AS %(x)s", v=r.value, x=a["x"])
                for r, a, c in zip(read, aliases, checked, strict=True)]
        if group is not None:
            cols.append(sql("%(g)s AS chunk_", g=group))
        rows.append(sql("SELECT %(cols)s\n              FROM %(t)s WHERE (%(w)s) AND %(b)s",
                        cols=join(",\n                     ", cols), t=src.table, w=src.where, b=b.rows))

    aggs, outer = [], []                                # 2. per feature, counts and statistics; 3. what is returned
    for f, a, c in zip(names, aliases, checked, strict=True):
        plan = codes.get(f)
        if isinstance(plan, Grid):
            aggs.append(sql("%(counts)s AS %(h)s", counts=_counted(plan.code_expr(a["x"]), plan.codes, c, a), **a))
            outer.append(sql("%(h)s", **a))
        elif isinstance(plan, _Codes):                  # values below each threshold: the cumulative counts at it
            aggs.append(sql("arrayCumSum(%(counts)s) AS %(cs)s", counts=_counted(plan.expr(a["x"]), plan.n, c, a), **a))
            outer.append(sql("arrayMap(t -> %(cs)s[t], %(thr)s) AS %(h)s", thr=[int(t) for t in plan.thresholds], **a)
                         if len(plan.thresholds) else sql("[] AS %(h)s", **a))
            if group is not None:
                outer.append(sql("arrayElement(%(cs)s, -1) AS %(c)s", **a))
        if f in stats:
            aggs.append(_statistics(c, a))
            outer.append(sql("%(n)s, %(lo)s, %(hi)s, %(mean)s, %(std)s", **a))

    if group is not None:
        outer.insert(0, sql("chunk_"))
        aggs.insert(0, sql("chunk_"))
    return sql("""SELECT %(outer)s
FROM (SELECT %(aggs)s
      FROM (%(rows)s)%(by)s)""" + NO_JIT, outer=join(_LIST, outer), aggs=join(_LIST, aggs),
               rows=join("\n              UNION ALL\n              ", rows),
               by=sql("") if group is None else sql("\n      GROUP BY chunk_"))


def _scan(store: Store, src: Source, codes: Mapping[str, Grid | _Codes], stats: Sequence[str] = (),
          layouts: Layouts | None = None) -> tuple[dict[str, np.ndarray], dict[str, NumStats]]:
    """One scan: per feature of ``codes`` the count of every code among the rows holding it (a ``Grid``:
    its cells; a ``_Codes``: the values below each threshold), and for the features in ``stats`` count,
    min, max, mean and standard deviation.

    The rows of the source's common key ``layouts`` are read by position (a constant position when every
    layout holds the feature at the same one, else the position of the row's layout); the rows of other
    layouts are read by key, in a second branch of the same statement (``mapContains`` telling the rows
    without the feature). One aggregation counts both branches. The statement is logged at DEBUG on
    :data:`sql_log`."""
    names = list(dict.fromkeys([*codes, *stats]))
    if not names:
        return {}, {}
    if src.maps and layouts is None:
        layouts = key_layouts(store, src)
    statement = scan_statement(src, codes, stats, layouts)
    if statement is None:
        return {}, {}
    if sql_log.isEnabledFor(logging.DEBUG):
        sql_log.debug("detector scan of %d features:\n%s", len(names), store.sql(statement))
    r = store.rows(statement)[0]
    counts, st = {}, {}
    for i, f in enumerate(names):
        a = _Aliases(i)
        if f in codes:
            counts[f] = np.asarray(r[a.key("h")], dtype=np.int64)
        if f in stats and r[a.key("n")]:
            st[f] = a.stats(r)
    return counts, st


def sample_ranges(store: Store, src: Source, *, rows: int = SAMPLE_ROWS) -> dict[str, tuple[float, float]]:
    """Min and max of every Map feature over the first ``rows`` rows of ``src`` (read by one thread, so
    the same rows every time): where to put the reference grid before the one full pass."""
    if not src.maps:
        return {}
    res = store.rows(sql(
        """SELECT k, min(v) AS lo, max(v) AS hi
           FROM (SELECT features_num FROM %(t)s WHERE %(w)s LIMIT %(rows)s)
           ARRAY JOIN mapKeys(features_num) AS k, mapValues(features_num) AS v
           GROUP BY k SETTINGS max_threads = 1""", t=src.table, w=src.where, rows=int(rows)))
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
    plans = {f: _edge_codes(np.asarray(edges[f], dtype=float), grids.get(f)) for f in feats}
    below, st = _scan(store, src, plans, stats, layouts=layouts)
    for f in feats:
        b = below.get(f, np.zeros(len(edges[f]), dtype=np.int64))
        out[f] = np.diff(np.concatenate([[0], b, [int(present[f])]]))
    return out, st


def chunk_bins(store: Store, src: Source, edges: Mapping[str, np.ndarray], chunk: SQL, *,
               layouts: Layouts | None = None, grids: Mapping[str, Grid] | None = None
               ) -> dict[str, dict[int, np.ndarray]]:
    """Per feature and value of the chunk key ``chunk`` (an expression over the source's rows): the counts per bin
    ``[-inf, e0), ..., [e_last, inf)`` of its non-null values, in one scan. A feature of ``grids`` is counted with
    its grid's code (cheapest per value, but a state of the grid's cells per chunk: for a few chunks), the others by
    comparisons with the edges (small states, however many chunks)."""
    feats = [f for f in edges if f in src.pseudo_num or src.maps]
    if not feats:
        return {}
    if src.maps and layouts is None:
        layouts = key_layouts(store, src)
    plans = {f: _edge_codes(np.asarray(edges[f], dtype=float), (grids or {}).get(f)) for f in feats}
    statement = scan_statement(src, plans, (), layouts, group=chunk)
    if statement is None:
        return {}
    out: dict[str, dict[int, np.ndarray]] = {f: {} for f in feats}
    for r in store.rows(statement):
        for i, f in enumerate(feats):
            a = _Aliases(i)
            below = np.asarray(r[a.key("h")], dtype=np.int64)
            out[f][int(r["chunk_"])] = np.diff(np.concatenate([[0], below, [int(r[a.key("c")])]]))
    return out


def category_chunk_counts(store: Store, src: Source, chunk: SQL, features: Collection[str]
                          ) -> dict[str, dict[int, dict[str, int]]]:
    """Per categorical feature of ``features`` and value of the chunk key: the count of every category."""
    parts = []
    if src.maps:
        parts.append(sql("""SELECT %(g)s AS chunk_, toString(k) AS k, v, count() AS c
                            FROM %(t)s ARRAY JOIN mapKeys(features_cat) AS k, mapValues(features_cat) AS v
                            WHERE %(w)s AND has(%(fs)s, k) GROUP BY chunk_, k, v""",
                         g=chunk, t=src.table, w=src.where, fs=sorted(features) or [""]))
    for name, col in src.pseudo_cat.items():
        if name in features:
            parts.append(sql("""SELECT %(g)s AS chunk_, %(name)s AS k, assumeNotNull(%(c)s) AS v, count() AS c
                                FROM %(t)s WHERE %(w)s AND %(c)s IS NOT NULL GROUP BY chunk_, v""",
                             g=chunk, name=name, c=ident(col), t=src.table, w=src.where))
    out: dict[str, dict[int, dict[str, int]]] = {}
    if not parts:
        return out
    for r in store.rows(join(" UNION ALL ", parts)):
        out.setdefault(r["k"], {}).setdefault(int(r["chunk_"]), {})[r["v"]] = int(r["c"])
    return out


def category_counts(store: Store, src: Source, *, limit: int = MAX_CATEGORIES_READ, layouts: Layouts | None = None
                    ) -> dict[str, tuple[int, int, dict[str, int]]]:
    """Per categorical feature: (non-null rows, distinct values, counts of its ``limit`` most frequent values).
    ``layouts``: the source's census; what no row holds is not queried."""
    out: dict[str, tuple[int, int, dict[str, int]]] = {}
    held = layouts.categorical_rows if layouts is not None else {}
    parts = []                              # one query: per feature and value its count, the feature's total
    if src.maps and held.get("", 1):        # and distinct values over the groups, the top ``limit`` kept
        parts.append(sql("""SELECT toString(k) AS k, v, count() AS c, sum(c) OVER (PARTITION BY k) AS n,
                                   count() OVER (PARTITION BY k) AS d
                            FROM %(t)s ARRAY JOIN mapKeys(features_cat) AS k, mapValues(features_cat) AS v
                            WHERE %(w)s GROUP BY k, v""", t=src.table, w=src.where))
    for name, col in src.pseudo_cat.items():
        if not held.get(name, 1):
            continue
        parts.append(sql("""SELECT %(name)s AS k, assumeNotNull(%(c)s) AS v, count() AS c, sum(c) OVER () AS n,
                                   count() OVER () AS d
                            FROM %(t)s WHERE %(w)s AND %(c)s IS NOT NULL GROUP BY v""",
                         name=name, c=ident(col), t=src.table, w=src.where))
    if not parts:
        return out
    res = store.rows(sql("SELECT k, v, c, n, d FROM (%(parts)s) ORDER BY k, c DESC, v LIMIT %(limit)s BY k",
                         parts=join(" UNION ALL ", parts), limit=int(limit)))
    for r in res:
        out.setdefault(r["k"], (int(r["n"]), int(r["d"]), {}))[2][r["v"]] = int(r["c"])
    return out


def null_counts(store: Store, src: Source, *, layouts: Layouts | None = None) -> dict[str, int]:
    """Rows where each feature was sent as an explicit null (``layouts``: the census; none, no query)."""
    if not src.maps or (layouts is not None and not layouts.null_rows):
        return {}
    rows = store.rows(sql("SELECT k, count() AS n FROM %(t)s ARRAY JOIN features_null AS k WHERE %(w)s GROUP BY k",
                          t=src.table, w=src.where))
    return {r["k"]: int(r["n"]) for r in rows}


def window_facts(store: Store, src: Source, *, rows_only: bool = False) -> dict[str, Any]:
    """Rows, newest event time and the 95th percentile of ingest lag (seconds) of a window source
    (``rows_only``: the rows alone)."""
    if not src.has_ts or rows_only:
        return {"rows": int(store.scalar(sql("SELECT count() FROM %(t)s WHERE %(w)s", t=src.table, w=src.where)) or 0)}
    r = store.rows(sql("""SELECT count() AS rows, max(ts) AS newest,
                                 quantile(0.95)(dateDiff('millisecond', ts, ingested_at)) / 1000 AS lag_p95_s
                          FROM %(t)s WHERE %(w)s""", t=src.table, w=src.where))[0]
    return r
