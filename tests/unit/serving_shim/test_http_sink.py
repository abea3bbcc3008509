"""HttpSink on one pooled httpx.Client, its network replaced by httpx.MockTransport (httpx's own test double)."""

from __future__ import annotations

import json
import os

import httpx
import pytest

from serving_shim import Batch, ExportResult, HttpSink, Monitor
from serving_shim.contract import validate_events
from serving_shim.transport import HttpTransport
from tests.factories import prediction

from .helpers import registry


def _batch(n: int = 2) -> Batch:
    good, _ = validate_events("prediction", [prediction(i, request_id=f"r{i}") for i in range(n)], window=None)
    return Batch("prediction", good[0].model, tuple(good))


class Recorder:
    """A server that answers each request with the next (status, body) and keeps what it was sent."""

    def __init__(self, *answers: tuple[int, object]) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        status, body = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(body, Exception):
            raise body
        return httpx.Response(status, content=body if isinstance(body, bytes) else json.dumps(body).encode())


def test_batches_go_to_the_kinds_path_with_the_key_on_one_client() -> None:
    server = Recorder((200, {"accepted": 2, "rejected": []}))
    sink = HttpSink("http://ingest.test:8000/", api_key="k-123", transport=httpx.MockTransport(server))
    for _ in range(3):
        assert sink.export(_batch(), timeout=1.0) is ExportResult.SUCCESS
    assert [str(r.url) for r in server.requests] == ["http://ingest.test:8000/v1/predictions"] * 3
    r = server.requests[0]
    assert r.method == "POST" and r.headers["x-api-key"] == "k-123" and r.headers["content-type"] == "application/json"
    body = json.loads(r.content)
    assert body["kind"] == "prediction" and [e["request_id"] for e in body["events"]] == ["r0", "r1"]
    client = sink._http._client
    assert client is not None and sink._http._http() is client  # built once, reused for every batch
    sink.shutdown()
    assert client.is_closed


@pytest.mark.parametrize(("status", "body", "outcome"), [
    (200, {"accepted": 1, "rejected": [{"index": 1, "field": "ts", "reason": "x"}]}, ExportResult.SUCCESS),
    (422, {"accepted": 0, "rejected": [{"index": 0, "field": "ts", "reason": "x"}]}, ExportResult.SUCCESS),
    (400, {"detail": "not JSON"}, ExportResult.SUCCESS),   # refused as a whole: final, not retried
    (413, {"detail": "too large"}, ExportResult.SUCCESS),
    (401, {"detail": "key"}, ExportResult.FAILURE),        # retried by the processor
    (503, b"unavailable", ExportResult.FAILURE),
    (200, b"<html>a proxy</html>", ExportResult.FAILURE),  # not the ingest API's verdict
])
def test_answers_map_to_export_results(status: int, body: object, outcome: ExportResult) -> None:
    sink = HttpSink("http://ingest.test", transport=httpx.MockTransport(Recorder((status, body))))
    assert sink.export(_batch(), timeout=1.0) is outcome


def test_an_unreachable_or_slow_server_is_a_failed_export_never_an_exception() -> None:
    for exc in (httpx.ConnectError("refused"), httpx.ReadTimeout("slow")):
        sink = HttpSink("http://ingest.test", transport=httpx.MockTransport(Recorder((0, exc))))
        assert sink.export(_batch(), timeout=0.5) is ExportResult.FAILURE
    sink = HttpSink("http://127.0.0.1:9")  # a real refused connection
    assert sink.export(_batch(), timeout=0.5) is ExportResult.FAILURE


def test_the_export_timeout_reaches_the_request() -> None:
    seen: list[object] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.extensions["timeout"])
        return httpx.Response(200, json={"accepted": 2})

    sink = HttpSink("http://ingest.test", transport=httpx.MockTransport(handler))
    sink.export(_batch(), timeout=0.25)
    assert seen == [{"connect": 0.25, "read": 0.25, "write": 0.25, "pool": 0.25}]


def test_a_client_of_your_own_is_used_and_left_open() -> None:
    server = Recorder((200, {"accepted": 2}))
    client = httpx.Client(transport=httpx.MockTransport(server))
    sink = HttpSink("http://ingest.test", api_key="k", client=client)
    assert sink.export(_batch(), timeout=1.0) is ExportResult.SUCCESS
    assert server.requests[0].headers["x-api-key"] == "k"
    sink.shutdown()
    assert not client.is_closed
    client.close()
    with pytest.raises(ValueError, match="transport"):
        HttpTransport("http://x", transport=httpx.MockTransport(server), client=client)


def test_a_forked_child_builds_its_own_client() -> None:
    t = HttpTransport("http://ingest.test", transport=httpx.MockTransport(Recorder((200, {"accepted": 0}))))
    parent = t._http()
    t._pid = os.getpid() + 1  # as a fork leaves it: the client was built by another process
    child = t._http()
    assert child is not parent and t._pid == os.getpid()
    t.close()


def test_a_monitor_exports_through_a_mock_transport() -> None:
    server = Recorder((200, {"accepted": 1, "rejected": []}))
    m = Monitor(model="m", version="v1", sink=HttpSink("http://ingest.test", transport=httpx.MockTransport(server)),
                registry=registry())
    m.log("r1", {"x": 1.0}, {"score": 0.5}, latency_ms=3.0)
    assert m.flush(10)
    m.shutdown()
    paths = sorted(r.url.path for r in server.requests)
    assert paths == ["/v1/metric-windows", "/v1/predictions"]
