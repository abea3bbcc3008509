"""Context manager, decorator, plain-ASGI middleware on a real FastAPI app, sklearn wrapper."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sklearn.linear_model import LogisticRegression

from serving_shim import DriftlineMiddleware, InMemorySink, Monitor

from .helpers import registry


@pytest.fixture
def mon() -> Iterator[tuple[Monitor, InMemorySink]]:
    sink = InMemorySink()
    m = Monitor(model="m", version="v1", sink=sink, registry=registry())
    yield m, sink
    m.shutdown()


def _windows_total(sink: InMemorySink) -> tuple[int, dict[str, int]]:
    ws = sink.events("metric_window")
    errors: dict[str, int] = {}
    for w in ws:
        for k, v in w.errors.items():
            errors[k] = errors.get(k, 0) + v
    return sum(w.requests for w in ws), errors


def test_track_times_the_block_and_records_errors(mon: tuple[Monitor, InMemorySink]) -> None:
    m, sink = mon
    with m.track("ok-1", {"x": 1.0}) as t:
        t.prediction = {"label": "yes", "score": 0.9}
    with pytest.raises(KeyError), m.track("bad-1", {"x": 2.0}):
        raise KeyError("boom")
    assert m.flush(5)
    preds = {e.request_id: e for e in sink.events("prediction")}
    assert preds["ok-1"].status == "ok" and preds["ok-1"].prediction.label == "yes"
    assert preds["ok-1"].latency_ms is not None and preds["ok-1"].latency_ms >= 0
    assert preds["bad-1"].status == "error" and preds["bad-1"].error_type == "KeyError"
    assert _windows_total(sink) == (2, {"KeyError": 1})


def test_instrument_decorator(mon: tuple[Monitor, InMemorySink]) -> None:
    m, sink = mon

    @m.instrument
    def predict(features: dict[str, float], *, request_id: str | None = None) -> float:
        if features["x"] < 0:
            raise ValueError("negative")
        return features["x"] * 2

    assert predict({"x": 2.0}, request_id="r-1") == 4.0
    with pytest.raises(ValueError):
        predict({"x": -1.0}, request_id="r-2")
    assert m.flush(5)
    preds = {e.request_id: e for e in sink.events("prediction")}
    assert preds["r-1"].prediction.value == 4.0 and preds["r-1"].features == {"x": 2.0}
    assert preds["r-2"].error_type == "ValueError"


def test_asgi_middleware_counts_every_request_once(mon: tuple[Monitor, InMemorySink]) -> None:
    m, sink = mon
    app = FastAPI()

    @app.post("/predict")
    def predict(body: dict[str, float]) -> dict[str, float]:
        if body["x"] > 100:
            raise RuntimeError("model crashed")
        y = body["x"] / 2
        m.log(f"req-{body['x']}", body, y, latency_ms=1.0)  # payload only: the middleware counts
        return {"y": y}

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"ok": "yes"}

    app.add_middleware(DriftlineMiddleware, monitor=m, paths=("/predict",))
    with TestClient(app, raise_server_exceptions=False) as c:
        for x in range(5):
            assert c.post("/predict", json={"x": x}).status_code == 200
        assert c.post("/predict", json={"x": 1000}).status_code == 500
        assert c.get("/healthz").status_code == 200  # not a monitored path
    assert m.flush(5)
    total, errors = _windows_total(sink)
    assert total == 6 and errors == {"RuntimeError": 1}
    assert sorted(e.request_id for e in sink.events("prediction")) == [f"req-{float(x)}" for x in range(5)]


def test_sklearn_wrapper_logs_one_event_per_row(mon: tuple[Monitor, InMemorySink]) -> None:
    m, sink = mon
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    y = np.where(X[:, 0] > 0, "yes", "no")
    model = m.wrap(LogisticRegression().fit(X, y), feature_names=["a", "b", "c"])
    ids = [f"row-{i}" for i in range(10)]
    proba = model.predict_proba(X[:10], request_ids=ids)
    labels = model.predict(X[10:15])
    assert proba.shape == (10, 2) and len(labels) == 5
    assert list(model.classes_) == ["no", "yes"]  # everything else is the model's own
    assert m.flush(5)
    preds = sink.events("prediction")
    assert len(preds) == 15
    by_id = {e.request_id: e for e in preds}
    e0 = by_id["row-0"]
    assert set(e0.features) == {"a", "b", "c"} and e0.features["a"] == pytest.approx(X[0, 0])
    assert e0.prediction.probabilities == pytest.approx({"no": proba[0, 0], "yes": proba[0, 1]})
    assert e0.prediction.label == ("yes" if proba[0, 1] > proba[0, 0] else "no")
    others = [e for e in preds if e.request_id not in by_id or not e.request_id.startswith("row-")]
    assert {e.prediction.label for e in others} <= {"yes", "no"}
    assert _windows_total(sink)[0] == 15
