"""The scheduler-facing entry point: evaluate, route, notify, persist.

``evaluate_and_notify(store, specs, now, notifiers)`` is what ``driftline``'s scheduler calls every
minute. Notifications are grouped by model and version (one Slack or webhook message per group;
PagerDuty sends one event per alert) and sent to the notifiers routed for their severity.
A trigger that no notifier delivered is not marked notified, so the next evaluation tries again.
"""

from __future__ import annotations

import datetime as _dt
import logging
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from collector.schema import SLO_ALERT_STATE
from collector.sql import sql
from collector.store import Store
from serving_shim.contract import as_utc
from slo_engine.evaluate import SloStatus, evaluate
from slo_engine.exceptions import DeliveryFailed, NotifierError
from slo_engine.model import Alerting, Slo
from slo_engine.notifiers import Notification, Notifier
from slo_engine.router import AlertState, Condition, route, route_conditions
from slo_engine.silences import list_silences, ms_precision

__all__ = ["EvaluationResult", "evaluate_and_notify", "load_alert_states", "notify_conditions", "Routes", "Annotator"]

_log = logging.getLogger(__name__)

#: severity → notifiers; a plain sequence sends every severity to the same notifiers.
Routes = Mapping[str, Sequence[Notifier]] | Sequence[Notifier]



@dataclass(frozen=True, kw_only=True)
class EvaluationResult:
    statuses: list[SloStatus]
    changed: list[AlertState]
    sent: list[Notification] = field(default_factory=list)
    failed: list[tuple[Notification, str]] = field(default_factory=list)


def _utc(t: _dt.datetime) -> _dt.datetime:
    """In UTC, to the millisecond the store keeps."""
    return ms_precision(as_utc(t))


def load_alert_states(store: Store, *, active_only: bool = False) -> dict[str, AlertState]:
    where = sql("WHERE state != 'resolved'" if active_only else "")
    rows = store.rows(sql("SELECT * EXCEPT updated_at FROM {db}.slo_alert_state FINAL %(where)s ORDER BY alert_key",
                          where=where))
    out = {}
    for r in rows:
        for k in ("since", "last_true", "last_notified"):
            r[k] = _utc(r[k])
        r["notified"] = bool(r["notified"])
        out[r["alert_key"]] = AlertState(**r)
    return out


def _save(store: Store, states: Sequence[AlertState], now: _dt.datetime) -> None:
    if not states:
        return
    cols: dict[str, list[object]] = {c.name: [] for c in SLO_ALERT_STATE.columns}
    for s in states:
        for k in cols:
            cols[k].append(now if k == "updated_at" else (int(s.notified) if k == "notified" else getattr(s, k)))
    store.insert(SLO_ALERT_STATE, cols)


def _targets(routes: Routes, severity: str) -> Sequence[Notifier]:
    if isinstance(routes, Mapping):
        return routes.get(severity, ())
    return routes


#: Context for a trigger about to be sent: ``annotate(notification, status)`` (``status``: the SLO's evaluation,
#: None for an alert whose SLO produced no status); what it returns goes into ``details["root_cause"]``.
Annotator = Callable[[Notification, SloStatus | None], Mapping[str, Any]]


def evaluate_and_notify(store: Store, specs: Sequence[Slo], now: _dt.datetime, notifiers: Routes, *,
                        annotate: Annotator | None = None) -> EvaluationResult:
    """One scheduler tick: evaluate ``specs`` at ``now``, route against stored state and silences, send, persist.

    ``specs`` should be the whole set: alerts of SLOs missing from it are left as they are.
    ``annotate``: called for each trigger that goes out (not on every evaluation), its answer attached to the
    notification as ``details["root_cause"]``; an annotator that fails never holds the alert back (the
    detail then says why).
    """
    now = _utc(now)
    statuses = evaluate(store, specs, now)
    prior = load_alert_states(store)
    changed, notes = route(statuses, prior, list_silences(store, now=now), now)
    if annotate is not None:
        notes = _annotated(notes, statuses, annotate)
    final, sent, failed = _deliver_and_save(store, prior, changed, notes, notifiers, now)
    return EvaluationResult(statuses=statuses, changed=final, sent=sent, failed=failed)


def _annotated(notes: Sequence[Notification], statuses: Sequence[SloStatus], annotate: Annotator
               ) -> list[Notification]:
    by_alert = {(s.slo.name, s.model_version): s for s in statuses}
    out = []
    for n in notes:
        if n.action == "trigger":
            try:
                extra: Mapping[str, Any] = annotate(n, by_alert.get((n.slo, n.model_version)))
            except Exception as exc:  # noqa: BLE001 - the alert goes out without its context
                _log.warning("root cause of %s failed: %s", n.dedup_key, exc)
                extra = {"error": f"{type(exc).__name__}: {exc}"[:500]}
            n = replace(n, details={**n.details, "root_cause": dict(extra)})
        out.append(n)
    return out


def notify_conditions(store: Store, conditions: Sequence[Condition], now: _dt.datetime, notifiers: Routes, *,
                      name: str, alerting: Alerting) -> EvaluationResult:
    """One tick for alerts found outside the SLO engine (``conditions``, all named ``name``): route them against
    stored state and silences, send and persist, the same way as :func:`evaluate_and_notify`."""
    now = _utc(now)
    prior = load_alert_states(store)
    changed, notes = route_conditions(conditions, prior, list_silences(store, now=now), now, name=name,
                                      alerting=alerting)
    final, sent, failed = _deliver_and_save(store, prior, changed, notes, notifiers, now)
    return EvaluationResult(statuses=[], changed=final, sent=sent, failed=failed)


def _deliver_and_save(store: Store, prior: Mapping[str, AlertState], changed: Sequence[AlertState],
                      notes: Sequence[Notification], notifiers: Routes, now: _dt.datetime
                      ) -> tuple[list[AlertState], list[Notification], list[tuple[Notification, str]]]:
    """Send ``notes`` grouped by model and version, and store the states (an undelivered one is retried)."""
    groups: dict[tuple[str, str, str, str], list[Notification]] = defaultdict(list)
    for n in notes:
        groups[(n.severity, n.model, n.model_version, n.action)].append(n)
    delivered: set[str] = set()
    unrouted: set[str] = set()   # no notifier for the severity: the state moves on, nothing is sent
    failed: list[tuple[Notification, str]] = []
    for (severity, *_), group in sorted(groups.items()):
        targets = _targets(notifiers, severity)
        if not targets:
            unrouted.update(n.dedup_key for n in group)
            continue
        ok = {n.dedup_key: False for n in group}
        for t in targets:
            try:
                t.send(group)
                ok.update(dict.fromkeys(ok, True))
            except (DeliveryFailed, NotifierError) as exc:
                _log.warning("SLO notification via %s failed: %s", getattr(t, "name", t), exc)
                failed.extend((n, f"{getattr(t, 'name', t)}: {exc}") for n in group)
        delivered.update(k for k, v in ok.items() if v)
    by_key = {n.dedup_key: n for n in notes}
    final: list[AlertState] = []
    for st in changed:
        note = by_key.get(st.alert_key)
        if note is not None and st.alert_key not in delivered and st.alert_key not in unrouted:
            p = prior.get(st.alert_key)
            if note.action == "trigger":   # not delivered anywhere: retry on the next tick
                st = replace(st, notified=p.notified if p and st.since == p.since else False,
                             last_notified=p.last_notified if p else st.last_notified)
            elif p is not None:         # resolve not delivered: stay firing, retry the resolve next tick
                st = p
        final.append(st)
    _save(store, final, now)
    return final, [n for n in notes if n.dedup_key in delivered], failed
