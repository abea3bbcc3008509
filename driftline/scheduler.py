"""The scheduler: every tick, run the jobs (SLO evaluation and alerting, detectors) against the store.

In embedded mode it runs inside ``driftline serve``; in scale mode the same scheduler runs as its own
service. Jobs are plain callables ``job(store, now) -> summary``; a failing job is logged and counted,
never fatal to the others or to the server.
"""

from __future__ import annotations

import datetime as _dt
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from collector.fragments import time_window
from collector.sql import sql
from collector.store import Store

__all__ = ["Scheduler", "Job", "slo_job", "detectors_job", "notifier_routes", "version_job", "VERSION_ALERT",
           "cost_budget_job"]

log = logging.getLogger("driftline.scheduler")

Job = Callable[[Store, _dt.datetime], Any]


@dataclass
class JobStats:
    runs: int = 0
    failures: int = 0
    last_error: str = ""
    last_summary: Any = None
    last_seconds: float = 0.0


@dataclass
class Scheduler:
    store: Store
    jobs: dict[str, Job]
    interval_s: float = 60.0
    stats: dict[str, JobStats] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.interval_s <= 0:
            raise ValueError("interval_s: must be positive")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def tick(self, now: _dt.datetime | None = None) -> dict[str, Any]:
        """Run every job once at ``now`` (default: the current time). Returns their summaries."""
        now = now or _dt.datetime.now(_dt.UTC)
        out: dict[str, Any] = {}
        with self._lock:
            for name, job in self.jobs.items():
                st = self.stats.setdefault(name, JobStats())
                t0 = time.monotonic()
                try:
                    out[name] = st.last_summary = job(self.store, now)
                    st.runs += 1
                except Exception as exc:  # noqa: BLE001 - one job's failure never stops the others
                    st.failures += 1
                    st.last_error = f"{type(exc).__name__}: {str(exc)[:500]}"
                    log.exception("scheduler job %s failed", name)
                    out[name] = {"error": st.last_error}
                st.last_seconds = time.monotonic() - t0
        return out

    def _loop(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            self.tick()
            self._stop.wait(max(0.0, self.interval_s - (time.monotonic() - started)))

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="driftline-scheduler", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None


def notifier_routes(*, store: Store, pagerduty_routing_key: str = "", slack_webhook_url: str = "",
                    webhook_url: str = "", webhook_secret: str = "", allow: Sequence[str] = (),
                    pagerduty_url: str | None = None) -> dict[str, list[Any]]:
    """Notifiers from settings: PagerDuty gets pages, Slack and the webhook get pages and tickets."""
    from slo_engine import HttpSender, PagerDutyNotifier, SlackNotifier, StoreDeliveryLog, UrlPolicy, WebhookNotifier

    sender = HttpSender(policy=UrlPolicy.allowing(*allow), log=StoreDeliveryLog(store))
    page: list[Any] = []
    ticket: list[Any] = []
    if pagerduty_routing_key:
        kw = {"url": pagerduty_url} if pagerduty_url else {}
        page.append(PagerDutyNotifier(routing_key=pagerduty_routing_key, sender=sender, **kw))
    if slack_webhook_url:
        n = SlackNotifier(webhook_url=slack_webhook_url, sender=sender)
        page.append(n)
        ticket.append(n)
    if webhook_url:
        if not webhook_secret:
            raise ValueError("webhook_secret: a generic webhook needs a signing secret (DRIFTLINE_WEBHOOK_SECRET)")
        w = WebhookNotifier(url=webhook_url, secret=webhook_secret, sender=sender)
        page.append(w)
        ticket.append(w)
    return {"page": page, "ticket": ticket}


def slo_job(specs: Callable[[], Sequence[Any]], routes: dict[str, list[Any]], *, root_cause: bool = True) -> Job:
    """Evaluate the SLOs returned by ``specs()`` and notify; a summary of budgets and alerts. ``root_cause``:
    attach the root-cause rankings to each trigger that goes out (``driftline.alert_context``)."""
    from driftline.alert_context import root_cause_annotator
    from slo_engine import evaluate_and_notify

    def job(store: Store, now: _dt.datetime) -> dict[str, Any]:
        current = list(specs())
        if not current:
            return {"slos": 0}
        res = evaluate_and_notify(store, current, now, routes,
                                  annotate=root_cause_annotator(store) if root_cause else None)
        return {
            "slos": len(current),
            "changed": [(a.alert_key, a.state) for a in res.changed],
            "sent": len(res.sent),
            "failed": len(res.failed),
        }

    return job


#: The name of version-drift alerts (the ``slo`` a silence matches; SLO names cannot hold ':').
VERSION_ALERT = "driftline:version-drift"


def version_job(routes: Any, *, grace_s: float = 600.0, recent_s: float = 120.0, severity: str = "page",
                resolve_after_s: int = 0, repeat_interval_s: int = 4 * 3600) -> Job:
    """Raise "version drift" when a version other than the expected one serves past the grace period
    (``detectors.version``), routed like the SLO alerts: one alert per model, environment and version, with
    dedup, grouping, silences and resolve (``slo_engine.notify_conditions``)."""
    if severity not in ("page", "ticket"):
        raise ValueError("severity: page or ticket")

    def job(store: Store, now: _dt.datetime) -> dict[str, Any]:
        from detectors.version import version_findings
        from slo_engine.engine import notify_conditions
        from slo_engine.model import Alerting
        from slo_engine.router import Condition

        found = version_findings(store, now, grace_s=grace_s, recent_s=recent_s)
        conds = [Condition(
            alert_key=f"driftline/{f.model}/{f.version}/environment={f.environment or '*'}/version-drift/{severity}",
            slo=VERSION_ALERT, model=f.model, model_version=f.version, severity=severity,  # type: ignore[arg-type]
            active=True, details={**f.as_dict(), "grace_s": grace_s},
            summary=(f"version drift: {f.model}{' in ' + f.environment if f.environment else ''} serves {f.version} "
                     f"({f.requests} requests since {f.first_seen:%Y-%m-%d %H:%M:%S} UTC), expected {f.expected} "
                     f"(deployed {f.expected_since:%Y-%m-%d %H:%M:%S} UTC)"))
            for f in found if f.drifting]
        res = notify_conditions(store, conds, now, routes, name=VERSION_ALERT,
                                alerting=Alerting(resolve_after_s=resolve_after_s, repeat_interval_s=repeat_interval_s))
        return {"drifting": [c.alert_key for c in conds], "changed": [(a.alert_key, a.state) for a in res.changed],
                "sent": len(res.sent), "failed": len(res.failed)}

    return job


def cost_budget_job(models: Any, routes: Any, *, resolve_after_s: int = 300,
                    repeat_interval_s: int = 4 * 3600) -> Job:
    """Burn-rate alerts on the cost budgets of ``models`` (model -> collector.cost.CostModel; ``"*"`` for the
    others) for every model with traffic in the last 3 days (slo_engine.cost_budget)."""

    def job(store: Store, now: _dt.datetime) -> dict[str, Any]:
        from slo_engine.cost_budget import COST_ALERT, cost_budget_conditions
        from slo_engine.engine import notify_conditions
        from slo_engine.model import Alerting

        if not any(m.budget_usd_per_30d is not None for m in models.values()):
            return {"budgets": 0}
        traffic = [r["model"] for r in store.rows(
            "SELECT DISTINCT model FROM {db}.metric_windows WHERE window_start >= %(s)s ORDER BY model",
            {"s": now - _dt.timedelta(days=3)})]
        conds = cost_budget_conditions(store, models, traffic, now)
        res = notify_conditions(store, conds, now, routes, name=COST_ALERT,
                                alerting=Alerting(resolve_after_s=resolve_after_s, repeat_interval_s=repeat_interval_s))
        return {"budgets": len({c.model for c in conds}), "firing": [c.alert_key for c in conds if c.active],
                "changed": [(a.alert_key, a.state) for a in res.changed], "sent": len(res.sent)}

    return job


def detectors_job(*, window_s: float = 3600.0, every_s: float = 300.0, reference: str = "",
                  config: dict[str, Any] | None = None) -> Job:
    """Run the detectors for every model that had predictions in the last window.

    Windows end on multiples of ``every_s`` (so reruns of one tick write the same rows), and a run
    happens at most once per ``every_s``. The reference is ``reference`` when set, else the model's
    uploaded ``baseline`` when there is one, else the previous window.
    """
    if window_s <= 0 or every_s <= 0:
        raise ValueError("window_s and every_s must be positive")
    last: dict[str, _dt.datetime] = {}

    def job(store: Store, now: _dt.datetime) -> dict[str, Any]:
        from detectors.reference import list_references
        from detectors.runner import PREVIOUS, run_detectors

        epoch = now.timestamp()
        end = _dt.datetime.fromtimestamp(epoch - epoch % every_s, _dt.UTC)
        window = _dt.timedelta(seconds=window_s)
        models = [r["model"] for r in store.rows(sql(
            "SELECT DISTINCT model FROM {db}.predictions WHERE %(w)s ORDER BY model",
            w=time_window(end - window, end)))]
        out: dict[str, Any] = {}
        for model in models:
            if last.get(model) == end:
                continue
            ref = reference or ("baseline" if any(r["name"] == "baseline" for r in list_references(store, model))
                                else PREVIOUS)
            rep = run_detectors(store, model, end, window, reference=ref, config=config)
            last[model] = end
            out[model] = {"window_end": end.isoformat(), "reference": rep.reference, "results": len(rep.results),
                          "alerts": sorted({f"{a.detector}:{a.subject}:{a.test}" for a in rep.alerts})}
        return out

    return job
