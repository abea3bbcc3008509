"""Every package's migrations, in the composition root (the one place that knows them all).

Kept apart from :mod:`driftline.server` so that opening and migrating a store (the CLI, the
benchmarks, a detector run) does not import the web stack.
"""

from __future__ import annotations

from collector.migrations import COLLECTOR_MIGRATIONS, Migration

__all__ = ["all_migrations"]


def all_migrations() -> list[Migration]:
    """Every package's migrations; the composition root is the one place that knows them all."""
    out: list[Migration] = list(COLLECTOR_MIGRATIONS)
    for mod in ("detectors.migrations", "slo_engine.migrations"):
        try:
            m = __import__(mod, fromlist=["MIGRATIONS"])
        except ModuleNotFoundError as exc:
            if exc.name != mod:
                raise
            continue
        out.extend(m.MIGRATIONS)
    return out
