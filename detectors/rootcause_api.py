"""``GET /v1/root-cause`` (mounted by ``driftline.server``): the root-cause rankings of one model and time range
(:func:`detectors.rootcause.root_cause`), as the alert payload carries them and the Debug page shows them."""

from __future__ import annotations

import datetime as _dt
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Query

from collector.store import Store
from detectors.api import StoreTime
from detectors.rootcause import root_cause

__all__ = ["rootcause_router"]

MAX_RANGE = _dt.timedelta(days=90)   # the predictions' retention: a longer range has nothing more to rank


def rootcause_router(store: Store) -> APIRouter:
    router = APIRouter(tags=["drift"])

    @router.get("/v1/root-cause",
                summary="Slices by accuracy cost, features by drift x importance, slices by error-budget burn")
    def rc(model: str, start: StoreTime | None = None, end: StoreTime | None = None, version: str | None = None,
           burn: Literal["errors", "latency", "accuracy", "none"] = "errors",
           objective: float = Query(0.99, gt=0, lt=1, description="burn ranking: the error budget is 1 - objective"),
           threshold_ms: float | None = Query(None, gt=0, description="burn=latency: the latency SLO's threshold"),
           metric: Literal["accuracy", "mae"] = "accuracy",
           top: int = Query(3, ge=1, le=50)) -> dict[str, Any]:
        end = end or _dt.datetime.now(_dt.UTC)
        start = start or end - _dt.timedelta(days=1)
        if end <= start:
            raise HTTPException(422, "end: must be after start")
        if end - start > MAX_RANGE:
            raise HTTPException(422, f"start: the range may span at most {MAX_RANGE.days} days")
        if burn == "latency" and threshold_ms is None:
            raise HTTPException(422, "threshold_ms: needed with burn=latency")
        args = None if burn == "none" else {"kind": burn, "objective": objective, "threshold_ms": threshold_ms}
        return root_cause(store, model, start, end, version=version or None, burn=args, metric=metric, top=top)

    return router
