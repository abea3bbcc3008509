"""The engine end to end on recorded metric windows: an outage and its recovery, a slow burn, silences,
with notifications delivered to a real local HTTP receiver."""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Iterable, Iterator, Sequence

import pytest

from collector.store import ChdbStore
from slo_engine.delivery import HttpSender, RetryPolicy, StoreDeliveryLog, UrlPolicy
from slo_engine.engine import Routes, evaluate_and_notify, load_alert_states
from slo_engine.model import Slo
from slo_engine.notifiers import Notifier, PagerDutyNotifier, WebhookNotifier, verify_signature
from slo_engine.silences import create_silence, expire_silence
from slo_engine.spec import parse_specs
from tests.slo_data import T0, Receiver, minutes

M = _dt.timedelta(minutes=1)
SPEC = """
version: driftline/v1
slos:
  - name: checkout-availability
    model: m1
    objective: 99.9
    window: 30d
    dashboard_url: https://driftline.example/slo/checkout-availability
    labels: {team: payments}
    sli:
      availability: {}
    alerting:
      resolve_after: 5m
      repeat_interval: 4h
"""


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def _routes(store: ChdbStore, receiver: Receiver, sleeps: list[float]) -> dict[str, list[Notifier]]:
    sender = HttpSender(policy=UrlPolicy.allowing("127.0.0.1"), retry=RetryPolicy(base_s=0.001),
                        log=StoreDeliveryLog(store), sleep=sleeps.append)
    pd = PagerDutyNotifier(routing_key="R0UTING", sender=sender, url=receiver.url + "/pd")
    hook = WebhookNotifier(url=receiver.url + "/hook", secret="s3cret", sender=sender, clock=lambda: 1_700_000_000)
    return {"page": [pd, hook], "ticket": [hook]}


def _run(store: ChdbStore, specs: Sequence[Slo], routes: Routes,
         times: Iterable[_dt.datetime]) -> list[tuple[int, str, str, bool]]:
    events: list[tuple[int, str, str, bool]] = []
    for t in times:
        res = evaluate_and_notify(store, specs, t, routes)
        assert not res.failed
        events += [(int((t - T0).total_seconds() // 60), n.action, n.severity, n.repeat) for n in res.sent]
    return events


def test_outage_pages_then_resolves_and_tickets(store: ChdbStore, receiver: Receiver) -> None:
    minutes(store, T0 - 3 * 86400 * M / 60, 3 * 1440 + 420, lambda i: 0.5 if 4320 <= i < 4340 else 0.0005,
            requests=4000)   # 3 days at 0.05% errors, then a 20-minute outage at 50% from T0, then recovery
    specs = parse_specs(SPEC)
    routes = _routes(store, receiver, [])
    times = [T0 + i * M for i in range(-5, 71)] + [T0 + i * 10 * M for i in range(8, 43)]
    events = _run(store, specs, routes, times)
    assert events == [
        (2, "trigger", "page", False),      # 1h burn 17x and 5m burn 200x: page-fast
        (5, "trigger", "ticket", False),    # 3d burn reaches 1x
        (54, "resolve", "page", False),     # page-slow's 30m window clean at +50m, held 5m (resolve_after)
        (250, "trigger", "ticket", True),   # repeat_interval 4h
        (380, "resolve", "ticket", False),  # the 6h window is clean at +6h20m
    ]
    pd = receiver.bodies("/pd")
    assert [b["event_action"] for b in pd] == ["trigger", "resolve"]
    key = "driftline/m1/*/*/availability/checkout-availability/page"
    assert pd[1] == {"routing_key": "R0UTING", "event_action": "resolve", "dedup_key": key}
    trig = pd[0]
    assert trig["dedup_key"] == key and trig["routing_key"] == "R0UTING" and trig["client"] == "Driftline"
    assert trig["links"] == [{"href": "https://driftline.example/slo/checkout-availability",
                              "text": "Driftline: checkout-availability"}]
    p = trig["payload"]
    assert (p["severity"], p["source"], p["component"], p["group"], p["class"]) == (
        "critical", "driftline", "m1", "m1/*", "availability")
    assert p["timestamp"] == (T0 + 2 * M).isoformat()
    cd = p["custom_details"]
    assert cd["tiers"] == ["page-fast"] and cd["labels"] == {"team": "payments"} and cd["objective"] == 0.999
    assert cd["burn_rates"]["page-fast"]["long"] == pytest.approx((2 * 0.5 + 58 * 0.0005) / 60 / 0.001)
    assert cd["burn_rates"]["page-fast"]["threshold"] == 14.4
    # the webhook: signed, one message per group, trigger and resolve
    hooks = [(h, b) for path, h, b in receiver.requests if path == "/hook"]
    assert len(hooks) == 5
    for h, b in hooks:
        assert h["x-driftline-timestamp"] == "1700000000"
        assert verify_signature(b"s3cret", b, h["x-driftline-timestamp"], h["x-driftline-signature"], now=1_700_000_001)
    first = json.loads(hooks[0][1])
    assert first["group"] == {"model": "m1", "model_version": ""}
    assert [(a["action"], a["severity"]) for a in first["alerts"]] == [("trigger", "page")]
    log = store.rows("SELECT notifier, action, outcome, count() AS n FROM {db}.slo_deliveries "
                     "GROUP BY notifier, action, outcome ORDER BY notifier, action")
    assert log == [{"notifier": "pagerduty", "action": "resolve", "outcome": "delivered", "n": 1},
                   {"notifier": "pagerduty", "action": "trigger", "outcome": "delivered", "n": 1},
                   {"notifier": "webhook", "action": "resolve", "outcome": "delivered", "n": 2},
                   {"notifier": "webhook", "action": "trigger", "outcome": "delivered", "n": 3}]
    states = load_alert_states(store)
    assert {s.severity: s.state for s in states.values()} == {"page": "resolved", "ticket": "resolved"}


def test_slow_burn_tickets_never_pages_and_resolves(store: ChdbStore, receiver: Receiver) -> None:
    # 0.3% errors (3x burn) from T0 for 16 h, after 3 days at 0.05%
    minutes(store, T0 - 3 * 1440 * M, 3 * 1440 + 22 * 60, lambda i: 0.003 if 4320 <= i < 4320 + 960 else 0.0005,
            requests=4000)
    specs = parse_specs(SPEC)
    events = _run(store, specs, _routes(store, receiver, []), [T0 + i * 30 * M for i in range(0, 45)])
    assert events == [(870, "trigger", "ticket", False),   # 3d burn reaches 1x after 14.4 h (first tick at 14.5 h)
                      (1110, "trigger", "ticket", True),   # repeat after 4 h
                      (1260, "resolve", "ticket", False)]  # the 6h window's burn drops under 1x 4.8 h after the fix
    assert receiver.bodies("/pd") == []


def test_silence_holds_the_page_until_it_is_expired(store: ChdbStore, receiver: Receiver) -> None:
    minutes(store, T0 - 6 * 60 * M, 6 * 60 + 60, lambda i: 0.5 if i >= 360 else 0.0005, requests=4000)
    specs = parse_specs(SPEC)
    routes = _routes(store, receiver, [])
    sil = create_silence(store, {"model": "m1", "severity": "page"}, now=T0, duration_s=3600, created_by="ops",
                         comment="retraining")
    events = _run(store, specs, routes, [T0 + i * M for i in range(0, 11)])
    assert events == [(1, "trigger", "ticket", False)]   # the silence matches pages only
    assert [b["event_action"] for b in receiver.bodies("/pd")] == []
    assert load_alert_states(store)["driftline/m1/*/*/availability/checkout-availability/page"].state == "firing"
    expire_silence(store, sil.id, now=T0 + 11 * M)
    events = _run(store, specs, routes, [T0 + 12 * M, T0 + 13 * M])
    assert events == [(12, "trigger", "page", False)]   # still firing when the silence ends: the page goes out
    assert [b["event_action"] for b in receiver.bodies("/pd")] == ["trigger"]
