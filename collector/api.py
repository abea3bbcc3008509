"""Ingest and query API (FastAPI routers; ``driftline.server`` mounts them).

Ingest: ``POST /v1/predictions | /v1/labels | /v1/metric-windows | /v1/deploys`` with a JSON array,
an envelope ``{"schema_version", "kind", "events"}`` or NDJSON. The answer names each rejected
event's index, field and reason; the good events beside it are stored (or, in scale mode,
produced to Kafka).
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from collector.auth import SCOPES, KeyStore, Principal
from collector.authz import Actor, KeyModels
from collector.exceptions import StoreUnavailable
from collector.fragments import join_latest_label, model_window, models_filter, time_window
from collector.ingest import Decoded, DecodeLimits, decode_message, store_decoded
from collector.redaction import IngestRedaction
from collector.sql import SQL, ident, sql
from collector.stats import minutes_ago
from collector.store import Store
from collector.writer import TABLE_FOR_KIND, EventWriter
from serving_shim.contract import MAX_BATCH_EVENTS, EventError, TimeWindow
from serving_shim.transport import PATH_FOR_KIND

__all__ = ["IngestSink", "StoreIngestSink", "KafkaIngestSink", "ingest_router", "query_router", "keys_router", "Limits"]

KIND_OF_PATH = {path: kind for kind, path in PATH_FOR_KIND.items()}


class Limits(BaseModel):
    """What one ingest body may hold. Its size in bytes is capped once, by :class:`collector.authz.Authorize`
    in front of every route (``HttpLimits.max_ingest_bytes``, declared or streamed); its events are counted
    while it is read (:func:`collector.ingest.decode_message`)."""

    max_events: int = MAX_BATCH_EVENTS
    #: event times accepted: this long before the server's clock (late events) to this long after it
    max_event_age_s: float = 7 * 86400.0
    max_event_ahead_s: float = 3600.0

    def decode_limits(self) -> DecodeLimits:
        window = TimeWindow(max_age_s=self.max_event_age_s, max_ahead_s=self.max_event_ahead_s)
        return DecodeLimits(max_bytes=None, max_events=self.max_events, window=window)  # bytes: capped by authz


class IngestSink(Protocol):
    def accept(self, decoded: Decoded) -> int: ...


class StoreIngestSink:
    """Embedded mode: write straight to the store (the server owns it)."""

    def __init__(self, store: Store, redaction: IngestRedaction | None = None) -> None:
        self.writer = EventWriter(store)
        self.redaction = redaction

    def accept(self, decoded: Decoded) -> int:
        if self.redaction is None:
            return store_decoded(self.writer, decoded)
        self.redaction.apply(decoded)  # events from senders that are not the SDK (see collector.redaction)
        return store_decoded(self.writer, decoded, self.redaction.dead_letters)


class KafkaIngestSink:
    """Scale mode: produce the good events to Kafka; the collectors store them.

    A body may carry 10,000 events: they go out in messages of at most ``chunk`` events, so a message
    stays well under the broker's default ``message.max.bytes`` (1 MB)."""

    def __init__(self, transport: Any, writer: EventWriter | None = None, chunk: int = 500,
                 redaction: IngestRedaction | None = None) -> None:
        self.transport = transport
        self.writer = writer
        self.chunk = chunk
        self.redaction = redaction

    def accept(self, decoded: Decoded) -> int:
        if self.redaction is not None:
            self.redaction.apply(decoded)
        n = 0
        futures = []
        for kind, events in decoded.good.items():
            by_model: dict[str, list[Any]] = {}
            for e in events:
                by_model.setdefault(e.model, []).append(e)
            for model, evs in by_model.items():
                for i in range(0, len(evs), self.chunk):
                    futures.append(self.transport.send(kind, evs[i:i + self.chunk], key=model))
                n += len(evs)
        for f in futures:
            f.get(timeout=10)
        if self.writer is not None:
            self.writer.write_dead_letters(decoded.dead)
        return n


def _refuse_other_models(decoded: Decoded, principal: Principal, kind: str) -> None:
    """Events for models the key may not write become rejections (field ``model``); the rest go on."""
    kept, kept_idx = [], []
    for ev, i in zip(decoded.good[kind], decoded.indices[kind], strict=True):
        if principal.allows_model(ev.model):
            kept.append(ev)
            kept_idx.append(i)
        else:
            decoded.errors.append(EventError(i, "model", f"this API key may not write model {ev.model!r}", ev.event_id))
    decoded.good[kind], decoded.indices[kind] = kept, kept_idx
    decoded.errors.sort(key=lambda e: e.index)
    # a rejected event is kept as a dead letter only where the key may write: its payload's model is one of
    # the key's models (readers of a model see the dead letters whose payload names it, see dead_letters)
    decoded.dead = [d for d in decoded.dead if principal.allows_model(_payload_model(d.payload))]


def _payload_model(payload: bytes) -> str:
    try:
        doc = json.loads(payload)
    except (ValueError, RecursionError):
        return ""
    model = doc.get("model") if isinstance(doc, dict) else None
    return model if isinstance(model, str) else ""


class IngestResponse(BaseModel):
    accepted: int
    rejected: list[dict[str, Any]]


def ingest_router(sink: IngestSink, limits: Limits | None = None, registry: Any = None) -> APIRouter:
    from prometheus_client import CollectorRegistry, Counter

    limits = limits or Limits()
    decode_limits = limits.decode_limits()
    registry = registry if registry is not None else CollectorRegistry()
    m_accepted = Counter("driftline_ingest_accepted_events", "Events accepted by the ingest API", ["kind"],
                         registry=registry)
    m_rejected = Counter("driftline_ingest_rejected_events", "Events rejected by the ingest API", ["kind"],
                         registry=registry)
    router = APIRouter(tags=["ingest"])

    async def _ingest(path_kind: str, request: Request) -> Any:
        kind = KIND_OF_PATH[path_kind]
        chunks = bytearray()
        async for chunk in request.stream():  # counted against the route's cap by collector.authz.Authorize
            chunks += chunk
        principal = getattr(request.state, "principal", None)
        # decoding, validation and the store write run on a worker thread, never on the event loop
        status, payload = await run_in_threadpool(_process, bytes(chunks), kind, principal)
        return JSONResponse(payload, status_code=status)

    def _process(body: bytes, kind: str, principal: Principal | None) -> tuple[int, dict[str, Any]]:
        decoded = decode_message(body, source="http", kind=kind, limits=decode_limits)
        if decoded.errors and decoded.errors[0].index == -1:
            raise HTTPException(413 if decoded.too_large else 400, f"{decoded.errors[0].reason}")
        if principal is not None and principal.models:
            _refuse_other_models(decoded, principal, kind)
        try:
            accepted = sink.accept(decoded)
        except StoreUnavailable:     # an outage: the sender keeps the batch and retries (the SDK does on 5xx)
            raise HTTPException(503, "store unavailable: retry later", headers={"Retry-After": "1"}) from None
        m_accepted.labels(kind).inc(accepted)
        m_rejected.labels(kind).inc(len(decoded.errors))
        payload = {"accepted": accepted, "rejected": [e.as_dict() for e in decoded.errors]}
        return (422 if accepted == 0 and decoded.errors else 200), payload

    def _endpoint_for(path: str) -> Any:
        async def endpoint(request: Request) -> Any:
            return await _ingest(path, request)

        return endpoint

    for path in KIND_OF_PATH:
        endpoint = _endpoint_for(path)

        router.add_api_route(
            f"/v1/{path}",
            endpoint,
            methods=["POST"],
            response_model=IngestResponse,
            summary=f"Ingest a batch of {KIND_OF_PATH[path]} events",
            description="Body: a JSON array of events, an envelope {schema_version, kind, events}, or NDJSON.",
            responses={400: {"description": "unreadable body"}, 413: {"description": "too large"},
                       422: {"description": "every event rejected"}},
            openapi_extra={"requestBody": {"required": True, "content": {
                "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
                "application/x-ndjson": {"schema": {"type": "string"}}}}},
        )
    return router



#: Dead letters of the key's models: their payload's ``model`` (an unreadable payload is for unscoped keys only).
def _dead_letters_of(models: tuple[str, ...]) -> SQL:
    """Dead letters have no model column: a model-scoped key sees those whose payload names its model."""
    # the payload is the event as sent or, redacted by the server (collector.redaction), {"sha256", "redacted"}
    return sql("(empty(%(m)s) OR has(%(m)s, JSONExtractString(payload, 'model')) "
               "OR has(%(m)s, JSONExtractString(payload, 'redacted', 'model')))", m=list(models))


def query_router(store: Store) -> APIRouter:
    router = APIRouter(tags=["query"])

    @router.get("/v1/models", summary="Models seen, with versions, counts and last event time")
    def models(key: KeyModels, minutes: int = Query(1440, ge=1, le=525600)) -> list[dict[str, Any]]:
        return store.rows(sql(
            """
            SELECT model, groupUniqArray(model_version) AS versions, count() AS predictions,
                   countIf(status = 'error') AS errors, max(ts) AS last_ts
            FROM {db}.predictions FINAL WHERE %(since)s AND %(models)s
            GROUP BY model ORDER BY model
            """, since=time_window(minutes_ago(minutes)), models=models_filter(key)))

    @router.get("/v1/predictions", summary="Recent sampled (redacted) predictions with their labels")
    def predictions(model: str, limit: int = Query(100, ge=1, le=10000),
                    minutes: int = Query(60, ge=1, le=525600)) -> list[dict[str, Any]]:
        of = model_window(model, minutes_ago(minutes))
        recent = sql("(SELECT * FROM {db}.predictions FINAL WHERE %(of)s ORDER BY ts DESC LIMIT %(limit)s)",
                     of=of, limit=limit)
        return store.rows(sql(
            """
            SELECT p.event_id, p.ts, p.model, p.model_version, p.request_id, p.features_num, p.features_cat,
                   p.features_null, p.pred_value, p.pred_label, p.pred_score, p.slices, p.latency_ms,
                   p.status, p.error_type, l.label_value, l.label_class
            FROM %(joined)s
            ORDER BY p.ts DESC
            """, joined=join_latest_label(recent, of)))

    @router.get("/v1/arrivals", summary="Events stored per minute")
    def arrivals(key: KeyModels, model: str | None = None,
                 minutes: int = Query(60, ge=1, le=10080)) -> list[dict[str, Any]]:
        return store.rows(sql(
            """
            SELECT toStartOfMinute(ts) AS minute, model, count() AS predictions, countIf(status='error') AS errors
            FROM {db}.predictions FINAL
            WHERE %(since)s AND (%(model)s = '' OR model = %(model)s)
              AND %(models)s
            GROUP BY minute, model ORDER BY minute, model
            """, since=time_window(minutes_ago(minutes)), model=model or "", models=models_filter(key)))

    @router.get("/v1/labels/coverage", summary="Share of predictions with a label, and how late labels arrive")
    def label_coverage(model: str, minutes: int = Query(1440, ge=1, le=525600)) -> dict[str, Any]:
        since = minutes_ago(minutes)
        of = model_window(model, since)
        rows = store.rows(sql(
            """
            SELECT count() AS predictions, countIf(l.request_id != '') AS labeled,
                   quantileIf(0.5)(dateDiff('millisecond', p.ts, l.label_ts) / 1000.0, """
            """l.request_id != '') AS delay_p50_s,
                   quantileIf(0.9)(dateDiff('millisecond', p.ts, l.label_ts) / 1000.0, """
            """l.request_id != '') AS delay_p90_s
            FROM %(joined)s
            SETTINGS join_use_nulls = 0
            """, joined=join_latest_label(sql("(SELECT model, request_id, ts FROM {db}.predictions FINAL WHERE %(of)s)",
                                                  of=of), of)))
        r: dict[str, Any] = rows[0] if rows else {"predictions": 0, "labeled": 0,
                                                  "delay_p50_s": None, "delay_p90_s": None}
        orphans = store.scalar(sql(
            """
            SELECT count() FROM (SELECT DISTINCT request_id FROM {db}.labels FINAL WHERE model = %(model)s
                                 AND %(since)s) AS l
            LEFT ANTI JOIN (SELECT request_id FROM {db}.predictions FINAL WHERE model = %(model)s) AS p
            ON l.request_id = p.request_id
            """, model=model, since=time_window(since)))
        n, k = int(r["predictions"]), int(r["labeled"])
        nan_free = {key: (None if v is None or v != v else float(v)) for key, v in r.items() if key.startswith("delay")}
        return {"model": model, "predictions": n, "labeled": k, "coverage": (k / n) if n else None,
                "labels_waiting_for_prediction": int(orphans or 0), **nan_free}

    @router.get("/v1/dead-letters", summary="Rejected events with the field and reason")
    def dead_letters(key: KeyModels, limit: int = Query(100, ge=1, le=10000)) -> list[dict[str, Any]]:
        return store.rows(sql(
            "SELECT received_at, source, kind, event_index, event_id, field, reason FROM {db}.dead_letters "
            "WHERE %(of)s ORDER BY received_at DESC LIMIT %(limit)s", of=_dead_letters_of(key), limit=limit))

    @router.get("/v1/counts", summary="Stored events per kind (deduplicated)")
    def counts(key: KeyModels) -> dict[str, int]:
        out = {}
        for kind, table in TABLE_FOR_KIND.items():
            out[kind] = int(store.scalar(sql("SELECT count() FROM {db}.%(t)s FINAL WHERE %(models)s",
                                             t=ident(table), models=models_filter(key))) or 0)
        out["dead_letter"] = int(store.scalar(sql("SELECT count() FROM {db}.dead_letters WHERE %(of)s",
                                                  of=_dead_letters_of(key))) or 0)
        return out

    return router


class KeyRequest(BaseModel):
    scope: str
    name: str = ""
    models: list[str] = []


def keys_router(keys: KeyStore) -> APIRouter:
    """Key management (admins whose key is for every model, see ``collector.authz.ROUTES``)."""
    router = APIRouter(tags=["keys"])

    @router.get("/v1/keys", summary="API keys (never their secrets)")
    def list_keys() -> list[dict[str, Any]]:
        return keys.list()

    @router.post("/v1/keys", summary="Create an API key; the answer is the only time it is shown")
    def create_key(req: KeyRequest, actor: Actor) -> dict[str, Any]:
        if req.scope not in SCOPES:
            raise HTTPException(422, f"scope: must be one of {', '.join(SCOPES)}, got {req.scope!r}")
        key = keys.create(scope=req.scope, name=req.name, models=tuple(req.models), actor=actor)
        return {"key": key, "scope": req.scope, "models": req.models}

    @router.delete("/v1/keys/{key_id}", summary="Revoke an API key")
    def revoke_key(key_id: str, actor: Actor) -> dict[str, Any]:
        if not keys.revoke(key_id, actor=actor):
            raise HTTPException(404, f"key_id: no key {key_id!r}")
        return {"revoked": key_id}

    return router
