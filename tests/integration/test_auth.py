"""API keys: required, hashed at rest, scoped to read/write/admin and to models."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from collector.store import ChdbStore
from driftline.config import Settings
from driftline.server import create_app
from tests import factories as f
from tests.apiclient import local_client


@pytest.fixture
def app(store: ChdbStore) -> FastAPI:
    return create_app(Settings(), store=store)


def test_no_key_is_refused_and_healthz_is_open(app: FastAPI) -> None:
    with TestClient(app) as c:
        r = c.get("/v1/counts")
        assert r.status_code == 401 and "missing" in r.json()["detail"]
        assert c.post("/v1/predictions", json=[f.prediction(1)]).status_code == 401
        assert c.get("/v1/counts", headers={"X-API-Key": "dl_nope_nope"}).status_code == 401
        assert c.get("/healthz").status_code == 200
    with local_client(app) as c:  # loopback is not enough unless the operator opened it
        assert c.get("/v1/counts").status_code == 401


def test_open_localhost_only_from_loopback(store: ChdbStore) -> None:
    app = create_app(Settings(open_localhost=True), store=store)
    with local_client(app) as c:
        assert c.get("/v1/counts").status_code == 200
    with TestClient(app) as c:
        assert c.get("/v1/counts").status_code == 401


def test_scopes_models_and_revocation(app: FastAPI, store: ChdbStore) -> None:
    keys = app.state.keys
    admin = keys.create(scope="admin", name="ops")
    with TestClient(app) as c:
        h = {"X-API-Key": admin}
        writer = c.post("/v1/keys", json={"scope": "write", "name": "m1 server", "models": ["m1"]},
                        headers=h).json()["key"]
        reader = c.post("/v1/keys", json={"scope": "read"}, headers=h).json()["key"]
        assert c.post("/v1/keys", json={"scope": "root"}, headers=h).status_code == 422

        r = c.post("/v1/predictions", json=[f.prediction(1, model="m1"), f.prediction(2, model="m2")],
                   headers={"X-API-Key": writer})
        body = r.json()
        assert body["accepted"] == 1
        assert body["rejected"][0]["index"] == 1 and body["rejected"][0]["field"] == "model"
        assert "may not write model 'm2'" in body["rejected"][0]["reason"]

        assert c.post("/v1/predictions", json=[f.prediction(3)], headers={"X-API-Key": reader}).status_code == 403
        assert c.get("/v1/counts", headers={"X-API-Key": reader}).json()["prediction"] == 1
        assert c.get("/v1/keys", headers={"X-API-Key": writer}).status_code == 403
        assert c.get("/v1/predictions", params={"model": "m2"}, headers={"X-API-Key": writer}).status_code == 403
        assert c.get("/v1/predictions", params={"model": "m1"}, headers={"X-API-Key": writer}).status_code == 200
        # a model-scoped key sees listings filtered to its models, and cannot act on another model
        assert c.get("/v1/counts", headers={"X-API-Key": writer}).json()["prediction"] == 1
        assert c.post("/v1/references/window", json={"model": "m2", "name": "b", "start": "2026-01-01T00:00:00Z",
                                                    "end": "2026-01-02T00:00:00Z"},
                      headers={"X-API-Key": writer}).status_code == 403

        listed = c.get("/v1/keys", headers=h).json()
        assert len(listed) == 3 and all("key_hash" not in k for k in listed)
        wid = writer.split("_")[1]
        assert c.delete(f"/v1/keys/{wid}", headers=h).json() == {"revoked": wid}
        assert c.get("/v1/predictions", params={"model": "m1"}, headers={"X-API-Key": writer}).status_code == 401
    # hashed at rest: no secret appears in the table
    stored = store.rows("SELECT key_hash FROM {db}.api_keys")
    for k in (admin, writer, reader):
        assert all(k.split("_", 2)[2] not in r["key_hash"] for r in stored)


def test_label_coverage_and_delay(store: ChdbStore) -> None:
    app = create_app(Settings(open_localhost=True), store=store)
    with local_client(app) as c:
        preds = [f.prediction(i) for i in range(10)]
        c.post("/v1/predictions", json=preds)
        labels = [f.label(p["request_id"]) for p in preds[:4]] + [f.label("not-yet-predicted")]
        c.post("/v1/labels", json=labels)
        cov = c.get("/v1/labels/coverage", params={"model": "m1"}).json()
        assert cov["predictions"] == 10 and cov["labeled"] == 4 and cov["coverage"] == pytest.approx(0.4)
        assert cov["labels_waiting_for_prediction"] == 1
        assert cov["delay_p50_s"] is not None and cov["delay_p50_s"] >= 0
        # the early label joins when its prediction arrives
        c.post("/v1/predictions", json=[f.prediction(99, request_id="not-yet-predicted")])
        cov = c.get("/v1/labels/coverage", params={"model": "m1"}).json()
        assert cov["labeled"] == 5 and cov["labels_waiting_for_prediction"] == 0
