"""The pure generator: a normalised :class:`Slo` → its alert rules (no I/O).

A rule fires when the burn rate over its long window *and* over its short window is at least its
``burn_rate``. The highest burn rate an objective allows is ``1 / (1 - objective)`` (every event bad):
a 90% objective burns at most 10×, so the workbook's 14.4× page can never fire there. Such a tier is
scaled to ``max_burn_fraction`` of the maximum (``low_objective: scale``, the default) or kept and
flagged ``reachable: false`` (``keep``); either way the rule's ``note`` says so.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from slo_engine.model import SLI_FIELDS, Severity, Slo

__all__ = ["AlertRule", "alert_rules", "rules_document", "windows_needed"]


@dataclass(frozen=True, kw_only=True)
class AlertRule:
    slo: str
    tier: str
    severity: Severity
    requested_burn_rate: float
    burn_rate: float              # what the engine compares against (scaled, or as requested)
    error_rate_threshold: float   # burn_rate × error budget: the bad-event ratio that fires
    long_window_s: int
    short_window_s: int
    reachable: bool
    note: str = ""


def alert_rules(slo: Slo) -> tuple[AlertRule, ...]:
    a = slo.alerting
    max_burn = slo.max_burn_rate
    out = []
    for t in a.tiers:
        burn, reachable, note = t.burn_rate, True, ""
        if t.burn_rate > max_burn:
            if a.low_objective == "scale":
                burn = round(max_burn * a.max_burn_fraction, 6)
                note = (f"{t.burn_rate:g}x can never fire at objective {slo.objective * 100:g}% "
                        f"(max burn {max_burn:.6g}x); scaled to {burn:g}x")
            else:
                reachable = False
                note = (f"{t.burn_rate:g}x can never fire at objective {slo.objective * 100:g}% "
                        f"(max burn {max_burn:.6g}x); kept as asked (low_objective: keep)")
        out.append(AlertRule(
            slo=slo.name, tier=t.name, severity=t.severity, requested_burn_rate=t.burn_rate, burn_rate=burn,
            error_rate_threshold=round(burn * slo.error_budget, 12), long_window_s=t.long_window_s,
            short_window_s=t.short_window_s, reachable=reachable, note=note,
        ))
    return tuple(out)


def windows_needed(slos: Iterable[Slo]) -> list[int]:
    """Every window length (seconds) the evaluation must compute: the SLO windows and all tier windows."""
    w: set[int] = set()
    for s in slos:
        w.add(s.window_s)
        for t in s.alerting.tiers:
            w.update((t.long_window_s, t.short_window_s))
    return sorted(w)


def rules_document(slos: Iterable[Slo]) -> dict[str, Any]:
    """The normalised specs and their generated rules as one plain document (for expected-output files)."""
    docs = []
    for s in slos:
        d = asdict(s)
        d["sli"] = {k: v for k, v in d["sli"].items() if k == "kind" or k in SLI_FIELDS[s.sli.kind]}
        d["labels"] = dict(s.labels)
        d.pop("alerting")
        d["alerting"] = {k: v for k, v in asdict(s.alerting).items() if k != "tiers"}
        d["rules"] = [asdict(r) for r in alert_rules(s)]
        docs.append(_plain(d))
    return {"version": "driftline/v1", "slos": docs}


def _plain(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v
