"""Read routes over ``detector_results`` (what the dashboard and the SLO engine show)."""

from __future__ import annotations

import datetime as _dt
from typing import Any

from fastapi import APIRouter, Query

from collector.store import Store

__all__ = ["results_router"]


def results_router(store: Store) -> APIRouter:
    router = APIRouter(tags=["detectors"])

    @router.get("/v1/detectors/results", summary="Detector results (drift, quality, performance) per window")
    def results(
        model: str,
        minutes: int = Query(1440, ge=1, le=525600, description="results of windows that ended in the last N minutes"),
        detector: str | None = Query(None, description="drift | quality | performance"),
        status: str | None = Query(None, description="ok | alert | not enough data | error"),
        limit: int = Query(5000, ge=1, le=100000),
    ) -> list[dict[str, Any]]:
        since = _dt.datetime.now(_dt.UTC) - _dt.timedelta(minutes=minutes)
        return store.rows(
            """
            SELECT run_at, model, model_version, window_start, window_end, detector, subject, test, value,
                   threshold, status, sample_size, detail
            FROM {db}.detector_results FINAL
            WHERE model = %(model)s AND window_end >= %(since)s
              AND (%(detector)s = '' OR detector = %(detector)s) AND (%(status)s = '' OR status = %(status)s)
            ORDER BY window_end DESC, detector, subject, test
            LIMIT %(limit)s
            """,
            {"model": model, "since": since, "detector": detector or "", "status": status or "", "limit": limit},
        )

    return router
