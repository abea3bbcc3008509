"""Authorization as one table (collector.authz.ROUTES): every route is in it, and two tenants (keys for
different models) never see or change each other's data. Regression tests for issue 11 findings 2, 3, 4."""

from __future__ import annotations

import datetime as _dt
import re
from typing import Any

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from collector.auth import SCOPES
from collector.authz import LISTED, PUBLIC, ROUTES
from collector.store import ChdbStore
from driftline.config import Settings
from driftline.server import create_app
from slo_engine.spec import parse_specs
from tests import factories as f
from tests.detector_data import insert_predictions

A, B = "alpha", "bravo"  # no route answers with the word "bravo" unless it shows model B's data
SPEC = f"""version: driftline/v1
slos:
  - {{name: alpha-avail, model: {A}, objective: 99.9, window: 30d, sli: {{availability: {{}}}}}}
  - {{name: bravo-avail, model: {B}, objective: 99.9, window: 30d, sli: {{availability: {{}}}}}}
"""
H = _dt.timedelta(hours=1)


@pytest.fixture
def app(store: ChdbStore) -> FastAPI:
    app = create_app(Settings(scheduler=False), store=store)
    app.state.slo_specs = parse_specs(SPEC)
    return app


def test_every_route_of_the_app_is_in_the_table(app: FastAPI) -> None:
    paths = TestClient(app).get("/openapi.json").json()["paths"]
    routes = {(m.upper(), p) for p, ops in paths.items() for m in ops}
    assert len(routes) >= 38
    shown = {k: (k[0], re.sub(r":\w+}", "}", k[1])) for k in ROUTES}    # OpenAPI drops {x:path}'s converter
    missing = sorted(routes - set(shown.values()))
    assert not missing, f"routes without an authorization rule in collector.authz.ROUTES: {missing}"
    stale = sorted(k for k, r in ROUTES.items() if r.models != PUBLIC and shown[k] not in routes)
    assert not stale, f"rules for routes the app does not have: {stale}"
    # every route the app serves, with or without a schema, has a rule
    from fastapi.routing import APIRoute

    def walk(rs: Any) -> Any:
        for r in rs:
            if hasattr(r, "effective_route_contexts"):
                for ctx in r.effective_route_contexts():
                    yield ctx.path_format, getattr(ctx.original_route, "methods", set())
            elif isinstance(r, APIRoute) or hasattr(r, "methods"):
                yield r.path, r.methods or set()

    served = {(m, p) for p, ms in walk(app.router.routes) for m in ms if m != "HEAD"}
    assert served and not sorted(served - set(shown.values()))


def test_a_path_missing_from_the_table_is_never_reached(store: ChdbStore) -> None:
    app = create_app(Settings(scheduler=False), store=store)
    admin = app.state.keys.create(scope="admin")

    @app.get("/v1/secret-listing")
    def secret() -> dict[str, str]:
        return {"secret": "bravo data"}

    with TestClient(app) as c:
        r = c.get("/v1/secret-listing", headers={"X-API-Key": admin})
        assert r.status_code == 404 and "bravo" not in r.text
        assert c.delete("/v1/counts", headers={"X-API-Key": admin}).status_code == 405


def _keys(app: FastAPI) -> dict[str, dict[str, str]]:
    k = app.state.keys
    return {name: {"X-API-Key": k.create(scope=scope, name=name, models=models)} for name, scope, models in (
        ("root", "admin", ()), ("admin_a", "admin", (A,)), ("admin_b", "admin", (B,)),
        ("write_a", "write", (A,)), ("read_a", "read", (A,)))}


def test_finding_2_a_scoped_admin_cannot_manage_keys(app: FastAPI) -> None:
    keys = _keys(app)
    with TestClient(app) as c:
        admin_b_id = keys["admin_b"]["X-API-Key"].split("_")[1]
        for body in ({"scope": "admin"}, {"scope": "admin", "models": [A]}, {"scope": "read", "models": [A]}):
            r = c.post("/v1/keys", json=body, headers=keys["admin_a"])
            assert r.status_code == 403 and "key" not in r.json()
        r = c.get("/v1/keys", headers=keys["admin_a"])
        assert r.status_code == 403 and admin_b_id not in r.text and "bravo" not in r.text
        r = c.delete(f"/v1/keys/{admin_b_id}", headers=keys["admin_a"])
        assert r.status_code == 403
        # B's admin key still works; A's own data stays reachable to A's admin
        assert c.get("/v1/counts", headers=keys["admin_b"]).status_code == 200
        assert c.get("/v1/counts", headers=keys["admin_a"]).status_code == 200
        # the unscoped admin manages every key
        assert len(c.get("/v1/keys", headers=keys["root"]).json()) == 5
        assert c.post("/v1/keys", json={"scope": "read", "models": [B]}, headers=keys["root"]).status_code == 200
        assert c.delete(f"/v1/keys/{admin_b_id}", headers=keys["root"]).json() == {"revoked": admin_b_id}
        assert c.get("/v1/counts", headers=keys["admin_b"]).status_code == 401


def test_finding_3_the_model_in_a_body_is_checked(app: FastAPI, store: ChdbStore) -> None:
    from tests.detector_data import T0

    keys = _keys(app)
    rng = np.random.default_rng(1)
    for m in (A, B):
        insert_predictions(store, start=T0, seconds=3000, model=m,
                           features=[{"x": float(v), "plan": "a"} for v in rng.normal(0, 1, 200)])
    window = {"name": "baseline", "start": T0.isoformat(), "end": (T0 + H).isoformat()}
    with TestClient(app) as c:
        root, wa = keys["root"], keys["write_a"]
        assert c.post("/v1/references/window", json={"model": B, **window}, headers=root).json()["rows"] == 200
        before = c.get("/v1/references", params={"model": B}, headers=root).json()
        # B's baseline cannot be overwritten by A's key, and stays as it was
        later = {**window, "start": (T0 + H / 2).isoformat()}
        r = c.post("/v1/references/window", json={"model": B, **later}, headers=wa)
        assert r.status_code == 403 and "bravo" in r.json()["detail"]
        assert c.get("/v1/references", params={"model": B}, headers=root).json() == before
        assert c.post("/v1/references/window", json={"model": A, **window}, headers=wa).json()["rows"] == 200
        # detectors for B are refused, for A they run
        run = {"window_end": (T0 + H).isoformat(), "window_s": 3600, "reference": "baseline"}
        r = c.post("/v1/detectors/run", json={"model": B, **run}, headers=wa)
        assert r.status_code == 403 and "results" not in r.json()
        assert c.post("/v1/detectors/run", json=run, headers=wa).status_code == 403  # no model: refused
        r = c.post("/v1/detectors/run", json={"model": A, **run}, headers=wa)
        assert r.status_code == 200 and r.json()["model"] == A
        # an upload names its model in the query
        r = c.post("/v1/references/upload", params={"model": B, "name": "baseline"},
                   files={"file": ("b.csv", b"x\n1\n2\n")}, headers=wa)
        assert r.status_code == 403
        # silences: for A only; none without a model or for B
        for matchers in ({"model": B}, {"severity": "page"}, {"slo": "bravo-avail"}, {"model": B, "severity": "page"}):
            r = c.post("/v1/slo/silences", json={"matchers": matchers, "duration": "1h"}, headers=wa)
            assert r.status_code == 403, matchers
        r = c.post("/v1/slo/silences", json={"matchers": {"model": A}, "duration": "1h"}, headers=wa)
        assert r.status_code == 201
        own = r.json()["id"]
        b_silence = c.post("/v1/slo/silences", json={"matchers": {"model": B}, "duration": "1h"},
                           headers=root).json()["id"]
        global_silence = c.post("/v1/slo/silences", json={"matchers": {"severity": "page"}, "duration": "1h"},
                                headers=root).json()["id"]
        assert c.delete(f"/v1/slo/silences/{b_silence}", headers=wa).status_code == 403
        assert c.delete(f"/v1/slo/silences/{global_silence}", headers=wa).status_code == 403
        assert c.delete("/v1/slo/silences/nope", headers=wa).status_code == 404
        assert c.delete(f"/v1/slo/silences/{own}", headers=wa).status_code == 200
        active = {s["id"] for s in c.get("/v1/slo/silences", headers=root).json()}
        assert active == {b_silence, global_silence}
        # ingest: B's events from A's key are refused by index, and leave no dead letter in B's view
        bad_b, bad_a = (f.prediction(1, model=m, event_id=f"{m}-invalid") for m in (B, A))
        bad_b["latency_ms"] = bad_a["latency_ms"] = "slow"
        r = c.post("/v1/predictions", json=[f.prediction(0, model=B), bad_b, bad_a], headers=wa)
        assert r.json()["accepted"] == 0 and [e["index"] for e in r.json()["rejected"]] == [0, 1, 2]
        assert [d["event_id"] for d in c.get("/v1/dead-letters", headers=root).json()] == [f"{A}-invalid"]


def _seed_two_tenants(app: FastAPI, store: ChdbStore, root: dict[str, str]) -> None:
    from tests.detector_data import T0

    rng = np.random.default_rng(2)
    with TestClient(app) as c:
        for m in (A, B):
            assert c.post("/v1/predictions", json=[f.prediction(i, model=m) for i in range(5)],
                          headers=root).json()["accepted"] == 5
            bad = f.prediction(9, model=m, event_id=f"{m}-bad-event")
            bad["latency_ms"] = "slow"
            c.post("/v1/predictions", json=[bad, f.prediction(10, model=m)], headers=root)
            c.post("/v1/metric-windows", json=[f.metric_window(model=m)], headers=root)
            c.post("/v1/deploys", json=[f.deploy(model=m)], headers=root)
            insert_predictions(store, start=T0, seconds=3000, model=m,
                               features=[{"x": float(v)} for v in rng.normal(0, 1, 100)])
            c.post("/v1/references/window", json={"model": m, "name": f"{m}-ref", "start": T0.isoformat(),
                                                  "end": (T0 + H).isoformat()}, headers=root)
            r = c.post("/v1/detectors/run", json={"model": m, "window_end": (T0 + H).isoformat(), "window_s": 3600,
                                                  "reference": f"{m}-ref"}, headers=root)
            assert r.status_code == 200, r.text
            c.post("/v1/slo/silences", json={"matchers": {"model": m}, "duration": "1h", "comment": f"{m} retrain"},
                   headers=root)
    now = f.now()
    for m in (A, B):
        key = f"{m}-avail|page"
        store.execute(
            "INSERT INTO {db}.slo_alert_state (alert_key, slo, model, model_version, tier, severity, state, since, "
            "last_true, last_notified, notified, updated_at) VALUES (%(k)s, %(slo)s, %(m)s, 'v1', 'page-fast', 'page', "
            "'firing', %(t)s, %(t)s, %(t)s, 1, %(t)s)", {"k": key, "slo": f"{m}-avail", "m": m, "t": now})
        store.execute(
            "INSERT INTO {db}.slo_deliveries (ts, notifier, target, dedup_key, action, attempt, status_code, outcome, "
            "error) VALUES (%(t)s, 'webhook', 'https://hooks.example', %(k)s, 'trigger', 1, 200, 'delivered', '')",
            {"k": key, "t": now})


def test_finding_4_listings_show_only_the_keys_models(app: FastAPI, store: ChdbStore) -> None:
    keys = _keys(app)
    _seed_two_tenants(app, store, keys["root"])
    listed = sorted(p for (m, p), r in ROUTES.items() if m == "GET" and r.models == LISTED)
    assert len(listed) >= 12
    params = {"/v1/slo/silences": {"include_expired": True}}
    with TestClient(app) as c:
        for path in listed:
            full = c.get(path, params=params.get(path, {}), headers=keys["root"])
            assert full.status_code == 200, (path, full.text)
            assert path == "/v1/counts" or (B in full.text and A in full.text), \
                f"{path}: the seeded data of both models should show: {full.text[:300]}"
            for who in ("read_a", "write_a", "admin_a"):
                mine = c.get(path, params=params.get(path, {}), headers=keys[who])
                if SCOPES.index(who.split("_")[0]) < SCOPES.index(ROUTES[("GET", path)].scope):  # the audit log
                    assert mine.status_code == 403 and B not in mine.text, (path, who, mine.text)
                    continue
                assert mine.status_code == 200, (path, who, mine.text)
                assert B not in mine.text, f"{path} shows model {B}'s data to a key for {A}: {mine.text[:500]}"
            # naming the other model is refused, naming its own is allowed
            assert c.get(path, params={"model": B}, headers=keys["read_a"]).status_code in (403, 422)
        ra = keys["read_a"]
        counts_a, counts_all = (c.get("/v1/counts", headers=h).json() for h in (ra, keys["root"]))
        assert counts_a["prediction"] * 2 == counts_all["prediction"] and counts_a["dead_letter"] == 1
        assert counts_all["dead_letter"] == 2
        assert [d["event_id"] for d in c.get("/v1/dead-letters", headers=ra).json()] == [f"{A}-bad-event"]
        assert [m["model"] for m in c.get("/v1/models", headers=ra).json()] == [A]
        assert [m["model"] for m in c.get("/v1/ops/models", headers=ra).json()] == [A]
        assert {r["model"] for r in c.get("/v1/detectors/results", headers=ra).json()} == {A}
        assert [s["slo"] for s in c.get("/v1/slo/status", headers=ra).json()] == ["alpha-avail"]
        assert c.get("/v1/slo/status", params={"slo": "bravo-avail"}, headers=ra).status_code == 404
        assert [d["dedup_key"] for d in c.get("/v1/slo/deliveries", headers=ra).json()] == [f"{A}-avail|page"]
        # routes of one model: A's key reads A, never B (any repeated ?model= must be allowed too)
        for path in ("/v1/predictions", "/v1/ops/summary", "/v1/ops/deploys", "/v1/labels/coverage"):
            assert c.get(path, params={"model": B}, headers=ra).status_code == 403
            assert c.get(f"{path}?model={A}&model={B}", headers=ra).status_code == 403
            r = c.get(path, params={"model": A}, headers=ra)
            assert r.status_code == 200 and B not in r.text
        assert c.get("/v1/predictions", headers=ra).status_code == 403  # a scoped key names its model


def test_a_scoped_key_with_unreadable_bodies_gets_4xx(app: FastAPI) -> None:
    keys = _keys(app)
    with TestClient(app) as c:
        for body in (b"[" * 100_000, b"{" * 5000, b"\xff\xfe", b"null", b'{"model": ["alpha"]}', b'"alpha"'):
            for path in ("/v1/detectors/run", "/v1/references/window", "/v1/slo/silences"):
                r = c.post(path, content=body, headers={**keys["write_a"], "Content-Type": "application/json"})
                assert 400 <= r.status_code < 500, (path, body[:20], r.status_code, r.text[:200])


def test_cbpe_routes_check_scope_and_model(app: FastAPI, store: ChdbStore) -> None:
    from tests.detector_data import T0, insert_labels

    keys = _keys(app)
    rng = np.random.default_rng(2)
    for m in (A, B):
        s = rng.beta(2, 2, 300)
        rids = insert_predictions(store, start=T0, seconds=3000, model=m, features=[{"x": 1.0}] * 300,
                                  preds=[{"score": float(v), "label": "1" if v >= 0.5 else "0"} for v in s])
        insert_labels(store, rids, model=m, classes=["1" if v else "0" for v in rng.random(300) < s])
    window = {"start": T0.isoformat(), "end": (T0 + H).isoformat()}
    with TestClient(app) as c:
        r = c.post("/v1/cbpe/calibration", json={"model": B, **window}, headers=keys["write_a"])
        assert r.status_code == 403 and "calibrated" not in r.text
        assert c.post("/v1/cbpe/calibration", json={"model": A, **window}, headers=keys["read_a"]).status_code == 403
        r = c.post("/v1/cbpe/calibration", json={"model": A, **window}, headers=keys["write_a"])
        assert r.status_code == 200 and r.json()["kind"] == "binary" and r.json()["rows"] == 300
        run = {"window_end": (T0 + H).isoformat(), "window_s": 3600}
        assert c.post("/v1/detectors/run", json={"model": A, **run}, headers=keys["write_a"]).status_code == 200
        assert c.post("/v1/detectors/run", json={"model": B, **run}, headers=keys["root"]).status_code == 200
        r = c.get("/v1/performance/estimated", params={"model": B}, headers=keys["read_a"])
        assert r.status_code == 403 and "estimate" not in r.text
        r = c.get("/v1/performance/estimated", params={"model": A}, headers=keys["read_a"])
        (w,) = r.json()
        assert w["realized"] is not None and w["label_coverage"] == 1.0 and w["low"] <= w["estimate"] <= w["high"]
        # B has no calibration: its run gave no estimate
        assert c.get("/v1/performance/estimated", params={"model": B}, headers=keys["root"]).json() == []
        assert c.get("/v1/performance/estimated", params={"model": A, "test": "auc"},
                     headers=keys["read_a"]).status_code == 422
