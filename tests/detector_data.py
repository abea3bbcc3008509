"""Columnar inserts of predictions and labels for detector tests (fast, no HTTP)."""

from __future__ import annotations

import datetime as _dt
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from collector.schema import LABELS, PREDICTIONS
from collector.store import Store

# Recent: event tables drop rows older than their TTL (90 days) on insert/merge.
T0 = (_dt.datetime.now(_dt.UTC) - _dt.timedelta(days=1)).replace(minute=0, second=0, microsecond=0)


def insert_predictions(store: Store, *, start: _dt.datetime, seconds: float, features: Sequence[Mapping[str, Any]],
                       model: str = "m1", version: str = "v1", preds: Sequence[Mapping[str, Any]] | None = None,
                       slices: Sequence[Mapping[str, str]] | None = None, request_ids: Sequence[str] | None = None,
                       event_ids: Sequence[str] | None = None, subjects: Sequence[str] | None = None,
                       statuses: Sequence[str] | None = None) -> list[str]:
    """One prediction per item of ``features`` (name to float, str or None), spread over ``seconds``
    (``subjects``: their subject hashes, '' for none; ``statuses``: "ok" or "error", default "ok")."""
    n = len(features)
    step = seconds / max(n, 1)
    rids = list(request_ids) if request_ids is not None else [f"r-{uuid.uuid4().hex}" for _ in range(n)]
    cols: dict[str, list[Any]] = {c.name: [] for c in PREDICTIONS.columns if not c.default}
    if subjects is not None:
        cols["subject_hash"] = []
    for i, f in enumerate(features):
        p = (preds[i] if preds is not None else {}) or {}
        cols["event_id"].append(event_ids[i] if event_ids is not None else f"p-{uuid.uuid4().hex}")
        cols["ts"].append(start + _dt.timedelta(seconds=i * step))
        cols["model"].append(model)
        cols["model_version"].append(version)
        cols["request_id"].append(rids[i])
        cols["features_num"].append({k: float(v) for k, v in f.items() if isinstance(v, (int, float))})
        cols["features_cat"].append({k: v for k, v in f.items() if isinstance(v, str)})
        cols["features_null"].append([k for k, v in f.items() if v is None])
        cols["pred_value"].append(p.get("value"))
        cols["pred_label"].append(p.get("label"))
        cols["pred_score"].append(p.get("score"))
        cols["pred_probs"].append(dict(p.get("probabilities") or {}))
        cols["slices"].append(dict(slices[i]) if slices is not None else {})
        cols["latency_ms"].append(1.0)
        status = statuses[i] if statuses is not None else "ok"
        cols["status"].append(status)
        cols["error_type"].append("timeout" if status == "error" else "")
        cols["schema_version"].append(1)
        if subjects is not None:
            cols["subject_hash"].append(subjects[i])
    store.insert(PREDICTIONS, cols)
    return rids


def insert_labels(store: Store, request_ids: Sequence[str], *, values: Sequence[float | None] | None = None,
                  classes: Sequence[str | None] | None = None, model: str = "m1",
                  ts: _dt.datetime | None = None, subjects: Sequence[str] | None = None) -> None:
    n = len(request_ids)
    cols: dict[str, list[Any]] = {
            "event_id": [f"l-{uuid.uuid4().hex}" for _ in range(n)], "ts": [ts or T0] * n, "model": [model] * n,
            "request_id": list(request_ids), "label_value": list(values) if values is not None else [None] * n,
            "label_class": list(classes) if classes is not None else [None] * n, "schema_version": [1] * n,
            **({"subject_hash": list(subjects)} if subjects is not None else {})}
    store.insert(LABELS, cols)
