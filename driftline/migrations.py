"""Every package's migrations, in the composition root (the one place that knows them all).

Kept apart from :mod:`driftline.server` so that opening and migrating a store (the CLI, the
benchmarks, a detector run) does not import the web stack.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from collector.migrations import COLLECTOR_MIGRATIONS, GOVERNANCE_MIGRATIONS, Migration, migrate

if TYPE_CHECKING:
    from collector.store import Store
    from driftline.config import Settings

__all__ = ["all_migrations", "open_and_migrate"]


def all_migrations() -> list[Migration]:
    """Every package's migrations; the composition root is the one place that knows them all."""
    out: list[Migration] = [*COLLECTOR_MIGRATIONS, *GOVERNANCE_MIGRATIONS]
    for mod in ("detectors.migrations", "slo_engine.migrations"):
        try:
            m = __import__(mod, fromlist=["MIGRATIONS"])
        except ModuleNotFoundError as exc:
            if exc.name != mod:
                raise
            continue
        out.extend(m.MIGRATIONS)
    return out


def open_and_migrate(settings: Settings, extra: Iterable[Migration] = ()) -> Store:
    """Open the configured store and apply every migration (the server, the collector, the CLI)."""
    from collector.store import open_store

    store = open_store(settings.store_url, database=settings.database)
    migrate(store, [*all_migrations(), *extra])
    return store
