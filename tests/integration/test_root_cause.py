"""Root cause on real chDB (detectors.rootcause): a synthetic accuracy drop confined to one small slice ranks
that slice first, drift ranks the drifted feature first, and the burn ranking finds the failing slice."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from collector.schema import METRIC_WINDOWS
from collector.store import ChdbStore
from detectors.results import query_results
from detectors.rootcause import root_cause, slice_burn
from detectors.runner import run_detectors
from driftline.config import Settings
from driftline.scheduler import slo_job
from driftline.server import create_app
from serving_shim.contract import LATENCY_BUCKETS_MS
from slo_engine.delivery import HttpSender, RetryPolicy, StoreDeliveryLog, UrlPolicy
from slo_engine.engine import evaluate_and_notify
from slo_engine.notifiers import PagerDutyNotifier, SlackNotifier, WebhookNotifier
from slo_engine.spec import parse_specs
from tests.detector_data import T0, insert_labels, insert_predictions
from tests.slo_data import Receiver

H = _dt.timedelta(hours=1)
REGIONS = {"us": 0.5, "apac": 0.25, "latam": 0.15, "eu": 0.10}


def _window(store: ChdbStore, start: _dt.datetime, n: int, rng: np.random.Generator, *, eu_acc: float,
            x_shift: float = 0.0) -> None:
    region = rng.choice(list(REGIONS), n, p=list(REGIONS.values()))
    plan = rng.choice(["free", "pro"], n)
    truth = rng.choice(["a", "b"], n)
    acc = np.where(region == "eu", eu_acc, 0.9)
    right = rng.random(n) < acc
    pred = np.where(right, truth, np.where(truth == "a", "b", "a"))
    feats: list[dict[str, Any]] = [{"x": float(rng.normal(x_shift, 1)), "z": float(rng.normal(0, 1)),
                                    "city": str(rng.choice(["p", "q", "r"]))} for _ in range(n)]
    rids = insert_predictions(store, start=start, seconds=3500, features=feats, preds=[{"label": p} for p in pred],
                              slices=[{"region": str(r), "plan": str(p)} for r, p in zip(region, plan, strict=True)])
    insert_labels(store, rids, classes=[str(t) for t in truth])


def test_a_drop_confined_to_a_small_slice_puts_it_first(store: ChdbStore) -> None:
    rng = np.random.default_rng(16)
    _window(store, T0, 3000, rng, eu_acc=0.9)
    _window(store, T0 + H, 3000, rng, eu_acc=0.5, x_shift=0.8)
    rep = run_detectors(store, "m1", T0 + 2 * H, H, config={"drift": {"importance": {"x": 1, "z": 1, "city": 2},
                                                                      "drift_share": 0.2}})
    verdict = next(r for r in rep.results if r.test == "drift_share")
    # x drifted (weight 1 of 4), z and city did not
    assert verdict.value == pytest.approx(0.25) and verdict.status == "alert"
    assert [d["feature"] for d in verdict.detail["drifted"]] == ["x"]
    stored = query_results(store, model="m1", test="drift_share")
    assert stored and stored[0]["value"] == pytest.approx(0.25)

    rc = root_cause(store, "m1", T0 + H, T0 + 2 * H, burn={"kind": "accuracy", "objective": 0.9})
    first = rc["slices"][0]
    assert first["slice"] == "region=eu" and first["source"] == "performance"
    assert first["value"] == pytest.approx(0.5, abs=0.06) and first["baseline"] == pytest.approx(0.9, abs=0.03)
    assert first["share"] == pytest.approx(0.10, abs=0.02)
    assert first["contribution"] == pytest.approx((first["baseline"] - first["value"]) * first["share"])
    # every other slice costs far less (healthy slices contribute < 0 and are not listed)
    assert all(s["contribution"] < first["contribution"] / 4 for s in rc["slices"][1:])
    assert rc["features"][0]["feature"] == "x" and rc["features"][0]["drift"] > 1
    assert rc["verdict"]["status"] == "alert"
    assert rc["burn"][0]["slice"] == "region=eu"
    assert rc["burn"][0]["bad_rate"] == pytest.approx(0.5, abs=0.06)


def test_the_burn_ranking_undoes_the_sampling_of_ok_predictions(store: ChdbStore) -> None:
    """20% errors in region=eu, 1% elsewhere; ok predictions sampled at 10%, errors all kept; the exact counts
    in the metric windows give the error rates back."""
    rng = np.random.default_rng(5)
    n = 20_000
    region = rng.choice(list(REGIONS), n, p=list(REGIONS.values()))
    err = rng.random(n) < np.where(region == "eu", 0.2, 0.01)
    idx = np.flatnonzero(err | (rng.random(n) < 0.1))
    insert_predictions(store, start=T0, seconds=3500, features=[{"x": 1.0}] * len(idx),
                       slices=[{"region": str(region[i])} for i in idx],
                       statuses=["error" if err[i] else "ok" for i in idx])
    cols: dict[str, list[Any]] = {
        "event_id": ["mw-1"], "window_start": [T0], "window_s": [3600], "model": ["m1"], "model_version": ["v1"],
        "source": ["test"], "requests": [n], "errors": [{"timeout": int(err.sum())}],
        "latency_buckets": [[0] * (len(LATENCY_BUCKETS_MS) + 1)], "latency_sum_ms": [0.0], "schema_version": [1]}
    store.insert(METRIC_WINDOWS, cols)
    ranked = slice_burn(store, "m1", T0, T0 + H, kind="errors", objective=0.99)
    assert [r["slice"] for r in ranked][:1] == ["region=eu"]
    eu = ranked[0]
    assert eu["bad_rate"] == pytest.approx(0.2, abs=0.03) and eu["burn_rate"] == pytest.approx(20, rel=0.15)
    assert eu["share"] == pytest.approx(0.10, abs=0.02)
    us = next(r for r in ranked if r["slice"] == "region=us")
    assert us["bad_rate"] == pytest.approx(0.01, abs=0.005)
    # one slice only (an SLO on region=us): no eu
    assert {r["slice"] for r in slice_burn(store, "m1", T0, T0 + H, within=[("region", "us")])} == {"region=us"}
    with pytest.raises(ValueError, match="^objective"):
        slice_burn(store, "m1", T0, T0 + H, objective=1.0)
    with pytest.raises(ValueError, match="^threshold_ms"):
        slice_burn(store, "m1", T0, T0 + H, kind="latency")


ACCURACY_SPEC = """
version: driftline/v1
slos:
  - name: m1-accuracy
    model: m1
    objective: 99.5
    window: 30d
    sli:
      accuracy: {}
"""


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def _notifiers(store: ChdbStore, receiver: Receiver) -> dict[str, list[Any]]:
    sender = HttpSender(policy=UrlPolicy.allowing("127.0.0.1"), retry=RetryPolicy(base_s=0.001),
                        log=StoreDeliveryLog(store), sleep=lambda s: None)
    pd = PagerDutyNotifier(routing_key="R0UTING", sender=sender, url=receiver.url + "/pd")
    slack = SlackNotifier(webhook_url=receiver.url + "/slack", sender=sender)
    hook = WebhookNotifier(url=receiver.url + "/hook", secret="s3cret", sender=sender)
    return {"page": [pd, slack, hook], "ticket": [slack, hook]}


def test_the_alert_payload_carries_the_root_cause(store: ChdbStore, receiver: Receiver) -> None:
    """The scheduler's SLO job (the real wiring): an accuracy SLO pages; PagerDuty's custom_details, the webhook's
    details and the Slack text name region=eu first, computed once when the alert fires."""
    rng = np.random.default_rng(7)
    _window(store, T0, 3000, rng, eu_acc=0.9)
    _window(store, T0 + H, 3000, rng, eu_acc=0.5, x_shift=0.8)
    run_detectors(store, "m1", T0 + 2 * H, H)
    specs = parse_specs(ACCURACY_SPEC)
    job = slo_job(lambda: specs, _notifiers(store, receiver))
    now = T0 + 2 * H
    summary = job(store, now)
    assert summary["sent"] >= 1 and summary["failed"] == 0
    (pd,) = [b for b in receiver.bodies("/pd") if b["event_action"] == "trigger"]
    rc = pd["payload"]["custom_details"]["root_cause"]
    assert rc["slices"][0]["slice"] == "region=eu" and rc["slices"][0]["source"] == "performance"
    assert rc["burn"][0]["slice"] == "region=eu" and rc["burn"][0]["kind"] == "accuracy"
    assert rc["features"][0]["feature"] == "x"
    assert rc["burn_start"] == (now - H).isoformat()          # the page-fast tier's long window
    hooks = receiver.bodies("/hook")
    assert hooks and all(a["details"]["root_cause"]["slices"][0]["slice"] == "region=eu"
                         for h in hooks for a in h["alerts"])
    text = receiver.bodies("/slack")[0]["blocks"][1]["text"]["text"]
    assert "root cause" in text and "region=eu" in text.split("slices ", 1)[1].split(",")[0]
    # the next tick, still firing, sends nothing (so no root cause is computed)
    before = len(receiver.requests)
    assert job(store, now + _dt.timedelta(minutes=1))["sent"] == 0 and len(receiver.requests) == before


def test_a_failing_root_cause_never_holds_the_alert_back(store: ChdbStore, receiver: Receiver) -> None:
    rng = np.random.default_rng(8)
    _window(store, T0 + H, 2000, rng, eu_acc=0.3)

    def broken(note: Any, status: Any) -> dict[str, Any]:
        raise RuntimeError("store unreachable")

    res = evaluate_and_notify(store, parse_specs(ACCURACY_SPEC), T0 + 2 * H, _notifiers(store, receiver),
                              annotate=broken)
    assert res.sent and not res.failed
    (pd,) = [b for b in receiver.bodies("/pd") if b["event_action"] == "trigger"]
    assert pd["payload"]["custom_details"]["root_cause"] == {"error": "RuntimeError: store unreachable"}


def test_the_route_checks_scope_and_model(store: ChdbStore) -> None:
    rng = np.random.default_rng(9)
    _window(store, T0, 3000, rng, eu_acc=0.9)
    _window(store, T0 + H, 3000, rng, eu_acc=0.5, x_shift=0.8)
    run_detectors(store, "m1", T0 + 2 * H, H)
    app = create_app(Settings(scheduler=False), store=store)
    keys = app.state.keys
    own, other = ({"X-API-Key": keys.create(scope="read", models=(m,))} for m in ("m1", "m2"))
    q: dict[str, str | float] = {"model": "m1", "start": (T0 + H).isoformat(), "end": (T0 + 2 * H).isoformat(),
                                 "burn": "accuracy", "objective": 0.9}
    with TestClient(app) as c:
        r = c.get("/v1/root-cause", params=q, headers=own)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["slices"][0]["slice"] == "region=eu" and body["burn"][0]["slice"] == "region=eu"
        assert body["features"][0]["feature"] == "x" and body["verdict"]["value"] is not None
        r = c.get("/v1/root-cause", params=q, headers=other)
        assert r.status_code == 403 and "region=eu" not in r.text
        assert c.get("/v1/root-cause", params={"model": "m1"}).status_code == 401
        assert c.get("/v1/root-cause", params={k: v for k, v in q.items() if k != "model"},
                     headers=own).status_code in (403, 422)
        # bad input names the field
        r = c.get("/v1/root-cause", params={**q, "end": T0.isoformat()}, headers=own)
        assert r.status_code == 422 and r.json()["detail"].startswith("end:")
        r = c.get("/v1/root-cause", params={**q, "burn": "latency"}, headers=own)
        assert r.status_code == 422 and r.json()["detail"].startswith("threshold_ms:")
        assert c.get("/v1/root-cause", params={**q, "objective": 1.5}, headers=own).status_code == 422
        # a model without data: empty rankings, with notes
        empty = c.get("/v1/root-cause", params={**q, "model": "m2"},
                      headers={"X-API-Key": keys.create(scope="read")}).json()
        assert empty["slices"] == [] and empty["features"] == [] and empty["burn"] == [] and empty["notes"]


def test_a_drift_verdict_slo_pages_with_the_drifted_features(store: ChdbStore, receiver: Receiver) -> None:
    """An SLO on the model-level verdict (drift SLI, subject ""): its page names the drifted feature first."""
    rng = np.random.default_rng(10)
    _window(store, T0, 3000, rng, eu_acc=0.9)
    _window(store, T0 + H, 3000, rng, eu_acc=0.9, x_shift=1.0)
    rep = run_detectors(store, "m1", T0 + 2 * H, H, config={"drift": {"drift_share": 0.3}})
    assert next(r for r in rep.results if r.test == "drift_share").status == "alert"
    specs = parse_specs("""
version: driftline/v1
slos:
  - {name: m1-dataset-drift, model: m1, objective: 99, window: 30d, sli: {drift: {detector: drift, subject: ""}}}
""")
    assert slo_job(lambda: specs, _notifiers(store, receiver))(store, T0 + 2 * H)["sent"] >= 1
    (pd,) = [b for b in receiver.bodies("/pd") if b["event_action"] == "trigger"]
    rc = pd["payload"]["custom_details"]["root_cause"]
    assert rc["features"][0]["feature"] == "x" and rc["verdict"]["status"] == "alert"
    assert rc["burn"] == [] and rc["burn_start"] is None   # a drift SLI has no per-slice events
