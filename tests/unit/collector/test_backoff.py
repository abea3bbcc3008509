"""The one jittered exponential backoff (collector consumer's retries, the notifiers' deliveries)."""

from __future__ import annotations

import random

import pytest

from collector.backoff import Backoff, backoff_delay
from slo_engine.delivery import RetryPolicy


def test_delays_double_up_to_the_cap_within_their_jitter() -> None:
    rng = random.Random(1)
    b = Backoff(0.2, 1.0, rng=rng)
    for ceiling in (0.2, 0.4, 0.8, 1.0, 1.0, 1.0):
        waits = [backoff_delay(b.failures + 1, initial_s=0.2, max_s=1.0, jitter=0.5, rng=rng) for _ in range(200)]
        assert ceiling / 2 <= min(waits) and max(waits) <= ceiling and max(waits) > 0.9 * ceiling
        d = b.next()
        assert ceiling / 2 <= d <= ceiling
    assert b.failures == 6
    b.reset()
    assert b.failures == 0 and 0.1 <= b.next() <= 0.2
    assert 0 < backoff_delay(10_000, initial_s=1, max_s=5) <= 5     # no overflow after many failures
    with pytest.raises(ValueError, match="attempt"):
        backoff_delay(0, initial_s=1, max_s=5)


def test_deliveries_use_full_jitter() -> None:
    p = RetryPolicy(base_s=0.5, cap_s=4.0)
    rng = random.Random(3)
    waits = [p.backoff(3, rng) for _ in range(500)]
    assert min(waits) < 0.2 and 1.8 < max(waits) <= 2.0
    assert max(p.backoff(9, rng) for _ in range(500)) <= 4.0
