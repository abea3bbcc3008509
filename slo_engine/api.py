"""Routes of the SLO engine (mounted by ``driftline.server``): specs, status, budgets and burn rates,
alerts, silences and the delivery log. ``specs`` is a callable so the composition root can reload them."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable, Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Query
from pydantic import BaseModel, Field

from collector.authz import Actor, KeyModels
from collector.sql import sql
from collector.store import Store
from slo_engine.engine import load_alert_states
from slo_engine.evaluate import evaluate
from slo_engine.exceptions import SilenceError, SpecError
from slo_engine.model import Slo
from slo_engine.rules import rules_document
from slo_engine.silences import create_silence, expire_silence, list_silences
from slo_engine.spec import MAX_NODES, parse_duration, parse_specs

__all__ = ["slo_router"]


class SilenceIn(BaseModel):
    matchers: dict[str, str] = Field(description="slo, model, model_version and/or severity (page|ticket)")
    duration: str | None = Field(None, description="like 2h; or give ends_at")
    ends_at: _dt.datetime | None = None
    starts_at: _dt.datetime | None = None
    created_by: str = ""
    comment: str = ""


def _for(models: Sequence[str], model: str | None) -> bool:
    """Whether a key limited to ``models`` (empty: every model) sees an object of ``model`` (None: of every model)."""
    return not models or (model is not None and model in models)


def slo_router(store: Store, specs: Callable[[], Sequence[Slo]] = tuple,
               clock: Callable[[], _dt.datetime] | None = None, *, max_yaml_nodes: int = MAX_NODES) -> APIRouter:
    """Every listing is filtered to the caller's models (``collector.authz.key_models``)."""
    router = APIRouter(prefix="/v1/slo", tags=["slo"])
    now_fn = clock or (lambda: _dt.datetime.now(_dt.UTC))

    def pick(name: str | None, models: Sequence[str]) -> list[Slo]:
        all_ = [s for s in specs() if _for(models, s.model)]
        if name is None:
            return all_
        chosen = [s for s in all_ if s.name == name]
        if not chosen:
            raise HTTPException(404, f"no SLO named {name!r}")
        return chosen

    @router.get("/specs", summary="The normalised SLO specs and their generated alert rules")
    def get_specs(key: KeyModels) -> dict[str, Any]:
        return rules_document(pick(None, key))

    @router.post("/validate", summary="Validate a YAML spec; 422 lists every problem with its line")
    def validate(text: str = Body(..., media_type="application/yaml")) -> dict[str, Any]:
        try:
            return rules_document(parse_specs(text, "<body>", max_nodes=max_yaml_nodes))
        except SpecError as exc:
            raise HTTPException(422, [{"line": p.line, "path": p.path, "message": p.message}
                                      for p in exc.problems]) from None

    @router.get("/status", summary="SLI, error budget, budget remaining, burn rates and firing tiers")
    def status(key: KeyModels, slo: str | None = None, at: _dt.datetime | None = None,
               window: Annotated[list[str] | None, Query(description="extra burn-rate windows, like 2h")] = None,
               ) -> list[dict[str, Any]]:
        try:
            extra = [parse_duration(w) for w in window or ()]
        except ValueError as exc:
            raise HTTPException(422, f"window: {exc}") from None
        return [s.as_dict() for s in evaluate(store, pick(slo, key), at or now_fn(), extra_windows=extra)]

    @router.get("/alerts", summary="Alert states (pending, firing, resolved)")
    def alerts(key: KeyModels, active: bool = False) -> list[dict[str, Any]]:
        out = []
        for a in load_alert_states(store, active_only=active).values():
            if not _for(key, a.model):
                continue
            d = {k: getattr(a, k) for k in a.__dataclass_fields__}
            for k in ("since", "last_true", "last_notified"):
                d[k] = d[k].isoformat()
            out.append(d)
        return out

    @router.get("/silences", summary="Silences, active ones unless include_expired")
    def silences(key: KeyModels, include_expired: bool = False) -> list[dict[str, Any]]:
        return [s.as_dict() for s in list_silences(store, now=now_fn(), include_expired=include_expired)
                if _for(key, s.matchers.get("model"))]

    @router.post("/silences", status_code=201, summary="Create a silence (maintenance, retraining)")
    def add_silence(body: SilenceIn, actor: Actor) -> dict[str, Any]:
        try:
            dur = parse_duration(body.duration) if body.duration else None
            s = create_silence(store, body.matchers, now=now_fn(), duration_s=dur, ends_at=body.ends_at,
                               starts_at=body.starts_at, created_by=body.created_by, comment=body.comment,
                               actor=actor)
        except (SilenceError, ValueError) as exc:
            raise HTTPException(422, str(exc)) from None
        return s.as_dict()

    @router.delete("/silences/{silence_id}", summary="Expire a silence now")
    def expire(silence_id: str, actor: Actor) -> dict[str, Any]:
        try:
            return expire_silence(store, silence_id, now=now_fn(), actor=actor).as_dict()
        except SilenceError as exc:
            raise HTTPException(404, str(exc)) from None

    @router.get("/deliveries", summary="The notifiers' delivery log, newest first")
    def deliveries(key: KeyModels, limit: int = Query(100, ge=1, le=10_000)) -> list[dict[str, Any]]:
        # a delivery's dedup_key is its alert's key: a model-scoped key sees its models' alerts' deliveries
        rows = store.rows(sql("SELECT * FROM {db}.slo_deliveries WHERE empty(%(models)s) OR dedup_key IN "
                              "(SELECT alert_key FROM {db}.slo_alert_state FINAL WHERE has(%(models)s, model)) "
                              "ORDER BY ts DESC LIMIT %(n)s", n=limit, models=list(key)))
        for r in rows:
            r["ts"] = r["ts"].isoformat()
        return rows

    return router
