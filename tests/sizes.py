"""How big the suite's long runs are: the CI size by default, the full size with ``DRIFTLINE_FULL=1``
(``scripts/test.sh --slow`` sets it, and also runs the tests marked ``slow``)."""

from __future__ import annotations

import os

__all__ = ["FULL", "size"]

FULL = os.environ.get("DRIFTLINE_FULL", "") == "1"


def size(ci: int, full: int) -> int:
    """``full`` in the full run, else ``ci`` (a corpus's records, a property's examples, an outage's seconds)."""
    return full if FULL else ci
