"""Routes of performance estimation before labels (mounted by ``driftline.server``):

- ``POST /v1/cbpe/calibration``     calibrate a model's CBPE on a labelled window and store the map
- ``GET  /v1/performance/estimated`` estimated metrics per window with their band, and the realized metric
  and label coverage beside them once labels have arrived (the stored ``estimated_performance`` results)
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field

from collector.authz import Actor
from collector.stats import minutes_ago
from collector.store import Store
from detectors.api import StoreTime
from detectors.cbpe import DETECTOR, fit_calibration
from detectors.cbpe_math import METRICS
from detectors.results import query_results

__all__ = ["cbpe_router"]


class CalibrationRequest(BaseModel):
    model: str
    start: StoreTime
    end: StoreTime
    name: str = Field("default", min_length=1, max_length=200)
    model_version: str | None = None
    positive_class: str | None = Field(None, max_length=1000)
    cells: int = Field(500, ge=10, le=5000)


def cbpe_router(store: Store) -> APIRouter:
    router = APIRouter(tags=["performance"])

    @router.post("/v1/cbpe/calibration", summary="Calibrate CBPE on a labelled window and store the map")
    def calibrate(req: CalibrationRequest, actor: Actor) -> dict[str, Any]:
        if req.end <= req.start:
            raise HTTPException(422, "end: must be after start")
        try:
            cal = fit_calibration(store, req.model, req.start, req.end, name=req.name, version=req.model_version,
                                  positive_class=req.positive_class, cells=req.cells)
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        from collector.audit import record

        record(store, actor=actor, action="cbpe.calibration", target=req.name, model=req.model,
               after={"start": req.start, "end": req.end, "model_version": req.model_version, "rows": cal.rows})
        return {"model": cal.model, "name": cal.name, "kind": cal.kind, "positive_class": cal.positive_class or None,
                "classes": list(cal.classes), "rows": cal.rows, "cells": cal.cells,
                "calibrated": [m.calibrated for m in cal.maps], "built_at": cal.built_at}

    @router.get("/v1/performance/estimated",
                summary="Estimated performance per window (CBPE) with its band, and the realized metric beside it")
    def estimated(model: str, test: str = Query("accuracy"), subject: str = "", start: StoreTime | None = None,
                  end: StoreTime | None = None,
                  minutes: int | None = Query(None, ge=1, le=525600, description="windows of the last N minutes"),
                  limit: int = Query(500, ge=1, le=10_000)) -> list[dict[str, Any]]:
        if test not in METRICS:
            raise HTTPException(422, f"test: {test!r} is not one of {list(METRICS)}")
        if minutes is not None and start is None:
            start = minutes_ago(minutes)
        rows = query_results(store, model=model, detector=DETECTOR, test=test, subject=subject, start=start,
                             end=end, limit=limit, models=[model])
        out = []
        for r in sorted(rows, key=lambda r: (r["window_start"], r["model_version"])):
            d = r["detail"]
            out.append({"model_version": r["model_version"], "window_start": _iso(r["window_start"]),
                        "window_end": _iso(r["window_end"]), "test": test, "subject": subject,
                        "estimate": r["value"], "low": d.get("low"), "high": d.get("high"),
                        "realized": d.get("realized"), "label_coverage": d.get("label_coverage"),
                        "labelled": d.get("labelled"), "rows": r["sample_size"], "status": r["status"],
                        "threshold": r["threshold"], "reason": d.get("reason")})
        return out

    return router


def _iso(t: _dt.datetime) -> str:
    return (t if t.tzinfo else t.replace(tzinfo=_dt.UTC)).isoformat()
