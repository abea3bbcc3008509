"""Root cause attached to SLO alerts when they fire: the composition of ``slo_engine`` (which alert, which SLO)
and ``detectors.rootcause`` (the rankings), neither of which imports the other.

Computed only for a trigger that goes out (``slo_engine.evaluate_and_notify(annotate=...)``), never on every
evaluation: the detector results of the latest window in the last :data:`RESULTS_LOOKBACK`, and one
``GROUP BY`` over the SLO's most acute firing window for the slices that burn its budget fastest.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable
from typing import Any

from collector.store import Store

__all__ = ["root_cause_annotator", "RESULTS_LOOKBACK", "burn_arguments"]

RESULTS_LOOKBACK = _dt.timedelta(days=1)


def burn_arguments(slo: Any) -> dict[str, Any] | None:
    """``detectors.rootcause.slice_burn`` keywords for an SLO's SLI (None: the SLI has no per-slice events)."""
    sli = slo.sli
    if sli.kind == "availability":
        return {"kind": "errors", "objective": slo.objective, "error_types": tuple(sli.error_types)}
    if sli.kind == "latency":
        return {"kind": "latency", "objective": slo.objective, "threshold_ms": sli.threshold_ms}
    if sli.kind == "accuracy":
        return {"kind": "accuracy", "objective": slo.objective, "tolerance": sli.tolerance, "within": sli.slice}
    return None   # drift and freshness: windows and minutes, not requests of a slice


def _burn_window_s(status: Any) -> int:
    """The long window of the most acute firing tier (the shortest), else of the shortest tier."""
    rules = [r for r in status.rules if r.firing] or list(status.rules)
    return min((r.rule.long_window_s for r in rules), default=int(status.slo.window_s))


def _plain(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, _dt.datetime):
        return v.isoformat()
    return v


def root_cause_annotator(store: Store, *, top: int = 3) -> Callable[[Any, Any], dict[str, Any]]:
    """``annotate(notification, status)`` for :func:`slo_engine.evaluate_and_notify`."""

    def annotate(note: Any, status: Any) -> dict[str, Any]:
        from detectors.rootcause import root_cause

        now = note.at
        burn = burn_start = None
        if status is not None and (burn := burn_arguments(status.slo)) is not None:
            burn_start = now - _dt.timedelta(seconds=_burn_window_s(status))
        rc = root_cause(store, note.model, now - RESULTS_LOOKBACK, now + _dt.timedelta(microseconds=1),
                        version=note.model_version or None, burn=burn, burn_start=burn_start, top=top)
        rc.pop("model", None)
        rc["burn_start"] = burn_start
        return _plain(rc)

    return annotate
