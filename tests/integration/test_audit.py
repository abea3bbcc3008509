"""The audit log on a real store: every listed change appears with actor, time, before and after; the API
offers no way to change or delete an entry; scoped keys see their models' entries only; secrets never in it."""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from collector import audit
from collector.authz import ROUTES
from driftline.config import Settings
from driftline.server import create_app
from slo_engine.silences import create_silence
from tests.detector_data import T0, insert_predictions

H = _dt.timedelta(hours=1)
SPEC = """version: driftline/v1
slos:
  - {name: m1-avail, model: m1, objective: 99.9, window: 30d, sli: {availability: {}}}
"""


@pytest.fixture
def app(store):  # type: ignore[no-untyped-def]
    return create_app(Settings(scheduler=False), store=store)


def _entries(store: Any) -> list[dict[str, Any]]:
    return audit.query(store, limit=10_000)


def test_every_listed_change_is_recorded_with_actor_time_before_and_after(app, store) -> None:  # type: ignore[no-untyped-def]
    root = app.state.keys.create(scope="admin", name="root")
    root_id = root.split("_")[1]
    h = {"X-API-Key": root}
    rng = np.random.default_rng(3)
    insert_predictions(store, start=T0, seconds=3000, features=[{"x": float(v)} for v in rng.normal(0, 1, 300)])
    t_start = _dt.datetime.now(_dt.UTC) - _dt.timedelta(seconds=1)
    with TestClient(app) as c:
        new_key = c.post("/v1/keys", json={"scope": "read", "models": ["m1"], "name": "reader"},
                         headers=h).json()["key"]
        new_id = new_key.split("_")[1]
        assert c.delete(f"/v1/keys/{new_id}", headers=h).status_code == 200
        sil = c.post("/v1/slo/silences", json={"matchers": {"model": "m1"}, "duration": "2h", "comment": "retrain"},
                     headers=h).json()
        assert c.delete(f"/v1/slo/silences/{sil['id']}", headers=h).status_code == 200
        r = c.post("/v1/references/window", json={"model": "m1", "name": "base", "start": T0.isoformat(),
                                                  "end": (T0 + H).isoformat()}, headers=h)
        assert r.status_code == 200, r.text
        r = c.post("/v1/detectors/run", json={"model": "m1", "window_end": (T0 + H).isoformat(), "reference": "base",
                                             "config": {"drift": {"tests": {"psi": 0.3}}}}, headers=h)
        assert r.status_code == 200, r.text
        assert c.put("/v1/retention", json={"table": "labels", "days": 30}, headers=h).status_code == 200
        got = c.get("/v1/audit", headers=h).json()
    by_action: dict[str, list[dict[str, Any]]] = {}
    for e in got:
        by_action.setdefault(e["action"], []).append(e)
    want = {"key.create", "key.revoke", "silence.create", "silence.expire", "reference.save", "detectors.config",
            "retention.set"}
    assert want <= set(by_action), sorted(by_action)
    for action in want:
        (e,) = [x for x in by_action[action] if x["actor"] == f"key:{root_id}"]
        t = _dt.datetime.fromisoformat(e["ts"])
        assert t_start <= t <= _dt.datetime.now(_dt.UTC) + _dt.timedelta(seconds=1)
        assert e["after"] is not None and e["target"]
    assert by_action["key.revoke"][0]["before"]["revoked"] is False
    assert by_action["key.revoke"][0]["after"]["revoked"] is True
    assert by_action["key.revoke"][0]["target"] == new_id and by_action["key.revoke"][0]["model"] == "m1"
    exp = by_action["silence.expire"][0]
    assert exp["target"] == sil["id"] and exp["model"] == "m1"
    assert _dt.datetime.fromisoformat(exp["after"]["ends_at"]) < _dt.datetime.fromisoformat(exp["before"]["ends_at"])
    assert by_action["reference.save"][0]["target"] == "m1/base" and by_action["reference.save"][0]["after"]["rows"] > 0
    assert by_action["detectors.config"][0]["after"]["config"] == {"drift": {"tests": {"psi": 0.3}}}
    assert by_action["retention.set"][0]["before"] == {"days": 180}
    assert by_action["retention.set"][0]["after"] == {"days": 30}
    # no secret of a key: neither the key, its secret nor its hash is anywhere in the log
    raw = json.dumps(_entries(store))
    for k in (root, new_key):
        secret = k.split("_", 2)[2]
        assert secret not in raw and hashlib.sha256(secret.encode()).hexdigest() not in raw


def test_the_api_offers_no_way_to_change_or_delete_an_entry(app, store) -> None:  # type: ignore[no-untyped-def]
    root = {"X-API-Key": app.state.keys.create(scope="admin")}
    entry = audit.record(store, actor="cli:tester", action="retention.set", target="labels", after={"days": 1})
    audit_routes = {k for k in ROUTES if "audit" in k[1]}
    assert audit_routes == {("GET", "/v1/audit")}
    with TestClient(app) as c:
        for method in ("POST", "PUT", "PATCH", "DELETE"):
            for path in ("/v1/audit", f"/v1/audit/{entry}"):
                r = c.request(method, path, headers=root, json={"id": entry, "after": None})
                assert r.status_code in (404, 405), (method, path, r.status_code)
        paths = c.get("/openapi.json").json()["paths"]
    assert {m for p, ops in paths.items() if "audit" in p for m in ops} == {"get"}
    (e,) = [x for x in _entries(store) if x["id"] == entry]
    assert e["after"] == {"days": 1} and e["actor"] == "cli:tester"


def test_scoped_keys_see_their_models_entries_and_read_keys_none(app, store) -> None:  # type: ignore[no-untyped-def]
    k = app.state.keys
    root = {"X-API-Key": k.create(scope="admin")}
    admin_a = {"X-API-Key": k.create(scope="admin", models=("alpha",))}
    reader = {"X-API-Key": k.create(scope="read")}
    now = _dt.datetime.now(_dt.UTC)
    create_silence(store, {"model": "alpha"}, now=now, duration_s=60, actor="cli:a")
    create_silence(store, {"model": "bravo"}, now=now, duration_s=60, actor="cli:b")
    with TestClient(app) as c:
        assert c.get("/v1/audit", headers=reader).status_code == 403
        mine = c.get("/v1/audit", headers=admin_a).json()
        assert mine and {e["model"] for e in mine} == {"alpha"} and "bravo" not in json.dumps(mine)
        assert c.get("/v1/audit", params={"model": "bravo"}, headers=admin_a).status_code == 403
        every = c.get("/v1/audit", params={"action": "silence."}, headers=root).json()
        assert {e["model"] for e in every} == {"alpha", "bravo"}
        only_b = c.get("/v1/audit", params={"actor": "cli:b"}, headers=root).json()
        assert [e["model"] for e in only_b] == ["bravo"]
        later = c.get("/v1/audit", params={"since": (now + H).isoformat()}, headers=root).json()
        assert later == []
        bad = c.get("/v1/audit", params={"since": "1000-01-01T00:00:00"}, headers=root)
        assert bad.status_code == 422


def test_slo_specs_and_detector_settings_read_at_start_are_audited_when_they_change(store, tmp_path) -> None:  # type: ignore[no-untyped-def]
    spec = tmp_path / "slos.yaml"
    spec.write_text(SPEC)
    create_app(Settings(scheduler=False, slo_files=str(spec)), store=store)
    create_app(Settings(scheduler=False, slo_files=str(spec)), store=store)  # the same: nothing new
    spec.write_text(SPEC.replace("99.9", "99.5"))
    create_app(Settings(scheduler=False, slo_files=str(spec), detector_window_s=1800.0), store=store)
    specs = [e for e in _entries(store) if e["action"] == "slo.specs"]
    assert len(specs) == 2 and all(e["actor"].startswith("cli:") for e in specs)
    newest = specs[0]
    assert newest["before"]["specs"][0]["objective"] == pytest.approx(0.999)
    assert newest["after"]["specs"][0]["objective"] == pytest.approx(0.995)
    det = [e for e in _entries(store) if e["action"] == "detectors.settings"]
    assert len(det) == 2 and det[0]["before"]["window_s"] == 3600.0 and det[0]["after"]["window_s"] == 1800.0


def test_notifier_settings_and_cost_models_read_at_start_are_audited_without_their_secrets(store) -> None:  # type: ignore[no-untyped-def]
    hook = "https://hooks.example.com/services/T000/B000/XXXXsecretpath"
    base = Settings(scheduler=False, slack_webhook_url=hook, webhook_url="https://pager.internal/hook",
                    webhook_secret="hunter2", pagerduty_routing_key="R" * 32)
    create_app(base, store=store)
    create_app(base, store=store)                                               # the same: nothing new
    rotated = dataclasses.replace(base, webhook_secret="hunter3")               # a rotated signing secret
    create_app(rotated, store=store)
    create_app(dataclasses.replace(rotated, cost_models='{"m1": {"kind": "per_request", "usd_per_request": 0.001}}'),
               store=store)
    notif = [e for e in _entries(store) if e["action"] == "notifiers.settings"]
    assert len(notif) == 2, notif
    newest = notif[0]
    assert newest["after"]["slack"]["host"] == "hooks.example.com" and newest["after"]["webhook"]["signed"] is True
    assert newest["before"]["webhook"]["signing_fingerprint"] != newest["after"]["webhook"]["signing_fingerprint"]
    assert newest["before"]["slack"] == newest["after"]["slack"]
    text = json.dumps(notif)
    for secret in ("XXXXsecretpath", "hunter2", "hunter3", "R" * 32, "/services/"):
        assert secret not in text
    cost = [e for e in _entries(store) if e["action"] == "cost.models"]
    assert cost[0]["after"] == {"m1": {**cost[0]["after"]["m1"], "kind": "per_request", "usd_per_request": 0.001}}


def test_scrub_removes_secrets_wherever_they_are() -> None:
    doc = {"webhook_secret": "s3cr3t", "key_hash": "ab" * 32, "nested": [{"password": "pw", "name": "ok"}],
           "note": "rotated dl_0123abcd_SECRETpart-xyz today", "slack_webhook_url": "https://hooks/x/y",
           "key_id": "0123abcd", "empty_token": ""}
    out = audit.scrub(doc)
    text = json.dumps(out)
    for s in ("s3cr3t", "ab" * 32, "pw", "SECRETpart", "hooks/x/y"):
        assert s not in text
    assert out["key_id"] == "0123abcd" and out["nested"][0]["name"] == "ok"
    assert "dl_0123abcd_" in out["note"]
