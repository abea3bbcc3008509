"""Governance routes (admin scope, see ``collector.authz.ROUTES``): the audit log, retention, subjects.

- ``GET /v1/audit``                 audit entries, newest first (no route edits or deletes one)
- ``GET /v1/retention``             each table's retention (days; null: kept forever)
- ``PUT /v1/retention``             set one table's retention (audited)
- ``GET /v1/subjects/{subject}``    every stored row of a subject (raw id, or its hash with ``?hashed=true``)
- ``DELETE /v1/subjects/{subject}`` delete them, answering the rows removed per table (audited)
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field

from collector import audit
from collector.authz import Actor, KeyModels
from collector.retention import MAX_DAYS, retention, set_retention
from collector.store import Store

__all__ = ["governance_router"]


class RetentionIn(BaseModel):
    table: str = Field(min_length=1, max_length=128)
    days: int = Field(ge=0, le=MAX_DAYS, description="0: keep forever")


def governance_router(store: Store, subjects: Any = None) -> APIRouter:
    """``subjects``: a :class:`collector.subjects.Subjects` (hashing with the server's salt), or None."""
    router = APIRouter(tags=["governance"])

    # times out of the store's range are a ParameterError (422, naming the parameter) where they are rendered
    @router.get("/v1/audit", summary="The audit log, newest first (read only)")
    def get_audit(key: KeyModels, since: _dt.datetime | None = None, until: _dt.datetime | None = None,
                  actor: str | None = Query(None, max_length=300), action: str | None = Query(None, max_length=200),
                  target: str | None = Query(None, max_length=1000), model: str | None = Query(None, max_length=200),
                  limit: int = Query(1000, ge=1, le=100_000)) -> list[dict[str, Any]]:
        return audit.query(store, since=since, until=until, actor=actor, action=action, target=target, model=model,
                           models=key, limit=limit)

    @router.get("/v1/retention", summary="How long each table keeps its rows (days; null: forever)")
    def get_retention() -> list[dict[str, Any]]:
        return retention(store)

    @router.put("/v1/retention", summary="Set one table's retention (applied as its TTL; audited)")
    def put_retention(body: RetentionIn, actor: Actor) -> dict[str, Any]:
        return _unprocessable(set_retention, store, body.table, body.days, actor=actor)

    if subjects is not None:  # the server always mounts them (hashing a raw id needs its salt)
        @router.get("/v1/subjects/{subject:path}", summary="Every stored row tied to a subject (access request)")
        def export_subject(subject: str, actor: Actor, hashed: bool = False) -> dict[str, Any]:
            return _unprocessable(subjects.export, subject, hashed=hashed, actor=actor)

        @router.delete("/v1/subjects/{subject:path}", summary="Delete every row tied to a subject (audited)")
        def delete_subject(subject: str, actor: Actor, hashed: bool = False) -> dict[str, Any]:
            return _unprocessable(subjects.delete, subject, hashed=hashed, actor=actor)

    return router


def _unprocessable(fn: Callable[..., dict[str, Any]], *args: Any, **kw: Any) -> dict[str, Any]:
    """``fn``'s answer; its ValueError (naming the field and the reason) as a 422."""
    try:
        return fn(*args, **kw)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
