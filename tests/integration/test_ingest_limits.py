"""Hostile bodies on the ingest API (embedded mode, real store): never a 500, the good events beside a bad one
are stored, the event count is refused with 413 while reading, times outside the window are refused."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx2
import pytest
from fastapi.testclient import TestClient

from collector.store import ChdbStore
from driftline.config import Settings
from driftline.server import create_app
from tests import factories as f
from tests.apiclient import local_client


@pytest.fixture
def client(store: ChdbStore) -> Iterator[TestClient]:
    app = create_app(Settings(open_localhost=True, scheduler=False), store=store)
    with local_client(app) as c:
        yield c


def _post(client: TestClient, body: bytes, path: str = "/v1/predictions") -> httpx2.Response:
    return client.post(path, content=body, headers={"Content-Type": "application/json"})


def test_deep_nesting_is_a_clear_refusal_and_the_neighbours_are_stored(client: TestClient) -> None:
    deep = b"[" * 1000 + b"]" * 1000
    for path in ("/v1/predictions", "/v1/labels", "/v1/metric-windows", "/v1/deploys"):
        r = _post(client, deep, path)
        assert r.status_code == 422 and "nested deeper than 16 levels" in r.json()["rejected"][0]["reason"], r.text
        r = _post(client, b'{"kind": "x", "events": ' + deep + b"}", path)
        assert r.status_code in (400, 422), r.text
    evs = [f.prediction(i) for i in range(3)]
    good = [json.dumps(e).encode() for e in evs]
    r = _post(client, b"[" + good[0] + b"," + b'{"a":' * 1000 + b"1" + b"}" * 1000 + b"," + good[1] + b"]")
    assert r.status_code == 200 and r.json()["accepted"] == 2
    assert [(e["index"], e["field"]) for e in r.json()["rejected"]] == [(1, "(event)")]
    r = _post(client, good[2] + b"\n" + deep + b"\n" + good[2])
    assert r.status_code == 200 and r.json()["rejected"][0]["line"] == 2
    assert client.get("/v1/counts").json()["prediction"] == 3


def test_event_count_is_refused_while_reading(client: TestClient) -> None:
    r = _post(client, b"[" + b",".join([b"0"] * 5_200_000) + b"]")
    assert r.status_code == 413 and "events" in r.json()["detail"]
    r = _post(client, b"\n".join([b'{"a":1}'] * 20_000))
    assert r.status_code == 413


def test_times_far_off_and_bad_numbers_are_refused_per_event(client: TestClient) -> None:
    d = f.deploy()
    r = client.post("/v1/deploys", json=[d, f.deploy() | {"ts": "9998-01-01T00:00:00Z"}])
    assert r.status_code == 200 and r.json()["accepted"] == 1
    (rejected,) = r.json()["rejected"]
    assert rejected["field"] == "ts" and "outside the accepted window" in rejected["reason"]
    w = f.metric_window()
    bad = [w | {"event_id": "a", "window_start": "2300-01-01T00:00:00Z"}, w | {"event_id": "b", "requests": 2**63},
           w | {"event_id": "c", "errors": {f"e{i}": 0 for i in range(100)}}, w | {"event_id": "d"}]
    body = json.dumps([w, *bad]).encode()
    r = _post(client, body.replace(b'"latency_sum_ms": 700.0}]', b'"latency_sum_ms": NaN}]'), "/v1/metric-windows")
    assert r.status_code == 200 and r.json()["accepted"] == 1, r.text
    assert [e["field"] for e in r.json()["rejected"]] == ["window_start", "requests", "errors", "latency_sum_ms"]


def test_the_window_comes_from_the_settings(store: ChdbStore) -> None:
    import datetime as dt

    app = create_app(Settings(open_localhost=True, scheduler=False, event_max_age_s=60, event_max_ahead_s=0),
                     store=store)
    old = f.prediction(1, ts=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5))
    with local_client(app) as c:
        r = c.post("/v1/predictions", json=[old, f.prediction(2)])
        assert r.json()["accepted"] == 1 and "1 minute before to 0 seconds after" in r.json()["rejected"][0]["reason"]
    s = Settings.from_env({"DRIFTLINE_EVENT_MAX_AGE_S": "86400", "DRIFTLINE_EVENT_MAX_AHEAD_S": "60"})
    assert s.event_window().max_age_s == 86400 and s.event_window().max_ahead_s == 60
    with pytest.raises(ValueError):
        Settings.from_env({"DRIFTLINE_EVENT_MAX_AGE_S": "-1"})
