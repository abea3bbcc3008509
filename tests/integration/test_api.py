"""The ingest and query API on the real store (embedded mode)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from collector.store import ChdbStore
from driftline.config import Settings
from driftline.server import create_app
from tests import factories as f
from tests.apiclient import local_client


@pytest.fixture
def client(store: ChdbStore) -> Iterator[TestClient]:
    app = create_app(Settings(open_localhost=True), store=store)
    with local_client(app) as c:
        yield c


def test_good_and_bad_events_in_one_post(client: TestClient, store: ChdbStore) -> None:
    batch = [f.prediction(i) for i in range(6)]
    batch[2]["latency_ms"] = "slow"
    batch[4].pop("model")
    batch[5]["schema_version"] = 3
    r = client.post("/v1/predictions", json=batch)
    assert r.status_code == 200
    body = r.json()
    assert body["accepted"] == 3
    assert [(e["index"], e["field"]) for e in body["rejected"]] == [(2, "latency_ms"), (4, "model"),
                                                                    (5, "schema_version")]
    assert "unsupported schema_version 3" in body["rejected"][2]["reason"]
    assert client.get("/v1/counts").json()["prediction"] == 3
    dl = client.get("/v1/dead-letters").json()
    assert {d["field"] for d in dl} == {"latency_ms", "model", "schema_version"}
    # dead letters keep the original bytes, but the API listing does not echo payloads
    assert all("payload" not in d for d in dl)


def test_ndjson_and_envelope_and_all_kinds(client: TestClient) -> None:
    preds = [f.prediction(i) for i in range(3)]
    r = client.post("/v1/predictions", content="\n".join(json.dumps(p) for p in preds),
                    headers={"Content-Type": "application/x-ndjson"})
    assert r.json() == {"accepted": 3, "rejected": []}
    r = client.post("/v1/labels",
                    json={"schema_version": 1, "kind": "label", "events": [f.label(preds[0]["request_id"])]})
    assert r.json()["accepted"] == 1
    assert client.post("/v1/metric-windows", json=[f.metric_window()]).json()["accepted"] == 1
    assert client.post("/v1/deploys", json=[f.deploy()]).json()["accepted"] == 1
    # re-posting the same predictions is idempotent
    client.post("/v1/predictions", json=preds)
    assert client.get("/v1/counts").json() == {"prediction": 3, "label": 1, "metric_window": 1, "deploy": 1,
                                               "dead_letter": 0}
    rows = client.get("/v1/predictions", params={"model": "m1"}).json()
    joined = {r["request_id"]: r for r in rows}
    assert joined[preds[0]["request_id"]]["label_class"] == "yes"
    assert joined[preds[1]["request_id"]]["label_class"] is None
    models = client.get("/v1/models").json()
    assert models[0]["model"] == "m1" and models[0]["predictions"] == 3


def test_unreadable_oversize_and_all_rejected(client: TestClient) -> None:
    r = client.post("/v1/predictions", content=b"{oops", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "not valid JSON" in r.json()["detail"]
    r = client.post("/v1/predictions", json={"schema_version": 1, "kind": "label", "events": []})
    assert r.status_code == 400 and "kind" in r.json()["detail"]
    good = f.prediction(1)
    body = json.dumps([good]).encode().replace(good["request_id"].encode(), good["request_id"].encode() + b"\xff")
    r = client.post("/v1/predictions", content=body, headers={"Content-Type": "application/json"})
    # bad bytes inside a value: that event is rejected (here the only one: 422), never a 500
    assert r.status_code == 422 and "utf-8" in r.json()["rejected"][0]["reason"].lower()
    r = client.post("/v1/predictions", json=[{"nope": 1}])
    assert r.status_code == 422 and r.json()["accepted"] == 0
    big = [f.prediction(i) for i in range(10_001)]
    r = client.post("/v1/predictions", json=big)
    assert r.status_code == 413 and "events" in r.json()["detail"]
    r = client.post("/v1/predictions", content=b"[" + b" " * (11 * 1024 * 1024) + b"]",
                    headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and "body" in r.json()["detail"]


def test_openapi_lists_ingest_and_query_routes(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for p in ("/v1/predictions", "/v1/labels", "/v1/metric-windows", "/v1/deploys", "/v1/models", "/v1/counts"):
        assert p in paths


def test_detector_results_route_reads_the_table(client: TestClient, store: ChdbStore) -> None:
    import datetime as dt

    now = dt.datetime.now(dt.UTC)
    cols: dict[str, list[Any]] = {
            "run_id": ["r1", "r1"], "run_at": [now, now], "model": ["m1", "m1"], "model_version": ["v1", "v1"],
            "window_start": [now - dt.timedelta(hours=1)] * 2, "window_end": [now, now],
            "detector": ["drift", "drift"], "subject": ["x", "y"], "test": ["psi", "psi"], "value": [0.31, 0.01],
            "threshold": [0.2, 0.2], "status": ["alert", "ok"], "sample_size": [500, 500], "detail": ["{}", "{}"]}
    store.insert("detector_results", cols)
    rows = client.get("/v1/detectors/results", params={"model": "m1", "status": "alert"}).json()
    assert [(r["subject"], r["value"]) for r in rows] == [("x", 0.31)]
    assert len(client.get("/v1/detectors/results", params={"model": "m1"}).json()) == 2


def test_prometheus_metrics_count_ingest(client: TestClient) -> None:
    bad = f.prediction(2)
    bad.pop("model")
    client.post("/v1/predictions", json=[f.prediction(1), bad])
    text = client.get("/metrics").text
    assert 'driftline_ingest_accepted_events_total{kind="prediction"} 1.0' in text
    assert 'driftline_ingest_rejected_events_total{kind="prediction"} 1.0' in text
    assert 'driftline_scheduler_job_runs{job="slo"}' in text
