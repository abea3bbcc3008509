"""Equal-width counting grids: exact bin counts from one cheap pass, quantile edges from the counts.

A :class:`Grid` cuts ``[lo, hi)`` into ``cells`` equal cells. In SQL every value gets a *code*::

    code(x) = (x >= lo) + toUInt32(least(greatest((x - lo) * scale, 0), cells))

that is 0 below ``lo`` and ``1 + min(floor((x - lo) * scale), cells)`` from ``lo`` up: one
subtraction, one multiplication and a comparison per value (no search over the edges, no branch), and
``countResample`` counts the codes of every feature in a single scan. The counts are exact on the
grid's *boundaries*: ``boundaries()[j]`` is the least float ``x`` with ``code(x) >= j + 1``, found in
numpy with the same IEEE operations as the SQL (a subtraction then a multiplication, which no
compiler fuses), so ``x >= boundaries()[j]`` holds exactly when ``code(x) >= j + 1``.

A reference profile built on a grid (:mod:`detectors.reference`) takes its quantile edges from the
boundaries, so a later window is counted on the reference's edges with the same cheap code instead of
comparing every value with every edge. A grid *resolves* a feature when no code holds more than 1%
of the values (then every quantile level 0.01 .. 0.99 falls in a cell of its own or shares it with
at most its neighbour); features it does not resolve (point masses, ranges dominated by outliers)
keep the TDigest quantiles and the comparison counting.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from collector.sql import SQL, sql

__all__ = ["GRID_CELLS", "Grid", "grid_quantiles", "resolves"]

#: Cells of a grid built for a reference (codes per feature: ``GRID_CELLS + 2``).
GRID_CELLS = 8192


@dataclass(frozen=True)
class Grid:
    lo: float
    hi: float
    cells: int = GRID_CELLS

    def __post_init__(self) -> None:
        if not (np.isfinite(self.lo) and np.isfinite(self.hi) and self.hi > self.lo and self.cells >= 1):
            raise ValueError(f"grid: needs finite lo < hi and cells >= 1, got {self.lo!r}, {self.hi!r}, {self.cells}")
        ulp = np.spacing(max(abs(self.lo), abs(self.hi)))
        if not np.isfinite(self.scale) or (self.hi - self.lo) / self.cells < 8 * ulp:
            raise ValueError(f"grid: [{self.lo!r}, {self.hi!r}) is too narrow or too wide for {self.cells} cells")

    @property
    def scale(self) -> float:
        return float(self.cells / (self.hi - self.lo))

    @property
    def codes(self) -> int:
        """Number of codes: below ``lo``, the cells, and the last cell's overflow (``cells + 2``)."""
        return self.cells + 2

    def code_expr(self, x: SQL) -> SQL:
        """The code of the value ``x`` (an SQL fragment)."""
        return sql("(%(x)s >= %(lo)s) + toUInt32(least(greatest((%(x)s - %(lo)s) * %(scale)s, 0), %(cells)s))",
                   x=x, lo=float(self.lo), scale=self.scale, cells=int(self.cells))

    @cached_property
    def _boundaries(self) -> np.ndarray:
        lo, s = np.float64(self.lo), np.float64(self.scale)
        j = np.arange(1, self.cells + 1, dtype=np.float64)

        def ge(v: np.ndarray) -> np.ndarray:
            return (v - lo) * s >= j                  # the SQL's operations, in the same order

        # bisection over the floats (as ordered integers) between a point below and one above: a few
        # rounding errors around lo + j / scale, or a cell either side where that does not bracket
        x0, d = lo + j / s, 4 * np.spacing(max(abs(self.lo), abs(self.hi)))
        a, z = _key(x0 - d), _key(x0 + d)
        wide = ge(_float(a)) | ~ge(_float(z))
        a = np.where(wide, _key(lo + (j - 1) / s), a)
        z = np.where(wide, _key(lo + (j + 1) / s), z)
        if ge(_float(a)).any() or not ge(_float(z)).all():
            raise ValueError(f"grid: cannot place the boundaries of [{self.lo!r}, {self.hi!r})")
        while (z - a > 1).any():
            mid = a + (z - a) // 2
            up = ge(_float(mid))
            z = np.where(up, mid, z)
            a = np.where(up, a, mid)
        return np.concatenate([[lo], _float(z)])

    def boundaries(self) -> np.ndarray:
        """``cells + 1`` floats: ``x >= boundaries()[j]`` exactly when ``code(x) >= j + 1``."""
        return self._boundaries

    def code_of(self, x: float) -> int:
        """The code SQL gives ``x`` (exactly, from the boundaries)."""
        return int(np.searchsorted(self._boundaries, x, side="right"))


_SIGN = np.int64(-0x8000000000000000)


def _key(x: np.ndarray) -> np.ndarray:
    """Floats as integers in the same order (-0.0 and 0.0 both 0)."""
    i = np.asarray(x, dtype=np.float64).view(np.int64)
    return np.where(i < 0, -(i & np.int64(0x7FFFFFFFFFFFFFFF)), i)


def _float(k: np.ndarray) -> np.ndarray:
    return np.where(k < 0, (-k) | _SIGN, k).astype(np.int64).view(np.float64)


def resolves(code_counts: np.ndarray, n: int) -> bool:
    """True when no code holds more than 1% of the ``n`` values (and there are values)."""
    return n > 0 and int(np.max(code_counts)) * 100 <= n


def grid_quantiles(grid: Grid, code_counts: np.ndarray, levels: Sequence[float]) -> np.ndarray:
    """Per level ``p``: the boundary whose count of values below it is nearest to ``p * n``."""
    below = np.cumsum(code_counts)[:-1]               # below[j] = values < boundaries()[j]
    n = int(np.sum(code_counts))
    t = np.asarray(levels, dtype=float) * n
    hi = np.minimum(np.searchsorted(below, t, side="left"), below.size - 1)
    lo = np.maximum(hi - 1, 0)
    pick = np.where(np.abs(below[lo] - t) <= np.abs(below[hi] - t), lo, hi)
    return grid.boundaries()[pick]
