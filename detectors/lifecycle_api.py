"""Routes of the model lifecycle (mounted by ``driftline.server``): the expected version per model and what
serves (``GET /v1/deploys``; deploys are posted to the ingest route of the same path), canary and shadow
verdicts (``GET /v1/canary``) and cost per 1,000 inferences (``GET /v1/cost``)."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable, Mapping
from typing import Any

from fastapi import APIRouter, HTTPException, Query

from collector.authz import KeyModels
from collector.store import Store
from detectors.version import expected_versions, version_findings

__all__ = ["lifecycle_router"]


def lifecycle_router(store: Store, *, grace_s: float = 600.0, recent_s: float = 120.0,
                     cost_models: Mapping[str, Any] | None = None,
                     clock: Callable[[], _dt.datetime] | None = None) -> APIRouter:
    router = APIRouter(tags=["lifecycle"])
    now_fn = clock or (lambda: _dt.datetime.now(_dt.UTC))

    @router.get("/v1/deploys", summary="Expected version per model (and environment) against the versions serving")
    def deploys(key: KeyModels, model: str | None = None) -> list[dict[str, Any]]:
        if model is not None and key and model not in key:
            raise HTTPException(403, f"model: this key may not read model {model!r}")
        models = [model] if model is not None else list(key)
        now = now_fn()
        found = version_findings(store, now, grace_s=grace_s, recent_s=recent_s, models=models)
        return [{"model": e.model, "environment": e.environment, "expected": e.version,
                 "expected_since": e.since.isoformat(), "allowed": list(e.allowed), "grace_s": grace_s,
                 "drifting": any(f.drifting for f in found if (f.model, f.environment) == (e.model, e.environment)),
                 "serving": [f.as_dict() for f in found if (f.model, f.environment) == (e.model, e.environment)]}
                for e in expected_versions(store, now, models)]

    @router.get("/v1/canary",
                summary="Compare a candidate version with a baseline: promote, hold or rollback, with evidence")
    def canary(model: str, baseline: str, candidate: str,
               mode: str = Query("canary", pattern="^(canary|shadow)$",
                                 description="canary: split traffic; shadow: the same requests, joined by request_id"),
               minutes: int = Query(60, ge=1, le=525600, description="the period: the last N minutes"),
               start: _dt.datetime | None = None,
               end: _dt.datetime | None = None,
               alpha: float = Query(0.05, gt=0, lt=0.5), power: float = Query(0.8, ge=0.5, lt=1),
               error_margin: float = Query(0.01, gt=0, le=1), accuracy_margin: float = Query(0.02, gt=0, le=1),
               latency_tolerance: float = Query(0.10, gt=0, le=10)) -> dict[str, Any]:
        from detectors.canary import CanaryConfig, compare
        from serving_shim.contract import as_utc

        if (start is None) != (end is None):
            raise HTTPException(422, "start, end: give both or neither")
        if start is not None and end is not None:
            s, e = as_utc(start), as_utc(end)
        else:
            e = now_fn()
            s = e - _dt.timedelta(minutes=minutes)
        try:
            cfg = CanaryConfig(alpha=alpha, power=power, error_margin=error_margin, accuracy_margin=accuracy_margin,
                               latency_tolerance=latency_tolerance)
            return compare(store, model, baseline, candidate, start=s, end=e, mode=mode,  # type: ignore[arg-type]
                           config=cfg).as_dict()
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None

    @router.get("/v1/cost",
                summary="Cost and cost per 1,000 inferences per time step and version (configured cost model)")
    def cost(model: str, version: str = "", minutes: int = Query(1440, ge=1, le=525600),
             step_s: int = Query(3600, ge=10, le=86400)) -> list[dict[str, Any]]:
        from collector.cost import cost_series, model_for

        e = now_fn()
        return [p.as_dict() for p in cost_series(store, model, model_for(cost_models or {}, model),
                                                  start=e - _dt.timedelta(minutes=minutes), end=e, step_s=step_s,
                                                  version=version)]

    return router
