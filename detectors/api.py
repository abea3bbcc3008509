"""Query routes of the detectors (mounted by ``driftline.server``)."""

from __future__ import annotations

import datetime as _dt
from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, HTTPException, Query

from collector.store import Store
from detectors.drift_sql import numeric_psi

__all__ = ["drift_router"]


def drift_router(store: Store) -> APIRouter:
    router = APIRouter(tags=["drift"])

    @router.get("/v1/drift/psi", summary="PSI per numeric feature, current window against a reference window")
    def drift_psi(
        model: str,
        reference_start: _dt.datetime,
        reference_end: _dt.datetime,
        current_start: _dt.datetime,
        current_end: _dt.datetime,
        bins: int = Query(10, ge=2, le=100),
        threshold: float = Query(0.2, gt=0),
    ) -> list[dict[str, Any]]:
        for name, a, b in (("reference_end", reference_start, reference_end), ("current_end", current_start, current_end)):
            if b <= a:
                raise HTTPException(422, f"{name}: must be after its start")
        res = numeric_psi(store, model, (reference_start, reference_end), (current_start, current_end),
                          bins=bins, threshold=threshold)
        return [asdict(r) for r in res]

    return router
