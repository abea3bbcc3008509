"""Small statistics every reader of the store shares (the API, the detectors, the dashboard's numbers)."""

from __future__ import annotations

import datetime as _dt
import math
from statistics import NormalDist

__all__ = ["wilson_interval", "minutes_ago"]


def wilson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float | None, float | None]:
    """Wilson score interval of the proportion ``k/n`` at ``confidence`` (two-sided); ``(None, None)`` for n = 0."""
    if n <= 0:
        return None, None
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = k / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, centre - half), min(1.0, centre + half)


def minutes_ago(minutes: int) -> _dt.datetime:
    """The start of a "last N minutes" window, by this process's clock (UTC)."""
    return _dt.datetime.now(_dt.UTC) - _dt.timedelta(minutes=minutes)
