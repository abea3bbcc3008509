"""Notifiers against a real local HTTP receiver: exact payloads, signatures, retries, Retry-After,
the URL allow-list, the delivery log, and dedup across repeated evaluations."""

from __future__ import annotations

import datetime as _dt
import email.utils
import json
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

from collector.store import ChdbStore
from slo_engine.delivery import HttpSender, MemoryDeliveryLog, RetryPolicy, UrlPolicy
from slo_engine.engine import evaluate_and_notify
from slo_engine.exceptions import DeliveryFailed, UrlNotAllowed
from slo_engine.notifiers import Notification, PagerDutyNotifier, SlackNotifier, WebhookNotifier, sign_body
from slo_engine.spec import parse_specs
from tests.slo_data import T0, Receiver, minutes


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def _note(action: str = "trigger", **kw: object) -> Notification:
    base: dict[str, object] = dict(action=action, dedup_key="driftline/m1/v2/*/latency/lat/page", slo="lat", model="m1",
                                   model_version="v2", severity="page", summary="lat burning", at=T0,
                                   details={"sli_kind": "latency", "burn": 20.0},
                                   links=(("dashboard", "https://d.example/slo/lat"),))
    base.update(kw)
    return Notification(**base)  # type: ignore[arg-type]


def _sender(log: MemoryDeliveryLog, sleeps: list[float], **retry: Any) -> HttpSender:
    return HttpSender(policy=UrlPolicy.allowing("127.0.0.1"), retry=RetryPolicy(base_s=0.01, **retry), log=log,
                      sleep=sleeps.append)


def test_pagerduty_exact_events(receiver: Receiver) -> None:
    pd = PagerDutyNotifier(routing_key="KEY", sender=_sender(MemoryDeliveryLog(), []), url=receiver.url + "/pd",
                           client_url="https://d.example")
    pd.send([_note(), _note("resolve")])
    assert receiver.bodies("/pd") == [
        {"routing_key": "KEY", "event_action": "trigger", "dedup_key": "driftline/m1/v2/*/latency/lat/page",
         "payload": {"summary": "lat burning", "source": "driftline", "severity": "critical",
                     "timestamp": "2026-03-10T12:00:00+00:00", "component": "m1", "group": "m1/v2", "class": "latency",
                     "custom_details": {"sli_kind": "latency", "burn": 20.0}},
         "links": [{"href": "https://d.example/slo/lat", "text": "dashboard"}], "client": "Driftline",
         "client_url": "https://d.example"},
        {"routing_key": "KEY", "event_action": "resolve", "dedup_key": "driftline/m1/v2/*/latency/lat/page"},
    ]
    assert receiver.requests[0][1]["content-type"] == "application/json"


def test_slack_exact_message(receiver: Receiver) -> None:
    slack = SlackNotifier(webhook_url=receiver.url + "/services/T0/B0/XYZ", sender=_sender(MemoryDeliveryLog(), []))
    slack.send([_note(), _note(severity="ticket", slo="acc", summary="acc burning", links=())])
    (body,) = receiver.bodies("/services/T0/B0/XYZ")
    assert body == {
        "text": "Driftline SLO alerts for m1 v2: lat trigger; acc trigger",
        "blocks": [{"type": "header", "text": {"type": "plain_text", "text": "SLO alerts: m1 v2"}},
                   {"type": "section", "text": {"type": "mrkdwn", "text":
                    ":rotating_light: PAGE *lat*: lat burning <https://d.example/slo/lat|dashboard>\n"
                    ":warning: TICKET *acc*: acc burning"}}]}


def test_webhook_retries_after_500_and_429_with_signature_each_time(receiver: Receiver) -> None:
    receiver.script["/hook"] = [(500, {}), (429, {"Retry-After": "7"}), (503, {})]
    log, sleeps = MemoryDeliveryLog(), list[float]()
    clock = iter([1000, 1001, 1002, 1003])
    hook = WebhookNotifier(url=receiver.url + "/hook", secret=b"k", sender=_sender(log, sleeps),
                           clock=lambda: next(clock))
    hook.send([_note()])
    reqs = [(h, b) for p, h, b in receiver.requests]
    assert len(reqs) == 4
    assert len({b for _, b in reqs}) == 1   # the same body every time
    for i, (h, b) in enumerate(reqs):
        assert h["x-driftline-timestamp"] == str(1000 + i)   # signed afresh per attempt
        assert h["x-driftline-signature"] == sign_body(b"k", b, 1000 + i)
    assert json.loads(reqs[0][1]) == {"version": "driftline/v1", "group": {"model": "m1", "model_version": "v2"},
                                      "alerts": [_note().as_dict()]}
    assert sleeps[1] == 7.0                                   # Retry-After honoured exactly
    assert 0 <= sleeps[0] <= 0.01 and 0 <= sleeps[2] <= 0.04  # full jitter under base·2^n
    assert [(r.attempt, r.status_code, r.outcome) for r in log.records] == [
        (1, 500, "retry"), (2, 429, "retry"), (3, 503, "retry"), (4, 200, "delivered")]
    assert all(r.target == receiver.url for r in log.records)   # no paths (secrets) in the log


def test_retry_after_as_http_date_really_waits(receiver: Receiver) -> None:
    when = email.utils.formatdate(time.time() + 2, usegmt=True)
    receiver.script["/hook"] = [(429, {"Retry-After": when})]
    sender = HttpSender(policy=UrlPolicy.allowing("127.0.0.1"), retry=RetryPolicy(base_s=0.01))
    t0 = time.monotonic()
    WebhookNotifier(url=receiver.url + "/hook", secret="k", sender=sender).send([_note()])
    assert time.monotonic() - t0 >= 0.9   # the date has one-second resolution
    assert len(receiver.requests) == 2


def test_give_up_on_4xx_long_retry_after_and_exhaustion(receiver: Receiver) -> None:
    log, sleeps = MemoryDeliveryLog(), list[float]()
    receiver.script["/bad"] = [(400, {})]
    receiver.script["/slow"] = [(429, {"Retry-After": "3600"})]
    receiver.script["/down"] = [(500, {})] * 3
    receiver.script["/moved"] = [(302, {"Location": "http://169.254.169.254/latest"})]
    s = _sender(log, sleeps, max_attempts=3)
    for path, msg in (("/bad", "HTTP 400"), ("/slow", "rate limited"), ("/down", "3 attempts failed"),
                      ("/moved", "HTTP 302")):
        with pytest.raises(DeliveryFailed, match=msg):
            WebhookNotifier(url=receiver.url + path, secret="k", sender=s).send([_note()])
    assert [p for p, _, _ in receiver.requests] == ["/bad", "/slow", "/down", "/down", "/down", "/moved"]  # no redirect
    assert [r.outcome for r in log.records][-4:] == ["retry", "retry", "failed", "failed"]


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/x", "http://localhost/x", "http://10.1.2.3/x",
                                 "http://169.254.169.254/latest/meta-data", "http://[::1]/x", "http://0.0.0.0/x",
                                 "http://[::ffff:127.0.0.1]/x", "ftp://93.184.216.34/x", "http://u:p@93.184.216.34/x"])
def test_allow_list_refuses_internal_targets(url: str) -> None:
    with pytest.raises(UrlNotAllowed):
        WebhookNotifier(url=url, secret="k", sender=HttpSender())


@pytest.mark.parametrize("url", [
    "http://[64:ff9b::7f00:1]/x",          # NAT64 of 127.0.0.1
    "http://[64:ff9b::a9fe:a9fe]/x",       # NAT64 of 169.254.169.254 (cloud metadata)
    "http://[64:ff9b:1::a01:203]/x",       # local-use NAT64 of 10.1.2.3
    "http://[2002:7f00:1::1]/x",           # 6to4 of 127.0.0.1
    "http://[2002:c0a8:101::]/x",          # 6to4 of 192.168.1.1
    "http://[::127.0.0.1]/x",              # IPv4-compatible
    "http://[::10.0.0.1]/x",
    "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/x",  # Teredo: client 127.0.0.1 (obfuscated)
    "http://[fe80::5efe:a01:203]/x",       # ISATAP of 10.1.2.3
    "http://[2001:db8::5efe:7f00:1]/x",    # ISATAP of 127.0.0.1 under a prefix
])
def test_allow_list_refuses_internal_ipv4_embedded_in_ipv6(url: str) -> None:
    with pytest.raises(UrlNotAllowed, match="internal address"):
        UrlPolicy().check(url)


def test_allow_list_passes_public_ipv4_embedded_in_ipv6_and_listed_embedded_networks() -> None:
    UrlPolicy().check("http://[64:ff9b::5db8:d822]/x")       # NAT64 of 93.184.216.34
    UrlPolicy().check("http://[2002:5db8:d822::1]/x")        # 6to4 of 93.184.216.34
    UrlPolicy.allowing("10.0.0.0/8").check("http://[::ffff:10.1.2.3]/x")
    UrlPolicy.allowing("10.0.0.0/8", "64:ff9b::/96").check("http://[64:ff9b::a01:203]/x")
    with pytest.raises(UrlNotAllowed):   # the IPv6 network listed, the IPv4 it reaches is not
        UrlPolicy.allowing("64:ff9b::/96").check("http://[64:ff9b::a01:203]/x")


def test_delivery_log_keeps_status_and_timing_never_the_reply_body(receiver: Receiver) -> None:
    log, sleeps = MemoryDeliveryLog(), list[float]()
    secret_reply = "internal-token-abc123 stack trace of the target"
    receiver.script["/leaky"] = [(500, {}, secret_reply)] * 2 + [(401, {}, secret_reply)]
    s = _sender(log, sleeps, max_attempts=3)
    with pytest.raises(DeliveryFailed) as info:
        WebhookNotifier(url=receiver.url + "/leaky", secret="k", sender=s).send([_note()])
    assert secret_reply not in str(info.value)
    assert [r.status_code for r in log.records] == [500, 500, 401]
    for r in log.records:
        assert "internal-token" not in r.error and "stack" not in r.error
        assert re.fullmatch(r"HTTP \d{3} after \d+ ms", r.error), r.error


def test_allow_list_accepts_public_and_listed() -> None:
    UrlPolicy().check("https://93.184.216.34/hook")   # a public address literal: no DNS needed
    UrlPolicy.allowing("10.0.0.0/8").check("http://10.1.2.3/x")
    UrlPolicy.allowing("hooks.internal").check("http://hooks.internal/x")   # listed by name: not even resolved


SPEC = """
version: driftline/v1
slos:
  - {name: avail, model: m1, objective: 99.9, window: 30d, sli: {availability: {}}}
"""


def test_dedup_across_evaluations_and_retry_of_undelivered_trigger(store: ChdbStore, receiver: Receiver) -> None:
    minutes(store, T0 - 60 * _dt.timedelta(minutes=1), 90, lambda i: 0.5 if i >= 55 else 0.0, requests=4000)
    receiver.script["/pd"] = [(500, {})] * 2   # the first tick's delivery fails (2 attempts)
    sender = HttpSender(policy=UrlPolicy.allowing("127.0.0.1"), retry=RetryPolicy(max_attempts=2, base_s=0.001),
                        sleep=lambda s: None)
    routes = {"page": [PagerDutyNotifier(routing_key="K", sender=sender, url=receiver.url + "/pd")]}
    specs = parse_specs(SPEC)
    first = evaluate_and_notify(store, specs, T0, routes)
    assert first.sent == [] and len(first.failed) == 1
    for i in range(1, 6):
        evaluate_and_notify(store, specs, T0 + _dt.timedelta(minutes=i), routes)
    evaluate_and_notify(store, specs, T0 + _dt.timedelta(minutes=5), routes)   # the same minute again
    assert [b["event_action"] for b in receiver.bodies("/pd")] == ["trigger", "trigger", "trigger"]  # 2 failed + 1
