"""Notifiers: PagerDuty Events API v2, Slack incoming webhooks, and a generic JSON webhook signed with
HMAC-SHA256. All share one small protocol, ``send(group)``, where a group is the notifications of one
model and version from one evaluation; all deliver through :class:`~slo_engine.delivery.HttpSender`.

The webhook signature (Stripe's scheme): headers ``X-Driftline-Timestamp: <unix seconds>`` and
``X-Driftline-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>``; check it with
:func:`verify_signature`, which also refuses timestamps older than a tolerance (replays).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import hmac
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from slo_engine.delivery import HttpSender
from slo_engine.exceptions import DeliveryFailed, NotifierError

__all__ = ["Notification", "Notifier", "PagerDutyNotifier", "SlackNotifier", "WebhookNotifier", "verify_signature",
           "sign_body", "PAGERDUTY_EVENTS_URL", "root_cause_text"]

PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
_PD_SEVERITY = {"page": "critical", "ticket": "warning"}


@dataclass(frozen=True, kw_only=True)
class Notification:
    """One alert's trigger or resolve, as the router decided it."""

    action: Literal["trigger", "resolve"]
    dedup_key: str
    slo: str
    model: str
    model_version: str
    severity: str
    summary: str
    at: _dt.datetime
    details: Mapping[str, Any] = field(default_factory=dict)
    links: tuple[tuple[str, str], ...] = ()   # (text, href)
    repeat: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"action": self.action, "dedup_key": self.dedup_key, "slo": self.slo, "model": self.model,
                "model_version": self.model_version, "severity": self.severity, "summary": self.summary,
                "at": self.at.isoformat(), "repeat": self.repeat, "details": dict(self.details),
                "links": [{"text": t, "href": h} for t, h in self.links]}


class Notifier(Protocol):
    name: str

    def send(self, group: Sequence[Notification]) -> None:
        """Deliver a group (one model and version); raise :class:`DeliveryFailed` if any part failed."""
        ...


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True, default=str).encode()


class PagerDutyNotifier:
    """PagerDuty Events API v2: one event per alert, ``dedup_key`` ties the trigger to its resolve."""

    def __init__(self, *, routing_key: str, sender: HttpSender, url: str = PAGERDUTY_EVENTS_URL,
                 name: str = "pagerduty", source: str = "driftline", client_url: str = "") -> None:
        if not routing_key:
            raise NotifierError("pagerduty: routing_key is required")
        sender.policy.check(url)
        self.routing_key, self.sender, self.url, self.name = routing_key, sender, url, name
        self.source, self.client_url = source, client_url

    def event(self, n: Notification) -> dict[str, Any]:
        if n.action == "resolve":
            return {"routing_key": self.routing_key, "event_action": "resolve", "dedup_key": n.dedup_key}
        ev: dict[str, Any] = {
            "routing_key": self.routing_key, "event_action": "trigger", "dedup_key": n.dedup_key,
            "payload": {
                "summary": n.summary[:1024], "source": self.source, "severity": _PD_SEVERITY.get(n.severity, "error"),
                "timestamp": n.at.isoformat(), "component": n.model, "group": f"{n.model}/{n.model_version or '*'}",
                "class": str(n.details.get("sli_kind", "slo")), "custom_details": dict(n.details),
            },
            "links": [{"href": h, "text": t} for t, h in n.links],
            "client": "Driftline",
        }
        if self.client_url:
            ev["client_url"] = self.client_url
        return ev

    def send(self, group: Sequence[Notification]) -> None:
        failed = []
        for n in group:
            try:
                self.sender.post(self.url, _dumps(self.event(n)), {}, notifier=self.name, dedup_key=n.dedup_key,
                                 action=n.action)
            except DeliveryFailed as exc:
                failed.append(str(exc))
        if failed:
            raise DeliveryFailed("; ".join(failed))


class SlackNotifier:
    """A Slack incoming webhook: one message per group."""

    def __init__(self, *, webhook_url: str, sender: HttpSender, name: str = "slack") -> None:
        sender.policy.check(webhook_url)
        self.url, self.sender, self.name = webhook_url, sender, name

    def message(self, group: Sequence[Notification]) -> dict[str, Any]:
        first = group[0]
        head = f"{first.model} {first.model_version or '(all versions)'}"
        lines = []
        for n in group:
            icon = ":white_check_mark: RESOLVED" if n.action == "resolve" else (
                ":rotating_light: PAGE" if n.severity == "page" else ":warning: TICKET")
            link = " ".join(f"<{h}|{t}>" for t, h in n.links)
            lines.append(f"{icon} *{n.slo}*: {n.summary}{(' ' + link) if link else ''}")
            cause = root_cause_text(n.details.get("root_cause"))
            if cause:
                lines.append(f"    _root cause_: {cause}")
        return {"text": f"Driftline SLO alerts for {head}: " + "; ".join(f"{n.slo} {n.action}" for n in group),
                "blocks": [{"type": "header", "text": {"type": "plain_text", "text": f"SLO alerts: {head}"[:150]}},
                           {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)[:3000]}}]}

    def send(self, group: Sequence[Notification]) -> None:
        if group:
            self.sender.post(self.url, _dumps(self.message(group)), {}, notifier=self.name,
                             dedup_key=",".join(n.dedup_key for n in group), action=group[0].action)


def _cost(x: Mapping[str, Any]) -> str:
    c = float(x["contribution"])
    return f"-{c * 100:.1f} pts" if x.get("metric", "accuracy") == "accuracy" else f"+{c:.3g}"


def root_cause_text(rc: Any, top: int = 3) -> str:
    """A notification's ``details["root_cause"]`` in one line: the first slices by accuracy cost, features by
    drift and slices by burn rate ("" when there is nothing to say)."""
    if not isinstance(rc, Mapping):
        return ""
    parts = []
    slices = [f"{x['slice']} ({_cost(x)} {x.get('metric', 'accuracy')}: {x['value']:.3g} vs rest "
              f"{x['baseline']:.3g})" for x in (rc.get("slices") or [])[:top]]
    if slices:
        parts.append("slices " + ", ".join(slices))
    feats = [f"{x['feature']} ({x['drift']:.2g}x threshold)" for x in (rc.get("features") or [])[:top]]
    if feats:
        parts.append("drifted features " + ", ".join(feats))
    burn = [f"{x['slice']} ({x['burn_rate']:.3g}x budget)" for x in (rc.get("burn") or [])[:top]]
    if burn:
        parts.append("fastest burn " + ", ".join(burn))
    if rc.get("error"):
        parts.append(f"not computed ({rc['error']})")
    return "; ".join(parts)


def sign_body(secret: bytes, body: bytes, timestamp: int) -> str:
    return "v1=" + hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()


def verify_signature(secret: bytes, body: bytes, timestamp: str, signature: str, *, tolerance_s: int = 300,
                     now: float | None = None) -> bool:
    """True when ``signature`` is ours for this body and timestamp, and the timestamp is recent."""
    try:
        ts = int(timestamp)
    except ValueError:
        return False
    if abs((time.time() if now is None else now) - ts) > tolerance_s:
        return False
    return hmac.compare_digest(sign_body(secret, body, ts), signature)


class WebhookNotifier:
    """A generic JSON webhook, signed with HMAC-SHA256 (see the module docstring)."""

    def __init__(self, *, url: str, secret: bytes | str, sender: HttpSender, name: str = "webhook",
                 clock: Any = time.time) -> None:
        if not secret:
            raise NotifierError("webhook: a signing secret is required")
        sender.policy.check(url)
        self.url, self.sender, self.name, self.clock = url, sender, name, clock
        self.secret = secret.encode() if isinstance(secret, str) else secret

    def payload(self, group: Sequence[Notification]) -> dict[str, Any]:
        first = group[0]
        return {"version": "driftline/v1", "group": {"model": first.model, "model_version": first.model_version},
                "alerts": [n.as_dict() for n in group]}

    def _sign(self, body: bytes) -> dict[str, str]:
        ts = int(self.clock())
        return {"X-Driftline-Timestamp": str(ts), "X-Driftline-Signature": sign_body(self.secret, body, ts)}

    def send(self, group: Sequence[Notification]) -> None:
        if group:
            self.sender.post(self.url, _dumps(self.payload(group)), {}, notifier=self.name,
                             dedup_key=",".join(n.dedup_key for n in group), action=group[0].action, sign=self._sign)
