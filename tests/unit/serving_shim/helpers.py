"""Sinks for the shim's own unit tests (real objects with real behaviour, no mocks)."""

from __future__ import annotations

import threading
import time
from typing import Any

from prometheus_client import CollectorRegistry

from serving_shim import Batch, ExportResult, InMemorySink


class SlowSink(InMemorySink):
    """Takes ``delay`` seconds per export (a sink that is slow, as a loaded broker is)."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay

    def export(self, batch: Batch, *, timeout: float = 0.0) -> ExportResult:
        time.sleep(self.delay)
        return super().export(batch, timeout=timeout)


class FlakySink(InMemorySink):
    """Fails batches of ``kinds`` (all kinds by default) while ``down`` is set, then works."""

    def __init__(self, kinds: tuple[str, ...] | None = None) -> None:
        super().__init__()
        self.down = threading.Event()
        self.kinds = kinds
        self.failures = 0

    def export(self, batch: Batch, *, timeout: float = 0.0) -> ExportResult:
        if self.down.is_set() and (self.kinds is None or batch.kind in self.kinds):
            self.failures += 1
            return ExportResult.FAILURE
        return super().export(batch, timeout=timeout)


def registry() -> CollectorRegistry:
    return CollectorRegistry()


def export_threads(sink: object) -> set[int]:
    """Record the thread of every ``export`` call of ``sink`` (set up before the Monitor is made)."""
    seen: set[int] = set()
    real = sink.export  # type: ignore[attr-defined]

    def export(batch: Batch, **kw: Any) -> ExportResult:
        seen.add(threading.get_ident())
        return real(batch, **kw)

    sink.export = export  # type: ignore[attr-defined]
    return seen
