"""Driftline's SLO engine: SLO spec → validated normalised model → burn-rate rules → evaluation in
ClickHouse → alert router → notifiers.

The scheduler calls :func:`evaluate_and_notify` every minute; everything else here is for building
its arguments (specs, notifiers) and for tests.
"""

from slo_engine import model as _model
from slo_engine.delivery import HttpSender, MemoryDeliveryLog, RetryPolicy, StoreDeliveryLog, UrlPolicy
from slo_engine.engine import EvaluationResult, evaluate_and_notify
from slo_engine.evaluate import SloStatus, evaluate
from slo_engine.model import Alerting, BurnTier, Sli, Slo
from slo_engine.notifiers import Notification, PagerDutyNotifier, SlackNotifier, WebhookNotifier, verify_signature
from slo_engine.rules import AlertRule, alert_rules
from slo_engine.spec import load_specs, parse_specs

__all__ = [
    "AlertRule", "Alerting", "BurnTier", "DEFAULT_TIERS", "EvaluationResult", "HttpSender", "MemoryDeliveryLog",
    "Notification", "PagerDutyNotifier", "RetryPolicy", "SlackNotifier", "Sli", "Slo", "SloStatus",
    "StoreDeliveryLog", "UrlPolicy", "WebhookNotifier", "alert_rules", "evaluate", "evaluate_and_notify",
    "load_specs", "parse_specs", "verify_signature",
]


def __getattr__(name: str) -> object:
    if name == "DEFAULT_TIERS":  # read on first use (slo_engine.model)
        return _model.DEFAULT_TIERS
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
