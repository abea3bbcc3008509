"""Inputs for drift tests, computed in ClickHouse: a few rows per feature, never raw events."""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass

import numpy as np

from collector.store import Store
from detectors.stattests import psi

__all__ = ["FeatureDrift", "numeric_psi"]


@dataclass(frozen=True)
class FeatureDrift:
    feature: str
    value: float | None
    status: str  # "ok" | "drift" | "not enough data"
    reference_n: int
    current_n: int


def numeric_psi(
    store: Store,
    model: str,
    reference: tuple[_dt.datetime, _dt.datetime],
    current: tuple[_dt.datetime, _dt.datetime],
    *,
    bins: int = 10,
    threshold: float = 0.2,
    min_count: int = 50,
) -> list[FeatureDrift]:
    """PSI for every numeric feature of ``model``: bins from reference deciles, counts in SQL."""
    params = {"model": model, "r0": reference[0], "r1": reference[1], "c0": current[0], "c1": current[1]}
    qs = [i / bins for i in range(1, bins)]
    edges_rows = store.rows(
        f"""
        SELECT k AS feature, quantilesExact({", ".join(repr(q) for q in qs)})(v) AS edges, count() AS n
        FROM {{db}}.predictions FINAL
        ARRAY JOIN mapKeys(features_num) AS k, mapValues(features_num) AS v
        WHERE model = %(model)s AND ts >= %(r0)s AND ts < %(r1)s
        GROUP BY k ORDER BY k
        """,
        params,
    )
    out: list[FeatureDrift] = []
    if not edges_rows:
        return out
    edges = {r["feature"]: sorted(set(float(x) for x in r["edges"])) for r in edges_rows}
    counts = store.rows(
        """
        SELECT k AS feature, (ts >= %(c0)s) AS is_current,
               arrayCount(e -> e < v, %(edges)s[k]) AS bin, count() AS n
        FROM {db}.predictions FINAL
        ARRAY JOIN mapKeys(features_num) AS k, mapValues(features_num) AS v
        WHERE model = %(model)s AND ((ts >= %(r0)s AND ts < %(r1)s) OR (ts >= %(c0)s AND ts < %(c1)s))
          AND mapContains(%(edges)s, k)
        GROUP BY feature, is_current, bin
        """,
        {**params, "edges": edges},
    )
    for feat, e in edges.items():
        ref = np.zeros(len(e) + 1)
        cur = np.zeros(len(e) + 1)
        for r in counts:
            if r["feature"] == feat:
                (cur if r["is_current"] else ref)[int(r["bin"])] += int(r["n"])
        rn, cn = int(ref.sum()), int(cur.sum())
        if rn < min_count or cn < min_count:
            out.append(FeatureDrift(feat, None, "not enough data", rn, cn))
            continue
        v = psi(ref, cur)
        out.append(FeatureDrift(feat, v, "drift" if v >= threshold else "ok", rn, cn))
    return out
