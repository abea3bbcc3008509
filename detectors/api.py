"""Query routes of the detectors (mounted by ``driftline.server``).

- ``GET  /v1/drift/psi``              PSI per numeric feature, current window against a reference window
- ``GET  /v1/detectors/tests``        the stat-test registry (name, kinds, default threshold, direction)
- ``POST /v1/detectors/run``          run the detectors for one model and window (writes results)
- ``GET  /v1/detectors/results``      stored results, filtered
- ``GET  /v1/references``             stored references
- ``GET  /v1/references/distribution`` one feature of a stored reference against a recent window, same bins
- ``POST /v1/references/window``      store the profile of a fixed time window
- ``POST /v1/references/upload``      store the profile of an uploaded CSV/Parquet baseline
- ``GET  /v1/reports/evidently``      Evidently HTML report, reference window against a sample of current
"""

from __future__ import annotations

import datetime as _dt
import os
import shutil
import tempfile
from dataclasses import dataclass
from typing import IO, Annotated, Any

import numpy as np
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse
from pydantic import AfterValidator, BaseModel, Field
from starlette.datastructures import UploadFile

from collector.authz import Actor, KeyModels
from collector.stats import minutes_ago
from collector.store import Store
from detectors.drift import DriftConfig, binned_categorical, binned_numeric, drift_results, summarize_window
from detectors.drift_sql import NumStats, window_source
from detectors.reference import (
    Profile,
    audit_reference,
    build_profile,
    list_references,
    load_profile,
    reference_from_window,
)
from detectors.results import query_results
from detectors.runner import PREVIOUS, run_detectors
from detectors.stattests import DEFAULT_REGISTRY, Registry, shown_categories
from serving_shim.contract import as_utc

__all__ = ["drift_router"]


_EARLIEST = _dt.datetime(1971, 1, 1, tzinfo=_dt.UTC)
_LATEST = _dt.datetime(2106, 1, 1, tzinfo=_dt.UTC)  # the tables' TTLs convert to DateTime (until 2106-02-07)


def _in_store_range(t: _dt.datetime | None) -> _dt.datetime | None:
    """Times the store can hold (and a window can end at): 1971 to 2106, naive meaning UTC."""
    if t is None:
        return None
    t = t if t.tzinfo else t.replace(tzinfo=_dt.UTC)
    if not _EARLIEST <= t < _LATEST:
        raise ValueError(f"must be between {_EARLIEST:%Y-%m-%d} and {_LATEST:%Y-%m-%d}, got {t.isoformat()}")
    return t


StoreTime = Annotated[_dt.datetime, AfterValidator(_in_store_range)]


class RunRequest(BaseModel):
    model: str
    window_s: float = Field(3600, gt=0, le=400 * 86400)   # at most the metric-window retention
    window_end: StoreTime | None = None          # default: now
    reference: str = PREVIOUS
    model_version: str | None = None
    config: dict[str, Any] | None = None
    write: bool = True


class WindowReference(BaseModel):
    model: str
    name: str = Field(min_length=1, max_length=200)
    start: StoreTime
    end: StoreTime
    model_version: str | None = None


@dataclass(frozen=True, kw_only=True)
class DetectorLimits:
    """Caps of the routes that load rows into Python (from ``driftline.config.Settings``)."""

    max_upload_rows: int = 20_000_000
    max_upload_columns: int = 2_000
    max_report_cells: int = 2_000_000   # Evidently report: sample rows x features, per side


#: Upload file types by the end of the uploaded file's name (the temp file gets the same ending).
_UPLOAD_BODY = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["file"],
    "properties": {"file": {"type": "string", "format": "binary", "description": "CSV, TSV, .csv.gz or Parquet"}}}}}}}


def drift_router(store: Store, registry: Registry = DEFAULT_REGISTRY, *,
                 limits: DetectorLimits | None = None) -> APIRouter:
    router = APIRouter(tags=["drift"])
    limits = limits or DetectorLimits()

    @router.get("/v1/drift/psi", summary="PSI per numeric feature, current window against a reference window")
    def drift_psi(
        model: str,
        reference_start: StoreTime,
        reference_end: StoreTime,
        current_start: StoreTime,
        current_end: StoreTime,
        bins: int = Query(10, ge=2, le=100),
        threshold: float = Query(0.2, gt=0),
    ) -> list[dict[str, Any]]:
        for name, a, b in (("reference_end", reference_start, reference_end),
                           ("current_end", current_start, current_end)):
            if b <= a:
                raise HTTPException(422, f"{name}: must be after its start")
        prof = build_profile(store, window_source(model, reference_start, reference_end), model=model, name="adhoc",
                             source="window")
        cur = summarize_window(store, window_source(model, current_start, current_end), prof, bins=bins)
        feats = {f for f, fp in prof.features.items() if fp.kind == "numeric" and not f.startswith("@")}
        res = drift_results(prof, cur, DriftConfig.parse({"psi": threshold}, bins=bins), registry=registry,
                            features=feats)
        return [{"feature": r.subject, "value": r.value,
                 "status": "drift" if r.status == "alert" else r.status, "reason": r.detail.get("reason"),
                 "reference_n": prof.features[r.subject].n, "current_n": r.sample_size} for r in res]

    @router.get("/v1/detectors/tests", summary="The registry of drift tests")
    def tests() -> list[dict[str, Any]]:
        out = []
        for name in registry.names():
            t = registry.get(name)
            out.append({"name": t.name, "kinds": sorted(t.kinds), "default_threshold": t.default_threshold,
                        "alert_when": t.alert_when, "description": t.description})
        return out

    @router.post("/v1/detectors/run", summary="Run drift, quality and performance detectors for one window")
    def run(req: RunRequest, actor: Actor) -> dict[str, Any]:
        end = as_utc(req.window_end) if req.window_end else _dt.datetime.now(_dt.UTC)
        try:
            rep = run_detectors(store, req.model, end, _dt.timedelta(seconds=req.window_s), reference=req.reference,
                                model_version=req.model_version, config=req.config, registry=registry,
                                write=req.write)
        except (ValueError, KeyError, TypeError) as exc:
            raise HTTPException(422, str(exc)) from None
        if req.config is not None and req.write:  # results stored under thresholds other than the defaults
            from collector.audit import record

            record(store, actor=actor, action="detectors.config", target=rep.run_id, model=req.model,
                   after={"config": req.config, "reference": req.reference, "window_s": req.window_s,
                          "model_version": req.model_version})
        return {"run_id": rep.run_id, "model": rep.model, "model_version": rep.model_version,
                "window_start": rep.window_start, "window_end": rep.window_end, "reference": rep.reference,
                "alerts": len(rep.alerts), "results": [r.as_dict() for r in rep.results]}

    @router.get("/v1/detectors/results", summary="Stored detector results (latest per window and test)")
    def results(model: str | None = None, detector: str | None = None, test: str | None = None,
                subject: str | None = None, status: str | None = None, start: StoreTime | None = None,
                end: StoreTime | None = None, run_id: str | None = None,
                minutes: int | None = Query(None, ge=1, le=525600, description="windows of the last N minutes"),
                limit: int = Query(1000, ge=1, le=100_000), *, key: KeyModels) -> list[dict[str, Any]]:
        if minutes is not None and start is None:
            start = minutes_ago(minutes)
        return query_results(store, model=model, detector=detector, test=test, subject=subject, status=status,
                             start=start, end=end, run_id=run_id, limit=limit, models=key)

    @router.get("/v1/references", summary="Stored reference profiles")
    def references(key: KeyModels, model: str | None = None) -> list[dict[str, Any]]:
        return list_references(store, model, models=key)

    @router.get("/v1/references/distribution",
                summary="One feature of a stored reference and of the last minutes, counted on the same bins")
    def reference_distribution(model: str, name: str, feature: str,
                               minutes: int = Query(60, ge=1, le=525600, description="the current window"),
                               version: str = "", bins: int = Query(10, ge=2, le=100)) -> dict[str, Any]:
        prof = load_profile(store, model, name)
        if prof is None:
            raise HTTPException(404, f"name: no reference {name!r} of model {model!r} "
                                     "(store one with `driftline reference` or POST /v1/references/window)")
        fp = prof.features.get(feature)
        if fp is None or fp.kind not in ("numeric", "categorical"):
            raise HTTPException(404, f"feature: {feature!r} has no numeric or categorical profile "
                                     f"in reference {name!r}")
        end = _dt.datetime.now(_dt.UTC)
        start = minutes_ago(minutes)
        one = Profile(model=model, name=name, source=prof.source, rows=prof.rows, features={feature: fp})
        cur = summarize_window(store, window_source(model, start, end, version or None), one, bins=bins)
        out: dict[str, Any] = {"model": model, "name": name, "feature": feature, "kind": fp.kind,
                               "source": prof.source, "built_at": prof.built_at, "reference_n": fp.n,
                               "current_start": start, "current_end": end, "edges": [], "categories": []}
        if fp.kind == "categorical":
            n, _, top = cur.categorical.get(feature, (0, 0, {}))
            b = binned_categorical(fp, n, top)
            out["categories"] = shown_categories(b.labels)
        else:  # a feature absent from the window counts zero in every bin of the reference
            edges = cur.edges.get(feature, fp.edges)
            counts = cur.fine.get(feature, np.zeros(edges.size + 1, dtype=np.int64))
            stats = cur.numeric.get(feature, NumStats(n=0, lo=fp.lo, hi=fp.hi, mean=fp.mean, std=fp.std))
            b = binned_numeric(fp, edges, counts, stats, bins=bins)
            out["edges"] = np.asarray(b.edges, dtype=float).tolist()
        out.update(reference=[int(x) for x in b.reference], current=[int(x) for x in b.current],
                   current_n=int(sum(b.current)))
        return out

    @router.post("/v1/references/window", summary="Store the profile of a fixed time window as a reference")
    def reference_window(req: WindowReference, actor: Actor) -> dict[str, Any]:
        if req.end <= req.start:
            raise HTTPException(422, "end: must be after start")
        before = list_references(store, req.model)
        p = reference_from_window(store, req.model, as_utc(req.start), as_utc(req.end), name=req.name,
                                  version=req.model_version)
        audit_reference(store, before, p, actor=actor)
        return {"model": p.model, "name": p.name, "rows": p.rows, "features": sorted(p.features)}

    @router.post("/v1/references/upload", summary="Store the profile of an uploaded CSV or Parquet baseline",
                 openapi_extra=_UPLOAD_BODY,
                 responses={413: {"description": "file over the size limit"},
                            422: {"description": "unreadable file, duplicate columns, too many rows or columns"}})
    async def reference_upload(request: Request, model: str, name: str, actor: Actor, prediction: str | None = None,
                               score: str | None = None, label: str | None = None) -> dict[str, Any]:
        # the body (capped by collector.authz) is parsed as it streams: the file part goes to a temp file
        form = await request.form(max_files=1, max_fields=20)
        try:
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise HTTPException(422, "file: missing (send multipart/form-data with a 'file' part)")
            filename = os.path.basename(upload.filename or "upload.csv")
            from detectors.upload import UPLOAD_SUFFIXES  # pyarrow: imported by the uploads, not with the API

            suffix = next((x for x in UPLOAD_SUFFIXES if filename.lower().endswith(x)), None)
            if suffix is None:
                raise HTTPException(422, f"file: {filename!r} is not a known file type "
                                         f"(use {', '.join(UPLOAD_SUFFIXES)})")
            return await run_in_threadpool(_upload, upload.file, suffix, model, name, prediction, score, label,
                                           actor)
        finally:
            await form.close()

    def _upload(src: IO[bytes], suffix: str, model: str, name: str, prediction: str | None, score: str | None,
                label: str | None, actor: str) -> dict[str, Any]:
        from detectors.upload import upload_reference

        before = list_references(store, model)

        with tempfile.TemporaryDirectory(prefix="driftline-upload-") as tmp:
            path = os.path.join(tmp, "upload" + suffix)
            with open(path, "wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
            try:
                p = upload_reference(store, model, name, path, prediction=prediction, score=score, label=label,
                                     progress=False, max_rows=limits.max_upload_rows,
                                     max_columns=limits.max_upload_columns)
            except (ValueError, KeyError, TypeError, NotImplementedError) as exc:  # pyarrow's errors are these too
                # never show the server's temp path
                raise HTTPException(422, str(exc).replace(tmp + os.sep, "").replace(tmp, "")) from None
        audit_reference(store, before, p, actor=actor)
        return {"model": p.model, "name": p.name, "rows": p.rows, "features": sorted(p.features)}

    @router.get("/v1/reports/evidently", response_class=HTMLResponse,
                summary="Evidently data drift report: reference window against a sample of the current window")
    def evidently(model: str, start: StoreTime, end: StoreTime, reference_start: StoreTime,
                  reference_end: StoreTime, sample: int = Query(10_000, ge=10, le=200_000),
                  model_version: str | None = None) -> HTMLResponse:
        from detectors.report import evidently_html, window_sample, window_shape

        for side, (a, b) in (("reference", (reference_start, reference_end)), ("current", (start, end))):
            rows, feats = window_shape(store, model, a, b, version=model_version)
            cells = min(rows, sample) * (feats + 3)  # + the prediction columns
            if cells > limits.max_report_cells:
                raise HTTPException(422, f"sample: {min(rows, sample)} rows x {feats} features of the {side} window "
                                         f"is over the limit of {limits.max_report_cells} cells; ask for sample <= "
                                         f"{max(10, limits.max_report_cells // (feats + 3))}")
        ref = window_sample(store, model, reference_start, reference_end, sample=sample, version=model_version)
        cur = window_sample(store, model, start, end, sample=sample, version=model_version)
        try:
            return HTMLResponse(evidently_html(ref, cur))
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None

    return router
