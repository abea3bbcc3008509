"""The root cause of an alert in one line of the Slack message (slo_engine.notifiers.root_cause_text)."""

from __future__ import annotations

import datetime as _dt
from dataclasses import replace

from slo_engine.delivery import HttpSender, UrlPolicy
from slo_engine.notifiers import Notification, SlackNotifier, root_cause_text

RC = {"slices": [{"slice": "region=eu", "contribution": 0.04, "metric": "accuracy", "value": 0.5, "baseline": 0.9},
                 {"slice": "k=a", "contribution": 1.5, "metric": "mae", "value": 6.0, "baseline": 1.0}],
      "features": [{"feature": "x", "contribution": 2.4, "drift": 1.2}],
      "burn": [{"slice": "region=eu", "burn_rate": 50.0}]}


def test_root_cause_in_one_line() -> None:
    text = root_cause_text(RC)
    assert text == ("slices region=eu (-4.0 pts accuracy: 0.5 vs rest 0.9), k=a (+1.5 mae: 6 vs rest 1); "
                    "drifted features x (1.2x threshold); fastest burn region=eu (50x budget)")
    assert root_cause_text(None) == "" and root_cause_text({"slices": []}) == ""
    assert root_cause_text({"error": "RuntimeError: boom"}) == "not computed (RuntimeError: boom)"


def test_the_slack_message_carries_it_under_its_alert() -> None:
    n = Notification(action="trigger", dedup_key="k", slo="acc", model="m1", model_version="v1", severity="page",
                     summary="accuracy SLO burning", at=_dt.datetime(2026, 1, 1, tzinfo=_dt.UTC),
                     details={"root_cause": RC})
    sender = HttpSender(policy=UrlPolicy.allowing("hooks.example"))
    slack = SlackNotifier(webhook_url="https://hooks.example/x", sender=sender)
    text = slack.message([n, replace(n, details={})])["blocks"][1]["text"]["text"]
    lines = text.split("\n")
    assert len(lines) == 3 and lines[1] == "    _root cause_: " + root_cause_text(RC)
