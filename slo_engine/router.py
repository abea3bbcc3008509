"""The alert router, a pure function: evaluation results + prior state + silences → new state + notifications.

One alert per SLO instance (SLO, model version) and severity: it is active when any tier of that
severity fires (page-fast *or* page-slow pages once). Its dedup key names the model, version, slice
and detector (or SLI kind), the SLO and the severity, so PagerDuty ties trigger and resolve together.

States: ``pending`` (condition true, waiting ``pending_for``), ``firing``, ``resolved``.
- a firing alert resolves only after its condition has been clear for ``resolve_after``: a flapping
  condition keeps one incident open instead of paging and resolving on every evaluation;
- a firing alert is notified again after ``repeat_interval``;
- silences suppress triggers and repeats; a trigger held back by a silence goes out when the silence
  ends if the alert still fires; a resolve goes out whenever a trigger went out (closing is always safe).
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from slo_engine.evaluate import SloStatus
from slo_engine.model import Alerting, Severity, Slo
from slo_engine.notifiers import Notification

__all__ = ["AlertState", "Condition", "Silence", "dedup_key", "route", "route_conditions", "SILENCE_MATCHERS"]

SILENCE_MATCHERS = ("slo", "model", "model_version", "severity")


@dataclass(frozen=True, kw_only=True)
class AlertState:
    alert_key: str
    slo: str
    model: str
    model_version: str
    severity: Severity
    state: Literal["pending", "firing", "resolved"]
    since: _dt.datetime
    last_true: _dt.datetime
    last_notified: _dt.datetime
    notified: bool
    tier: str = ""                       # the tiers firing at the last true evaluation, comma-separated
    long_burn_rate: float | None = None
    short_burn_rate: float | None = None


@dataclass(frozen=True, kw_only=True)
class Silence:
    id: str
    matchers: Mapping[str, str]
    starts_at: _dt.datetime
    ends_at: _dt.datetime
    created_by: str = ""
    comment: str = ""

    def active(self, now: _dt.datetime) -> bool:
        return self.starts_at <= now < self.ends_at

    def matches(self, a: AlertState) -> bool:
        return all(getattr(a, k) == v for k, v in self.matchers.items())

    def as_dict(self) -> dict[str, Any]:
        """As the API and the CLI show it (times in ISO 8601)."""
        return {"id": self.id, "matchers": dict(self.matchers), "starts_at": self.starts_at.isoformat(),
                "ends_at": self.ends_at.isoformat(), "created_by": self.created_by, "comment": self.comment}


_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)


def dedup_key(slo: Slo, model_version: str, severity: str) -> str:
    sli = slo.sli
    slice_ = ",".join(f"{k}={v}" for k, v in sli.slice) or "*"
    what = f"{sli.detector}:{sli.subject or '*'}" if sli.kind == "drift" else sli.kind
    return f"driftline/{slo.model}/{model_version or '*'}/{slice_}/{what}/{slo.name}/{severity}"


def _details(s: SloStatus, firing_tiers: Sequence[str]) -> dict[str, Any]:
    return {"slo": s.slo.name, "sli_kind": s.slo.sli.kind, "objective": s.slo.objective, "window_s": s.slo.window_s,
            "sli": s.sli, "budget_remaining": s.budget_remaining, "tiers": list(firing_tiers),
            "burn_rates": {r.rule.tier: {"long": r.long_burn_rate, "short": r.short_burn_rate,
                                         "threshold": r.rule.burn_rate} for r in s.rules},
            "labels": dict(s.slo.labels), "spec": s.slo.source}


def route(statuses: Iterable[SloStatus], prior: Mapping[str, AlertState], silences: Sequence[Silence],
          now: _dt.datetime) -> tuple[list[AlertState], list[Notification]]:
    """Decide. Returns the states that changed and the notifications to send (in a stable order)."""
    changed: list[AlertState] = []
    notes: list[Notification] = []
    seen: set[str] = set()
    statuses = list(statuses)
    specs = {s.slo.name: s.slo for s in statuses}
    for s in statuses:
        a = s.slo.alerting
        for sev in sorted({r.rule.severity for r in s.rules}):
            key = dedup_key(s.slo, s.model_version, sev)
            seen.add(key)
            rules = [r for r in s.rules if r.rule.severity == sev]
            tiers = [r.rule.tier for r in rules if r.firing]
            top = max(rules, key=lambda r: (r.firing, r.rule.burn_rate))
            cur = AlertState(alert_key=key, slo=s.slo.name, model=s.slo.model, model_version=s.model_version,
                             severity=sev, state="resolved", since=now, last_true=now, last_notified=_EPOCH,
                             notified=False, tier=",".join(tiers), long_burn_rate=top.long_burn_rate,
                             short_burn_rate=top.short_burn_rate)
            links = ((f"Driftline: {s.slo.name}", s.slo.dashboard_url),) if s.slo.dashboard_url else ()
            summary = (f"{s.slo.name}: {s.slo.sli.kind} SLO of {s.slo.model} {s.model_version or ''} burning error "
                       f"budget ({', '.join(tiers) or 'clear'}; objective {s.slo.objective * 100:g}%)"
                       ).replace("  ", " ")
            n = Notification(action="trigger", dedup_key=key, slo=s.slo.name, model=s.slo.model,
                             model_version=s.model_version, severity=sev, summary=summary, at=now,
                             details=_details(s, tiers), links=links)
            new, note = _step(prior.get(key), cur, bool(tiers), a.pending_for_s, a.resolve_after_s,
                              a.repeat_interval_s, silences, now, n)
            if new is not None:
                changed.append(new)
            if note is not None:
                notes.append(note)
    # alerts of evaluated SLOs that produced no status this time (a version without data): condition false
    for key, p in sorted(prior.items()):
        if key in seen or p.slo not in specs or p.state == "resolved":
            continue
        resolve_after = specs[p.slo].alerting.resolve_after_s
        n = Notification(action="trigger", dedup_key=key, slo=p.slo, model=p.model, model_version=p.model_version,
                         severity=p.severity, summary=f"{p.slo}: no data for {p.model} {p.model_version}", at=now)
        new, note = _step(p, replace(p, tier=""), False, 0, resolve_after, 0, silences, now, n)
        if new is not None:
            changed.append(new)
        if note is not None:
            notes.append(note)
    return changed, notes


@dataclass(frozen=True, kw_only=True)
class Condition:
    """An alert condition found outside the SLO engine (a detector's finding, such as version drift), routed
    by :func:`route_conditions` exactly like an SLO's alert: pending, firing, flap-suppressed resolve, repeats
    and silences (``slo`` is the alert's name for the silence matcher of that name)."""

    alert_key: str
    slo: str
    model: str
    model_version: str
    severity: Severity
    active: bool
    summary: str
    details: Mapping[str, Any] = field(default_factory=dict)


def route_conditions(conditions: Iterable[Condition], prior: Mapping[str, AlertState], silences: Sequence[Silence],
                     now: _dt.datetime, *, name: str, alerting: Alerting
                     ) -> tuple[list[AlertState], list[Notification]]:
    """Like :func:`route`, for conditions named ``name``: an open alert of that name whose condition is not
    among ``conditions`` any more is clear (it resolves after ``alerting.resolve_after_s``)."""
    changed: list[AlertState] = []
    notes: list[Notification] = []
    current = {c.alert_key: c for c in conditions if c.slo == name}
    stale = {k: p for k, p in prior.items() if p.slo == name and k not in current and p.state != "resolved"}
    for key in sorted(current) + sorted(stale):
        c = current.get(key)
        p = prior.get(key)
        if c is None:
            assert p is not None
            c = Condition(alert_key=key, slo=name, model=p.model, model_version=p.model_version,
                          severity=p.severity, active=False, summary=f"{name}: {p.model} {p.model_version} clear")
        if p is None and not c.active:
            continue
        cur = AlertState(alert_key=key, slo=name, model=c.model, model_version=c.model_version, severity=c.severity,
                         state="resolved", since=now, last_true=now, last_notified=_EPOCH, notified=False)
        n = Notification(action="trigger", dedup_key=key, slo=name, model=c.model, model_version=c.model_version,
                         severity=c.severity, summary=c.summary, at=now, details=dict(c.details))
        new, note = _step(p, cur, c.active, alerting.pending_for_s, alerting.resolve_after_s,
                          alerting.repeat_interval_s, silences, now, n)
        if new is not None:
            changed.append(new)
        if note is not None:
            notes.append(note)
    return changed, notes


def _step(p: AlertState | None, cur: AlertState, cond: bool, pending_for: int, resolve_after: int, repeat: int,
          silences: Sequence[Silence], now: _dt.datetime, n: Notification
          ) -> tuple[AlertState | None, Notification | None]:
    silenced = any(x.active(now) and x.matches(cur) for x in silences)
    if p is None or p.state == "resolved":
        if not cond:
            return None, None
        if pending_for > 0:
            return replace(cur, state="pending", since=now, last_true=now), None
        return _fire(replace(cur, state="firing", since=now, last_true=now), silenced, now, n)
    if p.state == "pending":
        if not cond:
            return replace(p, state="resolved", tier=""), None
        if (now - p.since).total_seconds() >= pending_for:
            return _fire(replace(cur, state="firing", since=p.since, last_true=now), silenced, now, n)
        return replace(cur, state="pending", since=p.since, last_true=now), None
    # firing
    if cond:
        st = replace(cur, state="firing", since=p.since, last_true=now, notified=p.notified,
                     last_notified=p.last_notified)
        due = not p.notified or (repeat > 0 and (now - p.last_notified).total_seconds() >= repeat)
        if due and not silenced:
            return replace(st, notified=True, last_notified=now), replace(n, repeat=p.notified)
        return st, None
    if (now - p.last_true).total_seconds() < resolve_after:
        return None, None   # hold: flap suppression
    st = replace(p, state="resolved", tier="", long_burn_rate=cur.long_burn_rate, short_burn_rate=cur.short_burn_rate)
    if p.notified:
        return replace(st, last_notified=now), replace(n, action="resolve", summary=f"resolved: {n.summary}")
    return st, None


def _fire(st: AlertState, silenced: bool, now: _dt.datetime, n: Notification
          ) -> tuple[AlertState, Notification | None]:
    if silenced:
        return st, None
    return replace(st, notified=True, last_notified=now), n
