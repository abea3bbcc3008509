"""Version drift on a real store: a stale replica raises after the grace period (not before), routed through the
alert router to a real webhook receiver, and resolves when it stops; a clean rollout raises nothing."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterator

import pytest

from collector.writer import EventWriter
from detectors.version import expected_versions, version_findings
from driftline.scheduler import VERSION_ALERT, version_job
from serving_shim.contract import DeployEvent
from slo_engine.delivery import HttpSender, RetryPolicy, UrlPolicy
from slo_engine.engine import load_alert_states
from slo_engine.notifiers import WebhookNotifier
from slo_engine.silences import create_silence
from tests.slo_data import T0, Receiver, minutes

M = _dt.timedelta(minutes=1)
T1 = T0 + 30 * M   # v2 deployed


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def _deploy(store, version: str, at: _dt.datetime, **annotations: str) -> None:  # type: ignore[no-untyped-def]
    EventWriter(store).write("deploy", [DeployEvent(schema_version=1, event_id=f"d-{version}-{at.isoformat()}",
                                                    model="m1", model_version=version, ts=at,
                                                    annotations=annotations)])


def _routes(receiver: Receiver):  # type: ignore[no-untyped-def]
    sender = HttpSender(policy=UrlPolicy.allowing("127.0.0.1"), retry=RetryPolicy(base_s=0.001))
    hook = WebhookNotifier(url=receiver.url + "/hook", secret="s3cret", sender=sender)
    return {"page": [hook], "ticket": [hook]}


def _history(store, receiver, job, at_minutes):  # type: ignore[no-untyped-def]
    """(minute after the v2 deploy, action, version) of every notification sent, and the states at the end."""
    out = []
    for m in at_minutes:
        before = len(receiver.bodies("/hook"))
        job(store, T1 + m * M)
        for body in receiver.bodies("/hook")[before:]:
            out += [(m, a["action"], a["model_version"]) for a in body["alerts"]]
    return out


def test_stale_replica_raises_after_grace_and_resolves(store, receiver) -> None:  # type: ignore[no-untyped-def]
    _deploy(store, "v1", T0)
    minutes(store, T0, 30, lambda i: 0.0, version="v1", replicas=2)          # both replicas on v1
    _deploy(store, "v2", T1)
    minutes(store, T1, 40, lambda i: 0.0, version="v2", replicas=1)          # one replica moved to v2
    minutes(store, T1, 20, lambda i: 0.0, version="v1", replicas=1)          # the other stayed on v1 for 20 min
    (exp,) = expected_versions(store, T1 + 5 * M)
    assert (exp.version, exp.since, exp.allowed) == ("v2", T1, ("v2",))

    job = version_job(_routes(receiver), grace_s=600, recent_s=120)
    events = _history(store, receiver, job, [1, 5, 9, 10, 11, 15, 19, 23, 24, 30])
    # not before the grace period (10 min after the deploy), then once (no repeat within 4 h), resolved once
    # the stale replica's last window (ending at minute 20) is older than recent_s
    assert events == [(10, "trigger", "v1"), (23, "resolve", "v1")]
    st = load_alert_states(store)
    (key,) = st
    assert st[key].slo == VERSION_ALERT and st[key].model_version == "v1" and st[key].state == "resolved"
    sent = receiver.bodies("/hook")[0]["alerts"][0]
    assert sent["details"]["expected"] == "v2" and sent["details"]["requests"] > 0
    assert "expected v2" in sent["summary"] and "serves v1" in sent["summary"]


def test_clean_rollout_and_canary_raise_nothing(store, receiver) -> None:  # type: ignore[no-untyped-def]
    _deploy(store, "v1", T0)
    minutes(store, T0, 30, lambda i: 0.0, version="v1", replicas=2)
    _deploy(store, "v2", T1)
    minutes(store, T1 + 3 * M, 40, lambda i: 0.0, version="v2", replicas=2)
    minutes(store, T1, 3, lambda i: 0.0, version="v1", replicas=2)           # rolled over within 3 minutes
    _deploy(store, "v3", T1 + 5 * M, role="canary")                          # a canary beside v2
    minutes(store, T1 + 5 * M, 30, lambda i: 0.0, version="v3", replicas=1)
    job = version_job(_routes(receiver), grace_s=600, recent_s=120)
    assert _history(store, receiver, job, [2, 11, 20, 30]) == []
    found = {f.version: f for f in version_findings(store, T1 + 20 * M, grace_s=600, recent_s=120)}
    assert set(found) == {"v1", "v2", "v3"} and not any(f.drifting for f in found.values())
    assert found["v3"].allowed and not found["v1"].allowed
    # a new ordinary deploy ends the canary's allowance: v3 still serving 10 min after it drifts
    _deploy(store, "v4", T1 + 20 * M)
    minutes(store, T1 + 20 * M, 15, lambda i: 0.0, version="v4", replicas=2)
    found = {f.version: f for f in version_findings(store, T1 + 31 * M, grace_s=600, recent_s=120)}
    assert found["v3"].drifting and not found["v4"].drifting


def test_silenced_version_alert_holds_the_trigger(store, receiver) -> None:  # type: ignore[no-untyped-def]
    _deploy(store, "v1", T0)
    _deploy(store, "v2", T1)
    minutes(store, T1, 40, lambda i: 0.0, version="v1", replicas=1)
    create_silence(store, {"slo": VERSION_ALERT, "model": "m1"}, now=T1, duration_s=15 * 60)
    job = version_job(_routes(receiver), grace_s=600, recent_s=120)
    # firing from minute 10 but silenced until minute 15: the trigger goes out when the silence ends
    assert _history(store, receiver, job, [10, 12, 16]) == [(16, "trigger", "v1")]


def _predictions(store, version: str, env: str, start: _dt.datetime, n: int) -> None:  # type: ignore[no-untyped-def]
    from serving_shim.contract import Prediction, PredictionEvent

    EventWriter(store).write("prediction", [PredictionEvent(
        schema_version=1, event_id=f"p-{version}-{env}-{i}", ts=start + i * M, model="m1", model_version=version,
        request_id=f"r-{version}-{env}-{i}", features={"x": 1.0}, prediction=Prediction(score=0.5),
        slices={"environment": env}) for i in range(n)])


def test_environments_have_their_own_expected_version(store) -> None:  # type: ignore[no-untyped-def]
    # predictions are kept 90 days (TTL): recent times
    t0 = _dt.datetime.now(_dt.UTC).replace(second=0, microsecond=0) - 60 * M
    _deploy(store, "v2", t0, environment="prod")
    _deploy(store, "v3", t0, environment="staging")
    _predictions(store, "v2", "prod", t0, 30)
    _predictions(store, "v3", "staging", t0, 30)
    _predictions(store, "v3", "prod", t0 + 5 * M, 25)     # v3 leaked into prod
    found = {(f.environment, f.version): f for f in version_findings(store, t0 + 29 * M, grace_s=600, recent_s=120)}
    assert set(found) == {("prod", "v2"), ("prod", "v3"), ("staging", "v3")}
    assert found[("prod", "v3")].drifting and found[("prod", "v3")].expected == "v2"
    assert not found[("staging", "v3")].drifting and not found[("prod", "v2")].drifting


def test_deploy_cli_through_the_api_sets_the_expected_version(store, capsys) -> None:  # type: ignore[no-untyped-def]
    from driftline.cli import main
    from driftline.config import Settings
    from driftline.server import create_app
    from tests import factories as f
    from tests.servers import running

    app = create_app(Settings(open_localhost=True, scheduler=False), store=store)
    with running(app, log_level="warning") as url:
        assert main(["deploy", "m1", "v1", "--api", url, "--environment", "prod", "-a", "commit=abc"]) == 0
        assert main(["deploy", "m1", "v2", "--api", url, "--environment", "prod", "--role", "canary"]) == 0
        assert main(["deploy", "m1", "bad version!", "--api", url]) == 1   # refused, naming the field
        assert "model_version" in capsys.readouterr().err
        import httpx

        httpx.post(url + "/v1/metric-windows", json=[f.metric_window(version="v2")]).raise_for_status()
        (row,) = httpx.get(url + "/v1/deploys", params={"model": "m1"}).json()
    assert (row["environment"], row["expected"], row["allowed"]) == ("prod", "v1", ["v1", "v2"])
    assert not row["drifting"]
    (d,) = store.rows("SELECT annotations FROM {db}.deploys FINAL WHERE model_version = 'v1'")
    assert d["annotations"]["commit"] == "abc" and d["annotations"]["by"].startswith("cli:")


def test_sdk_start_up_deploys_do_not_override_an_explicit_deploy(store) -> None:  # type: ignore[no-untyped-def]
    from serving_shim import InMemorySink, Monitor

    sink = InMemorySink()
    mon = Monitor(model="m1", version="v1", sink=sink, deploy_on_start=True)
    mon.flush(5)
    (ev,) = sink.events("deploy")
    mon.shutdown(5)
    assert (ev.model, ev.model_version, dict(ev.annotations)) == ("m1", "v1", {"source": "sdk"})
    # the SDK's announcements alone set the expected version ...
    sdk = ev.model_copy(update={"ts": T0, "event_id": "sdk-1"})
    EventWriter(store).write("deploy", [sdk])
    (exp,) = expected_versions(store, T0 + M)
    assert (exp.version, exp.since) == ("v1", T0)
    # ... until a deploy from the CLI or the API; a stale replica restarting later (announcing v1) does not undo it
    _deploy(store, "v2", T1)
    EventWriter(store).write("deploy", [ev.model_copy(update={"ts": T1 + 5 * M, "event_id": "sdk-2"})])
    minutes(store, T1, 20, lambda i: 0.0, version="v1", replicas=1)
    (exp,) = expected_versions(store, T1 + 15 * M)
    assert (exp.version, exp.since) == ("v2", T1)
    (f,) = version_findings(store, T1 + 15 * M, grace_s=600, recent_s=120)
    assert f.version == "v1" and f.drifting
