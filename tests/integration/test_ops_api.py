"""The ops routes (/v1/ops/...) the dashboard reads, on the real app and store."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from collector.ops_api import histogram_quantile
from collector.stats import wilson_interval
from collector.store import ChdbStore
from driftline.config import Settings
from driftline.server import create_app
from tests import dashboard_data as dd
from tests.apiclient import local_client


@pytest.fixture
def client(store: ChdbStore) -> Iterator[TestClient]:
    app = create_app(Settings(open_localhost=True, scheduler=False), store=store)
    with local_client(app) as c:
        yield c


@pytest.fixture
def filled(client: TestClient, store: ChdbStore) -> dict[str, Any]:
    return dd.fill(lambda path, body: client.post(path, json=body).json(), store)


def test_histogram_quantile_and_wilson() -> None:
    b = [0] * 14
    b[5] = 100  # all in (25, 50]
    assert histogram_quantile(0.5, b) == pytest.approx(37.5)
    assert histogram_quantile(0.99, b) == pytest.approx(49.75)
    b[13] = 100  # overflow: reported as the last bound
    assert histogram_quantile(0.99, b) == 10000
    assert histogram_quantile(0.5, [0] * 14) is None
    lo, hi = wilson_interval(120, 150)
    assert lo == pytest.approx(0.7289, abs=1e-4) and hi == pytest.approx(0.8562, abs=1e-4)
    assert wilson_interval(0, 0) == (None, None)


def test_summary_latency_versions_deploys(client: TestClient, filled: dict[str, Any]) -> None:
    s = client.get("/v1/ops/summary", params={"model": dd.MODEL, "minutes": 360}).json()
    assert (s["requests"], s["errors"]) == (dd.REQUESTS, dd.ERRORS)
    assert s["availability"] == pytest.approx(0.9)
    assert (s["sampled_predictions"], s["labelled"]) == (200, 150)
    assert s["accuracy"] == pytest.approx(0.8) and s["label_coverage"] == pytest.approx(0.75)
    assert s["replica_hours"] == pytest.approx(2.0) and s["replicas"] == 2
    assert s["cost_per_1k"] == pytest.approx(1.0 / 60)
    assert s["deploys"] == 2 and s["deploys_per_day"] == pytest.approx(8.0)
    assert client.get("/v1/ops/summary", params={"model": dd.MODEL, "version": "v2"}).json()["requests"] == 0
    rows = client.get("/v1/ops/latency", params={"model": dd.MODEL, "minutes": 360, "step_s": 60}).json()
    assert len(rows) == 60 and sum(r["requests"] for r in rows) == dd.REQUESTS
    assert rows[0]["p50_ms"] == pytest.approx(37.5) and rows[0]["error_rate"] == 0
    assert rows[-1]["error_rate"] == 1.0 and rows[-1]["p99_ms"] == pytest.approx(497.5)
    assert rows[-1]["errors_by_type"] == {"timeout": 1000}
    v = client.get("/v1/ops/versions", params={"model": dd.MODEL}).json()
    assert (v["expected"], v["current"], v["matches"]) == ("v2", "v1", False)
    d = client.get("/v1/ops/deploys", params={"model": dd.MODEL, "minutes": 360}).json()
    assert [x["model_version"] for x in d] == ["v1", "v2"]
    m = client.get("/v1/ops/models").json()
    assert m == [{"model": dd.MODEL, "versions": ["v1", "v2"], "last_ts": m[0]["last_ts"]}]


def test_summary_cost_is_the_configured_cost_model_as_the_cost_route_counts_it(store: ChdbStore) -> None:
    spec = json.dumps({dd.MODEL: {"kind": "per_request", "usd_per_request": 0.0003}})
    app = create_app(Settings(open_localhost=True, scheduler=False, cost_models=spec), store=store)
    with local_client(app) as client:
        dd.fill(lambda path, body: client.post(path, json=body).json(), store)
        s = client.get("/v1/ops/summary", params={"model": dd.MODEL, "minutes": 360}).json()
        series = client.get("/v1/cost", params={"model": dd.MODEL, "minutes": 360}).json()
    assert s["cost_model"]["kind"] == "per_request" and s["cost_usd"] == pytest.approx(dd.REQUESTS * 0.0003)
    assert s["cost_per_1k"] == pytest.approx(0.3)              # not the replica-hour default ($1/60 per 1,000)
    assert sum(p["cost_usd"] for p in series) == pytest.approx(s["cost_usd"])


def test_slices_features_distribution(client: TestClient, filled: dict[str, Any]) -> None:
    rows = client.get("/v1/ops/slices", params={"model": dd.MODEL, "minutes": 360}).json()
    assert [(r["key"], r["value"], r["labelled"]) for r in rows] == [("region", "eu", 75), ("region", "us", 75)]
    assert sum(r["correct"] for r in rows) == 120
    assert all(r["low"] <= r["accuracy"] <= r["high"] for r in rows)
    feats = client.get("/v1/ops/features", params={"model": dd.MODEL}).json()
    assert {(x["feature"], x["kind"]) for x in feats} == {("x", "numeric"), ("y", "numeric"), ("region", "categorical")}
    t = filled["t"]
    q = {"model": dd.MODEL, "reference_start": (t - __import__("datetime").timedelta(minutes=60)).isoformat(),
         "reference_end": (t - __import__("datetime").timedelta(minutes=25)).isoformat(),
         "current_start": (t - __import__("datetime").timedelta(minutes=25)).isoformat(), "current_end": t.isoformat(),
         "bins": 10}
    d = client.get("/v1/ops/distribution", params={**q, "feature": "x"}).json()
    assert d["kind"] == "numeric" and len(d["edges"]) == 11 and sum(d["reference"]) + sum(d["current"]) == 200
    assert d["edges"][0] == 0 and d["edges"][-1] == 199
    assert sum(d["reference"][5:]) == 0 and sum(d["current"][:5]) == 0  # x grows with time
    c = client.get("/v1/ops/distribution", params={**q, "feature": "region"}).json()
    assert c["kind"] == "categorical" and c["categories"] == ["eu", "us"] and sum(c["reference"] + c["current"]) == 200
    assert client.get("/v1/ops/distribution", params={**q, "feature": "nope"}).json()["kind"] == "none"
    bad = {**q, "current_end": q["current_start"]}
    assert client.get("/v1/ops/distribution", params={**bad, "feature": "x"}).status_code == 422


def test_empty_store_answers_empty(client: TestClient) -> None:
    s = client.get("/v1/ops/summary", params={"model": "none"}).json()
    assert s["requests"] == 0 and s["availability"] is None and s["cost_per_1k"] is None and s["accuracy"] is None
    assert client.get("/v1/ops/latency", params={"model": "none"}).json() == []
    assert client.get("/v1/ops/versions", params={"model": "none"}).json()["matches"] is None
    assert client.get("/v1/ops/models").json() == []
    assert client.get("/v1/ops/slices", params={"model": "none"}).json() == []
