"""Jittered exponential backoff: the one way Driftline waits between retries (the collector's store writes,
offset commits and broker polls; the notifiers' deliveries in :mod:`slo_engine.delivery`).

Retry ``attempt`` (1 for the first) waits a random share of ``min(max_s, initial_s · 2^(attempt-1))``:
``jitter=1`` draws from all of it (full jitter, spreads the retries of many clients the most), ``jitter=0.5``
from its upper half (never retries at once).
"""

from __future__ import annotations

import random

__all__ = ["Backoff", "backoff_delay"]


def backoff_delay(attempt: int, *, initial_s: float, max_s: float, jitter: float = 1.0,
                  rng: random.Random | None = None) -> float:
    """The wait before retry ``attempt`` (1 for the first)."""
    if attempt < 1:
        raise ValueError(f"attempt: must be 1 or more, got {attempt}")
    d = min(max_s, initial_s * 2 ** min(attempt - 1, 64))
    return (rng or random).uniform(d * (1 - jitter), d)


class Backoff:
    """The state of one retry loop: :meth:`next` after a failure (the wait, longer each time), :meth:`reset`
    after a success."""

    def __init__(self, initial_s: float, max_s: float, *, jitter: float = 0.5,
                 rng: random.Random | None = None) -> None:
        self.initial_s, self.max_s, self.jitter, self.rng = initial_s, max_s, jitter, rng
        self.failures = 0

    def next(self) -> float:
        self.failures += 1
        return backoff_delay(self.failures, initial_s=self.initial_s, max_s=self.max_s, jitter=self.jitter,
                             rng=self.rng)

    def reset(self) -> None:
        self.failures = 0
