"""Cost per 1,000 inferences on a real store, against hand computations for each cost model."""

from __future__ import annotations

import collections
import datetime as _dt
import json

import pytest

from collector.cost import CostModel, cost_series, load_cost_models
from tests.slo_data import minutes

H = _dt.timedelta(hours=1)
# predictions are kept 90 days (TTL): recent times, on an hour so that one step of 1 h holds the traffic
START = _dt.datetime.now(_dt.UTC).replace(minute=0, second=0, microsecond=0) - 3 * H


@pytest.fixture
def traffic(store):  # type: ignore[no-untyped-def]
    # v1: 10 one-minute windows from 2 replicas, 1,000 requests a minute, 2% errors (10 per replica-minute)
    minutes(store, START, 10, lambda i: 0.02, version="v1", replicas=2, requests=1000)
    # v2: the same 10 minutes from 1 replica, 500 requests a minute, no errors
    minutes(store, START, 10, lambda i: 0.0, version="v2", replicas=1, requests=500)
    # v1's sampled predictions: 100 ok ones (input tokens 100..199, 40 output tokens) and all 200 errors
    # (80 input tokens, none out); v2 has none
    cols: dict[str, list[object]] = collections.defaultdict(list)
    for i in range(300):
        ok = i < 100
        row = {"event_id": f"e{i}", "ts": START + _dt.timedelta(seconds=i), "model": "m1", "model_version": "v1",
               "request_id": f"r{i}", "features_num": {"input_tokens": float(100 + i if ok else 80),
                                                       "output_tokens": 40.0 if ok else 0.0},
               "features_cat": {}, "features_null": [], "pred_value": None, "pred_label": "x", "pred_score": None,
               "pred_probs": {}, "slices": {}, "latency_ms": 5.0, "status": "ok" if ok else "error",
               "error_type": "" if ok else "timeout", "schema_version": 1}
        for k, v in row.items():
            cols[k].append(v)
    store.insert("predictions", cols)
    return store


def _points(store, cost):  # type: ignore[no-untyped-def]
    pts = cost_series(store, "m1", cost, start=START - H, end=START + 2 * H, step_s=3600)
    assert all(p.t == START for p in pts)
    return {p.model_version: p for p in pts}


def test_per_request(traffic) -> None:  # type: ignore[no-untyped-def]
    p = _points(traffic, CostModel(kind="per_request", usd_per_request=0.0002))
    assert (p["v1"].requests, p["v1"].errors, p["v2"].requests) == (10_000, 200, 5_000)
    assert p["v1"].cost_usd == pytest.approx(10_000 * 0.0002) and p["v1"].cost_per_1k == pytest.approx(0.2)
    assert p["v2"].cost_usd == pytest.approx(1.0) and p["v2"].cost_per_1k == pytest.approx(0.2)


def test_replica_hours(traffic) -> None:  # type: ignore[no-untyped-def]
    p = _points(traffic, CostModel(kind="replica_hours", usd_per_replica_hour=0.5))
    # v1: 2 replicas x 10 windows x 60 s = 1/3 replica-hour; v2: 1/6
    assert p["v1"].replica_hours == pytest.approx(1 / 3) and p["v1"].cost_usd == pytest.approx(0.5 / 3)
    assert p["v1"].cost_per_1k == pytest.approx(0.5 / 3 / 10_000 * 1000)
    assert p["v2"].cost_per_1k == pytest.approx(0.5 / 6 / 5_000 * 1000)


def test_per_token(traffic) -> None:  # type: ignore[no-untyped-def]
    p = _points(traffic, CostModel(kind="per_token", usd_per_1k_input_tokens=0.5, usd_per_1k_output_tokens=1.5))
    # errors: every one sampled, 200 x 80 input tokens; ok: mean 149.5 input and 40 output tokens in the
    # sample, times the 9,800 ok requests the metric windows counted
    tin, tout = 200 * 80 + 149.5 * 9_800, 40 * 9_800
    assert p["v1"].input_tokens == pytest.approx(tin) and p["v1"].output_tokens == pytest.approx(tout)
    usd = tin / 1000 * 0.5 + tout / 1000 * 1.5
    assert usd == pytest.approx(1328.55)
    assert p["v1"].cost_usd == pytest.approx(usd) and p["v1"].cost_per_1k == pytest.approx(usd / 10_000 * 1000)
    assert p["v2"].cost_usd == 0.0 and p["v2"].input_tokens == 0.0   # no sampled predictions with tokens


def test_cost_models_from_configuration_and_the_api(traffic, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import httpx

    from driftline.config import Settings
    from driftline.server import create_app
    from tests.servers import running

    spec = {"m1": {"kind": "per_request", "usd_per_request": 0.0002}, "*": {"kind": "replica_hours",
                                                                             "usd_per_replica_hour": 2}}
    f = tmp_path / "cost.yaml"
    f.write_text("m1:\n  kind: per_request\n  usd_per_request: 0.0002\n")
    assert load_cost_models(str(f)) == {"m1": CostModel(kind="per_request", usd_per_request=0.0002)}
    for bad, field in (({"m1": {"kind": "free"}}, "m1.kind"), ({"m1": {"kind": "per_request", "usd_per_request": -1}},
                       "m1.usd_per_request"), ({"m1": {"kind": "per_request", "price": 1}}, "m1.price"),
                       ({"m1": {"kind": "per_token"}}, "usd_per_1k_input_tokens")):
        with pytest.raises(ValueError, match=field.replace(".", r"\.")):
            load_cost_models(json.dumps(bad))
    with pytest.raises(ValueError, match="DRIFTLINE_COST_MODELS"):
        Settings.from_env({"DRIFTLINE_COST_MODELS": "{not json"})
    app = create_app(Settings(open_localhost=True, scheduler=False, cost_models=json.dumps(spec)), store=traffic)
    with running(app, log_level="warning") as url:
        rows = httpx.get(url + "/v1/cost", params={"model": "m1", "minutes": 600}, timeout=60).json()
    by_v = {r["model_version"]: r for r in rows}
    assert by_v["v1"]["cost_model"] == "per_request" and by_v["v1"]["cost_per_1k"] == pytest.approx(0.2)


def test_cost_budget_burn_rate_alerts(store) -> None:  # type: ignore[no-untyped-def]
    from driftline.scheduler import cost_budget_job
    from slo_engine.cost_budget import COST_ALERT, PERIOD_S
    from slo_engine.engine import load_alert_states
    from tests.slo_data import T0, Receiver

    # $0.001 a request, 1,000 requests a minute for one hour: $60 in the hour against a budget of $1,000 per
    # 30 days ($1.39 an hour): burn 43.2 over 1 h and 5 min (page-fast fires at 14.4)
    minutes(store, T0, 60, lambda i: 0.0, version="v1", replicas=2, requests=1000)
    cm = CostModel(kind="per_request", usd_per_request=0.001, budget_usd_per_30d=1000)
    from slo_engine.cost_budget import burn_rates
    from slo_engine.model import default_tiers

    r = burn_rates(store, "m1", cm, T0 + 60 * _dt.timedelta(minutes=1), default_tiers(PERIOD_S))
    assert r[3600]["cost_usd"] == pytest.approx(60.0)
    assert r[3600]["burn_rate"] == pytest.approx(60 / (1000 * 3600 / PERIOD_S))
    assert r[300]["burn_rate"] == pytest.approx(5 / (1000 * 300 / PERIOD_S))
    receiver = Receiver()
    try:
        from slo_engine.delivery import HttpSender, RetryPolicy, UrlPolicy
        from slo_engine.notifiers import WebhookNotifier

        hook = WebhookNotifier(url=receiver.url + "/hook", secret="s", sender=HttpSender(
            policy=UrlPolicy.allowing("127.0.0.1"), retry=RetryPolicy(base_s=0.001)))
        job = cost_budget_job({"m1": cm}, {"page": [hook], "ticket": [hook]}, resolve_after_s=0)
        seen = []
        for m in (5, 30, 70, 95):
            before = len(receiver.bodies("/hook"))
            job(store, T0 + m * _dt.timedelta(minutes=1))
            seen += [(m, a["action"], a["severity"]) for b in receiver.bodies("/hook")[before:] for a in b["alerts"]]
    finally:
        receiver.close()
    # page-fast from minute 30 ($30 in the last hour: burn 21.6); after the traffic stops page-slow holds the page
    # (30 min window) until minute 90; no ticket (3 days: burn 0.6)
    assert seen == [(30, "trigger", "page"), (95, "resolve", "page")]
    (st,) = load_alert_states(store).values()
    assert st.slo == COST_ALERT and st.state == "resolved"
