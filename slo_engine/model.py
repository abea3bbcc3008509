"""The normalised SLO model: what every spec becomes after validation, and what the generator reads.

Everything is frozen and keyword-only. Objectives are fractions (``0.999``); durations are seconds.
Alert windows are data (:class:`BurnTier`). Unless a spec gives its own, an SLO gets the table of
its period, versioned in ``slo_engine/alert_windows/google-<days>d.yaml`` (:func:`default_tiers`): the
SRE workbook's budget fractions and windows, with burn rates that follow from the period.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cache
from importlib import resources
from typing import Literal

import yaml

__all__ = ["SliKind", "Severity", "BurnTier", "DEFAULT_TIERS", "default_tiers", "Sli", "Alerting", "Slo", "SLI_KINDS",
           "SLI_FIELDS"]

SliKind = Literal["availability", "latency", "freshness", "drift", "accuracy"]
Severity = Literal["page", "ticket"]
SLI_KINDS: tuple[str, ...] = ("availability", "latency", "freshness", "drift", "accuracy")
#: The :class:`Sli` fields each kind reads.
SLI_FIELDS: dict[str, tuple[str, ...]] = {
    "availability": ("error_types",),
    "latency": ("threshold_ms", "interpolate"),
    "freshness": ("max_age_s",),
    "drift": ("detector", "subject"),
    "accuracy": ("slice", "tolerance"),
}


@dataclass(frozen=True, kw_only=True)
class BurnTier:
    """Alert when the burn rate is at least ``burn_rate`` over both the long and the short window."""

    name: str
    severity: Severity
    burn_rate: float
    long_window_s: int
    short_window_s: int


_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _seconds(v: str) -> int:
    return int(v[:-1]) * _UNIT_S[v[-1]]


@cache
def default_tiers(period_s: int) -> tuple[BurnTier, ...]:
    """The alert windows of an SLO period (28 or 30 days), from ``alert_windows/google-<days>d.yaml``."""
    days, rest = divmod(period_s, 86400)
    name = f"google-{days}d.yaml"
    path = resources.files("slo_engine") / "alert_windows" / name
    if rest or not path.is_file():
        raise ValueError(f"window: no alert windows for a period of {period_s} s (tables: 28d, 30d)")
    doc = yaml.safe_load(path.read_text())
    if doc.get("kind") != "AlertWindows" or _seconds(doc["period"]) != period_s:
        raise ValueError(f"alert_windows/{name}: not the AlertWindows table of a {days}-day period")
    return tuple(
        BurnTier(name=t["name"], severity=t["severity"], long_window_s=_seconds(t["long"]),
                 short_window_s=_seconds(t["short"]),
                 burn_rate=round(t["budget_percent"] / 100 * period_s / _seconds(t["long"]), 6))
        for t in doc["tiers"]
    )


DEFAULT_TIERS: tuple[BurnTier, ...]   # declared, not assigned: module __getattr__ below gives it


def __getattr__(name: str) -> tuple[BurnTier, ...]:
    """``DEFAULT_TIERS``: the 30-day table (the SRE workbook's 14.4x / 6x / 1x), read on first use and cached
    by :func:`default_tiers`; importing the package reads no file."""
    if name == "DEFAULT_TIERS":
        return default_tiers(30 * 86400)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass(frozen=True, kw_only=True)
class Sli:
    """What counts as good, by kind.

    - ``availability``: requests without error (``error_types`` restricts which error types count; empty: all).
    - ``latency``: requests at or under ``threshold_ms``, from the histogram; a threshold between bucket
      bounds needs ``interpolate`` (linear within the bucket, the ``histogram_quantile`` assumption).
    - ``freshness``: minutes in which a metric window started no more than ``max_age_s`` earlier.
    - ``drift``: detector windows without an ``alert`` (``detector``, optionally one ``subject``).
    - ``accuracy``: labelled predictions whose label matches (``tolerance`` for numeric predictions),
      optionally in one ``slice``; with ``estimate_below_coverage``, a time band whose share of labelled
      predictions is below it counts its predictions at the accuracy estimated before labels (the
      ``estimated_performance`` detector results, CBPE) instead.
    """

    kind: SliKind
    error_types: tuple[str, ...] = ()
    threshold_ms: float | None = None
    interpolate: bool = False
    max_age_s: int | None = None
    detector: str = "drift"
    subject: str | None = None
    slice: tuple[tuple[str, str], ...] = ()
    tolerance: float | None = None
    estimate_below_coverage: float | None = None


@dataclass(frozen=True, kw_only=True)
class Alerting:
    """Burn-rate tiers and the router's timing for one SLO.

    ``low_objective``: what to do with a tier whose burn rate exceeds the highest burn rate the objective
    allows (``1 / (1 - objective)``): ``scale`` it down to ``max_burn_fraction`` of that maximum, or
    ``keep`` it (it can never fire; the generator says so). ``pending_for_s``: the condition must hold
    this long before the alert fires. ``resolve_after_s``: it must be clear this long before the alert
    resolves (flap suppression). ``repeat_interval_s``: a firing alert is notified again after this long.
    """

    tiers: tuple[BurnTier, ...] = ()   # empty: the table of the SLO's period (default_tiers)
    low_objective: Literal["scale", "keep"] = "scale"
    max_burn_fraction: float = 0.9
    pending_for_s: int = 0
    resolve_after_s: int = 300
    repeat_interval_s: int = 4 * 3600


@dataclass(frozen=True, kw_only=True)
class Slo:
    name: str
    model: str
    objective: float
    window_s: int
    sli: Sli
    model_version: str | None = None
    per_version: bool = False
    description: str = ""
    alerting: Alerting = field(default_factory=Alerting)
    labels: tuple[tuple[str, str], ...] = ()
    dashboard_url: str = ""
    source: str = ""  # file:line of the spec, for messages

    def __post_init__(self) -> None:
        if not self.alerting.tiers:
            object.__setattr__(self, "alerting", replace(self.alerting, tiers=default_tiers(self.window_s)))

    @property
    def error_budget(self) -> float:
        return 1.0 - self.objective

    @property
    def max_burn_rate(self) -> float:
        return 1.0 / (1.0 - self.objective)
