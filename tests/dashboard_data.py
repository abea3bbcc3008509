"""A store filled through the real ingest API for the dashboard's and the ops routes' tests, a real server in a
thread, and the numbers the pages must show.

One hour of one-minute metric windows from two replicas (500 requests each per minute), the last six minutes
an outage (every request an error, slow); 200 sampled predictions of which 150 labelled (120 right); deploys of
v1 (3 h ago) and v2 (20 min ago) while the replicas still serve v1; one rejected event; drift and performance
detector results; an availability SLO at 99% over 30 days, evaluated once so its alerts are stored.
"""

from __future__ import annotations

import datetime as _dt
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from collector.schema import DETECTOR_RESULTS
from collector.store import Store
from serving_shim.contract import LATENCY_BUCKETS_MS, SCHEMA_VERSION
from tests import factories as f

MODEL = "churn"
SPEC = f"""version: driftline/v1
slos:
  - {{name: availability, model: {MODEL}, objective: 99, window: 30d, sli: {{availability: {{}}}}}}
"""
# What the pages must show
REQUESTS = 60 * 2 * 500
ERRORS = 6 * 2 * 500
AVAILABILITY = "90.00%"            # 1 - 6000 / 60000
ACCURACY = "80.0%"                 # 120 right of 150 labelled
LABEL_COVERAGE = "75.0%"           # 150 labelled of 200
COST_PER_1K = "$0.0167"            # 120 windows × 60 s = 2 replica-hours × $0.50 / 60,000 × 1,000
BUDGET_REMAINING = "-900.0%"       # 1 - (0.1 / 0.01)

Post = Callable[[str, Any], Any]


def _now_minute() -> _dt.datetime:
    return _dt.datetime.now(_dt.UTC).replace(second=0, microsecond=0)


def metric_windows(t_end: _dt.datetime) -> list[dict[str, Any]]:
    nb = len(LATENCY_BUCKETS_MS) + 1
    fast, slow = LATENCY_BUCKETS_MS.index(50), LATENCY_BUCKETS_MS.index(500)
    out = []
    for i in range(60):
        ws = t_end - _dt.timedelta(minutes=60 - i)
        outage = i >= 54
        for r in range(2):
            b = [0] * nb
            b[slow if outage else fast] = 500
            out.append({"schema_version": SCHEMA_VERSION, "event_id": f"w-{ws.isoformat()}-{r}", "model": MODEL,
                        "model_version": "v1", "window_start": ws.isoformat(), "window_s": 60,
                        "source": f"replica-{r}", "requests": 500, "errors": {"timeout": 500} if outage else {},
                        "latency_buckets": b, "latency_sum_ms": (400.0 if outage else 40.0) * 500})
    return out


def fill(post: Post, store: Store) -> dict[str, Any]:
    """Send everything through the ingest API (``post(path, json)``); detector rows go to the store."""
    t = _now_minute()
    assert post("/v1/metric-windows", metric_windows(t))["accepted"] == 120
    preds = []
    for i in range(200):
        kw: dict[str, Any] = {"status": "error", "error_type": "timeout"} if i % 50 == 0 else {}
        preds.append(f.prediction(i, model=MODEL, version="v1", ts=t - _dt.timedelta(seconds=(200 - i) * 15), **kw))
    assert post("/v1/predictions", preds)["accepted"] == 200
    labels = []
    for i, p in enumerate(preds[:150]):
        right = p["prediction"]["label"]
        labels.append(f.label(p["request_id"], model=MODEL,
                              value=right if i < 120 else ("no" if right == "yes" else "yes")))
    assert post("/v1/labels", labels)["accepted"] == 150
    deploys = [f.deploy(model=MODEL, version="v1"), f.deploy(model=MODEL, version="v2")]
    deploys[0]["ts"] = (t - _dt.timedelta(hours=3)).isoformat()
    deploys[1]["ts"] = (t - _dt.timedelta(minutes=20)).isoformat()
    assert post("/v1/deploys", deploys)["accepted"] == 2
    bad = f.prediction(0, model=MODEL)
    bad["latency_ms"] = "slow"
    post("/v1/predictions", [bad])  # every event rejected: a dead letter
    detector_rows(store, t)
    return {"t": t, "predictions": preds}




def detector_rows(store: Store, t: _dt.datetime) -> None:
    import json

    cols: dict[str, list[Any]] = {c.name: [] for c in DETECTOR_RESULTS.columns}

    def add(ws: _dt.datetime, detector: str, subject: str, test: str, value: float, thr: float, status: str,
            detail: dict[str, Any]) -> None:
        for k, v in (("run_id", uuid.uuid4().hex), ("run_at", t), ("model", MODEL), ("model_version", "v1"),
                     ("window_start", ws), ("window_end", ws + _dt.timedelta(minutes=10)), ("detector", detector),
                     ("subject", subject), ("test", test), ("value", value), ("threshold", thr), ("status", status),
                     ("sample_size", 400), ("detail", json.dumps(detail))):
            cols[k].append(v)

    for w in range(6):
        ws = t - _dt.timedelta(minutes=60 - 10 * w)
        add(ws, "drift", "x", "psi", 0.02 + 0.01 * w, 0.2, "ok",
            {"edges": [10.0, 20.0, 30.0], "reference_share": [0.25, 0.25, 0.25, 0.25],
             "current_share": [0.1, 0.2, 0.3, 0.4]})
        y_alert = w >= 4
        add(ws, "drift", "y", "psi", 0.35 if y_alert else 0.05, 0.2, "alert" if y_alert else "ok", {})
        add(ws, "drift", "region", "psi", 0.01, 0.2, "ok",
            {"categories": ["eu", "us"], "reference_share": [0.5, 0.5], "current_share": [0.6, 0.4]})
        # CBPE: accuracy estimated in every window, realized once its labels arrived (the first three)
        add(ws, "estimated_performance", "", "accuracy", 0.9 - 0.02 * w, 0.0, "ok",
            {"low": 0.86 - 0.02 * w, "high": 0.94 - 0.02 * w, "method": "cbpe", "label_coverage": 1.0 if w < 3 else 0.0,
             **({"realized": 0.91 - 0.02 * w} if w < 3 else {})})
    ws = t - _dt.timedelta(minutes=10)
    add(ws, "performance", "region=eu", "accuracy", 0.82, 0.7, "ok", {"low": 0.74, "high": 0.88, "confidence": 0.95})
    add(ws, "performance", "region=us", "accuracy", 0.61, 0.7, "alert", {"low": 0.52, "high": 0.69, "confidence": 0.95})
    store.insert(DETECTOR_RESULTS, cols)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve(store: Store) -> Iterator[tuple[str, Any]]:
    """The real app (with the SLO spec loaded) on a free port, uvicorn in a thread: (base URL, app)."""
    import uvicorn

    from driftline.config import Settings
    from driftline.server import create_app
    from slo_engine.spec import parse_specs

    # the dashboard calls from 127.0.0.1 without a key (the embedded default); no background scheduler,
    # so the alert states the test evaluated stay as they are
    app = create_app(Settings(open_localhost=True, scheduler=False), store=store)
    app.state.slo_specs = parse_specs(SPEC)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", ws="none",
                                           lifespan="on"))
    th = threading.Thread(target=server.run, daemon=True)
    th.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not th.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", app
    finally:
        server.should_exit = True
        th.join(timeout=10)


def evaluate_alerts(store: Store, app: Any) -> None:
    """One scheduler tick with no notifier, so the alert states are stored (the outage fires page-slow)."""
    from slo_engine import evaluate_and_notify

    evaluate_and_notify(store, app.state.slo_specs, _dt.datetime.now(_dt.UTC), {})
