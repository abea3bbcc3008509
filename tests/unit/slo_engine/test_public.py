"""The public names of the package are the ones meant."""

from __future__ import annotations

import slo_engine


def test_public_names() -> None:
    assert sorted(slo_engine.__all__) == [
        "AlertRule", "Alerting", "BurnTier", "DEFAULT_TIERS", "EvaluationResult", "HttpSender", "MemoryDeliveryLog",
        "Notification", "PagerDutyNotifier", "RetryPolicy", "SlackNotifier", "Sli", "Slo", "SloStatus",
        "StoreDeliveryLog", "UrlPolicy", "WebhookNotifier", "alert_rules", "evaluate", "evaluate_and_notify",
        "load_specs", "parse_specs", "verify_signature",
    ]
    assert all(hasattr(slo_engine, n) for n in slo_engine.__all__)
