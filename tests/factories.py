"""Builders of valid contract events for tests."""

from __future__ import annotations

import datetime as _dt
import uuid
from typing import Any

from serving_shim.contract import LATENCY_BUCKETS_MS, SCHEMA_VERSION


def now() -> _dt.datetime:
    t = _dt.datetime.now(_dt.UTC)
    return t.replace(microsecond=t.microsecond // 1000 * 1000)  # the store keeps milliseconds


def prediction(i: int = 0, *, model: str = "m1", version: str = "v1", ts: _dt.datetime | None = None,
               **kw: Any) -> dict[str, Any]:
    ev: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "event_id": f"p-{uuid.uuid4().hex}",
        "ts": (ts or now()).isoformat(),
        "model": model,
        "model_version": version,
        "request_id": f"r-{i}-{uuid.uuid4().hex[:8]}",
        "features": {"x": float(i), "y": i * 0.5 - 3, "region": ["eu", "us"][i % 2], "missing": None},
        "prediction": {"label": "yes" if i % 3 else "no", "score": (i % 100) / 100,
                       "probabilities": {"yes": 0.6, "no": 0.4}},
        "slices": {"region": ["eu", "us"][i % 2]},
        "latency_ms": 1.5 + i % 7,
        "status": "ok",
    }
    ev.update(kw)
    return ev


def label(request_id: str, *, model: str = "m1", value: str = "yes") -> dict[str, Any]:
    return {"schema_version": SCHEMA_VERSION, "event_id": f"l-{uuid.uuid4().hex}", "ts": now().isoformat(),
            "model": model, "request_id": request_id, "label": value}


def metric_window(*, model: str = "m1", version: str = "v1", requests: int = 100, errors: int = 2) -> dict[str, Any]:
    b = [0] * (len(LATENCY_BUCKETS_MS) + 1)
    b[3] = requests
    return {"schema_version": SCHEMA_VERSION, "event_id": f"w-{uuid.uuid4().hex}", "model": model,
            "model_version": version, "window_start": now().replace(microsecond=0).isoformat(), "window_s": 10,
            "source": "replica-1", "requests": requests, "errors": {"timeout": errors}, "latency_buckets": b,
            "latency_sum_ms": 7.0 * requests}


def deploy(*, model: str = "m1", version: str = "v2") -> dict[str, Any]:
    return {"schema_version": SCHEMA_VERSION, "event_id": f"d-{uuid.uuid4().hex}", "ts": now().isoformat(),
            "model": model, "model_version": version, "annotations": {"commit": "abc123"}}
