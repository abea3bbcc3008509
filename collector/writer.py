"""Turn validated contract events into columnar batches and store them.

Idempotency: every event table is a ReplacingMergeTree whose sorting key ends in ``event_id``,
and every reader selects with ``FINAL``, so a batch delivered twice (a crash between insert and
offset commit, a rebalance, a retried HTTP post) never shows twice in a query result, whether or
not a background merge has happened yet.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from collector.store import Store
from serving_shim.contract import (
    SCHEMA_VERSION,
    DeployEvent,
    EventError,
    LabelEvent,
    MetricWindowEvent,
    PredictionEvent,
)

__all__ = ["TABLE_FOR_KIND", "KINDS_OF_COLUMNS", "to_columns", "EventWriter", "DeadLetter"]

TABLE_FOR_KIND = {
    "prediction": "predictions",
    "label": "labels",
    "metric_window": "metric_windows",
    "deploy": "deploys",
}

KINDS_OF_COLUMNS: dict[str, dict[str, str]] = {
    "predictions": {
        "event_id": "str", "ts": "ts", "model": "str", "model_version": "str", "request_id": "str",
        "features_num": "map_sf", "features_cat": "map_ss", "features_null": "arr_s",
        "pred_value": "f64n", "pred_label": "strn", "pred_score": "f64n", "pred_probs": "map_sf",
        "slices": "map_ss", "latency_ms": "f64n", "status": "str", "error_type": "str",
        "schema_version": "u16",
    },
    "labels": {
        "event_id": "str", "ts": "ts", "model": "str", "request_id": "str",
        "label_value": "f64n", "label_class": "strn", "schema_version": "u16",
    },
    "metric_windows": {
        "event_id": "str", "window_start": "ts", "window_s": "u32", "model": "str", "model_version": "str",
        "source": "str", "requests": "u64", "errors": "map_su", "latency_buckets": "arr_u64",
        "latency_sum_ms": "f64", "schema_version": "u16",
    },
    "deploys": {
        "event_id": "str", "ts": "ts", "model": "str", "model_version": "str", "annotations": "map_ss",
        "schema_version": "u16",
    },
    "dead_letters": {
        "source": "str", "kind": "str", "event_index": "i32", "event_id": "str", "field": "str",
        "reason": "str", "payload": "str",
    },
}


def _split_features(f: dict[str, Any]) -> tuple[dict[str, float], dict[str, str], list[str]]:
    num: dict[str, float] = {}
    cat: dict[str, str] = {}
    null: list[str] = []
    for k, v in f.items():
        if v is None:
            null.append(k)
        elif isinstance(v, str):
            cat[k] = v
        else:
            num[k] = float(v)
    return num, cat, null


def to_columns(kind: str, events: Sequence[Any]) -> tuple[str, dict[str, list[Any]]]:
    """Columns for the table of ``kind`` from validated events."""
    table = TABLE_FOR_KIND[kind]
    cols: dict[str, list[Any]] = {name: [] for name in KINDS_OF_COLUMNS[table]}
    if kind == "prediction":
        for e in events:
            assert isinstance(e, PredictionEvent)
            num, cat, null = _split_features(e.features)
            p = e.prediction
            for name, v in (
                ("event_id", e.event_id), ("ts", e.ts), ("model", e.model), ("model_version", e.model_version),
                ("request_id", e.request_id), ("features_num", num), ("features_cat", cat), ("features_null", null),
                ("pred_value", p.value), ("pred_label", p.label), ("pred_score", p.score),
                ("pred_probs", p.probabilities or {}), ("slices", e.slices), ("latency_ms", e.latency_ms),
                ("status", e.status), ("error_type", e.error_type or ""), ("schema_version", e.schema_version),
            ):
                cols[name].append(v)
    elif kind == "label":
        for e in events:
            assert isinstance(e, LabelEvent)
            for name, v in (
                ("event_id", e.event_id), ("ts", e.ts), ("model", e.model), ("request_id", e.request_id),
                ("label_value", e.value), ("label_class", e.label), ("schema_version", e.schema_version),
            ):
                cols[name].append(v)
    elif kind == "metric_window":
        for e in events:
            assert isinstance(e, MetricWindowEvent)
            for name, v in (
                ("event_id", e.event_id), ("window_start", e.window_start), ("window_s", e.window_s),
                ("model", e.model), ("model_version", e.model_version), ("source", e.source),
                ("requests", e.requests), ("errors", dict(e.errors)), ("latency_buckets", list(e.latency_buckets)),
                ("latency_sum_ms", e.latency_sum_ms), ("schema_version", e.schema_version),
            ):
                cols[name].append(v)
    elif kind == "deploy":
        for e in events:
            assert isinstance(e, DeployEvent)
            for name, v in (
                ("event_id", e.event_id), ("ts", e.ts), ("model", e.model), ("model_version", e.model_version),
                ("annotations", dict(e.annotations)), ("schema_version", e.schema_version),
            ):
                cols[name].append(v)
    return table, cols


@dataclass(frozen=True)
class DeadLetter:
    """A rejected event or message: where it came from, why, and its original bytes.

    Payloads were redacted by the shim before they left the model server; they are stored here
    and never written to logs.
    """

    source: str
    kind: str
    index: int
    event_id: str
    field: str
    reason: str
    payload: str

    @classmethod
    def from_error(cls, source: str, kind: str, err: EventError, payload: str) -> DeadLetter:
        return cls(source, kind, err.index, err.event_id or "", err.field, err.reason, payload)


class EventWriter:
    """Stores validated batches, and dead letters for what was rejected."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def write(self, kind: str, events: Sequence[Any]) -> int:
        if not events:
            return 0
        table, cols = to_columns(kind, events)
        return self.store.insert(table, cols, KINDS_OF_COLUMNS[table])

    def write_dead_letters(self, letters: Sequence[DeadLetter]) -> int:
        if not letters:
            return 0
        cols: dict[str, list[Any]] = {
            "source": [d.source for d in letters],
            "kind": [d.kind for d in letters],
            "event_index": [d.index for d in letters],
            "event_id": [d.event_id for d in letters],
            "field": [d.field for d in letters],
            "reason": [d.reason for d in letters],
            "payload": [d.payload for d in letters],
        }
        return self.store.insert("dead_letters", cols, KINDS_OF_COLUMNS["dead_letters"])


def utcnow() -> _dt.datetime:
    return _dt.datetime.now(_dt.UTC)


_ = SCHEMA_VERSION
