"""Counting grids: the boundaries are exact for the SQL code, quantiles come from the code counts."""

from __future__ import annotations

import numpy as np
import pytest

from detectors.grid import Grid, grid_quantiles, resolves


def _sql_code(g: Grid, x: np.ndarray) -> np.ndarray:
    """What ``Grid.code_expr`` computes, with the same float operations."""
    y = np.minimum(np.maximum((x - g.lo) * g.scale, 0.0), g.cells)
    return (x >= g.lo).astype(np.int64) + y.astype(np.int64)


@pytest.mark.parametrize("lo, hi", [(-6.993188437332872, 7.220294755901257), (0.0, 1.0), (1e6, 1e6 + 3.0),
                                    (-1e-3, 5e-4), (123.456, 9.87e5)])
def test_boundaries_are_where_the_code_rises(lo: float, hi: float) -> None:
    g = Grid(lo, hi, 1024)
    b = g.boundaries()
    assert b.size == g.cells + 1 and b[0] == lo and np.all(np.diff(b) >= 0)
    j = np.arange(b.size)
    assert (_sql_code(g, b) >= j + 1).all()
    assert (_sql_code(g, np.nextafter(b, -np.inf)) < j + 1).all()
    x = np.random.default_rng(0).uniform(lo - (hi - lo), hi + (hi - lo), 5000)
    assert [g.code_of(v) for v in x] == _sql_code(g, x).tolist()


def test_degenerate_grids_are_refused() -> None:
    for lo, hi in [(1.0, 1.0), (2.0, 1.0), (0.0, float("inf")), (1e6, 1e6 + 1e-9)]:
        with pytest.raises(ValueError):
            Grid(lo, hi)


def test_quantiles_are_boundaries_nearest_to_the_level() -> None:
    g = Grid(0.0, 100.0, 1000)
    x = np.random.default_rng(1).uniform(0, 100, 100_000)
    codes = np.bincount(_sql_code(g, x), minlength=g.codes)
    assert resolves(codes, x.size) and not resolves(np.array([0, 5, 1]), 6)
    q = grid_quantiles(g, codes, [0.1, 0.5, 0.9])
    assert set(q.tolist()) <= set(g.boundaries().tolist())
    assert np.allclose(q, np.quantile(x, [0.1, 0.5, 0.9]), atol=0.1)     # within a cell
