"""Statistical tests as pure functions over binned counts.

Smoothing is an explicit parameter, never a hidden floor.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["psi"]


def psi(reference: Sequence[float], current: Sequence[float], *, smoothing: float = 1e-4) -> float:
    """Population Stability Index over the same bins.

    ``reference`` and ``current`` are counts per bin; each is turned into proportions, then
    ``smoothing`` is added to every proportion (and the proportions renormalised) so an empty bin
    gives a finite value: PSI = sum((c - r) * ln(c / r)).
    """
    r = np.asarray(reference, dtype=float)
    c = np.asarray(current, dtype=float)
    if r.shape != c.shape or r.ndim != 1 or r.size == 0:
        raise ValueError(f"reference and current need the same non-empty bins, got {r.shape} and {c.shape}")
    if r.sum() <= 0 or c.sum() <= 0:
        raise ValueError("reference and current need at least one observation each")
    rp = r / r.sum() + smoothing
    cp = c / c.sum() + smoothing
    rp /= rp.sum()
    cp /= cp.sum()
    return float(np.sum((cp - rp) * np.log(cp / rp)))
