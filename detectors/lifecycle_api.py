"""Routes of the model lifecycle (mounted by ``driftline.server``): the expected version per model and what
serves (``GET /v1/deploys``; deploys are posted to the ingest route of the same path), canary and shadow
verdicts (``GET /v1/canary``) and cost per 1,000 inferences (``GET /v1/cost``)."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable, Mapping
from typing import Any

from fastapi import APIRouter, HTTPException

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

    return router
