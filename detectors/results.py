"""Detector results: one row per model, version, subject, window and test, in ``detector_results``.

Status is one of :data:`STATUSES`. ``value`` is None (NULL) whenever there is no number to show:
the reason is then in ``detail["reason"]``, never a NaN.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from collector.fragments import models_filter
from collector.schema import DETECTOR_RESULTS
from collector.sql import ident, join, sql
from collector.store import Store

__all__ = ["Result", "STATUSES", "OK", "ALERT", "NOT_ENOUGH_DATA", "ERROR", "write_results", "query_results"]

OK, ALERT, NOT_ENOUGH_DATA, ERROR = "ok", "alert", "not enough data", "error"
STATUSES = (OK, ALERT, NOT_ENOUGH_DATA, ERROR)


def _clean(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None if math.isnan(v) else ("inf" if v > 0 else "-inf")
    if isinstance(v, Mapping):
        return {str(k): _clean(x) for k, x in v.items()}
    if isinstance(v, np.ndarray):
        return [_clean(x) for x in v.tolist()]
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    if isinstance(v, np.generic):
        return _clean(v.item())
    if isinstance(v, _dt.datetime):
        return v.isoformat()
    return v


@dataclass(frozen=True, kw_only=True)
class Result:
    detector: str                      # drift | quality | performance
    subject: str                       # feature, slice "key=value", or "" for the model
    test: str
    value: float | None
    threshold: float | None
    status: str
    sample_size: int = 0
    detail: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status {self.status!r} is not one of {STATUSES}")
        if self.value is not None and not math.isfinite(self.value):
            # an infinite or NaN statistic is not shown as a number: the detail says why
            object.__setattr__(self, "detail", {**self.detail, "raw_value": _clean(self.value)})
            object.__setattr__(self, "value", None)

    @classmethod
    def no_data(cls, detector: str, subject: str, test: str, reason: str, *, threshold: float | None = None,
                sample_size: int = 0, **detail: Any) -> Result:
        return cls(detector=detector, subject=subject, test=test, value=None, threshold=threshold,
                   status=NOT_ENOUGH_DATA, sample_size=sample_size, detail={"reason": reason, **detail})

    def as_dict(self) -> dict[str, Any]:
        return {"detector": self.detector, "subject": self.subject, "test": self.test, "value": self.value,
                "threshold": self.threshold, "status": self.status, "sample_size": self.sample_size,
                "detail": _clean(dict(self.detail))}


def write_results(store: Store, results: Iterable[Result], *, run_id: str, model: str, model_version: str,
                  window_start: _dt.datetime, window_end: _dt.datetime, run_at: _dt.datetime | None = None) -> int:
    rs = list(results)
    run_at = run_at or _dt.datetime.now(_dt.UTC)
    n = len(rs)
    cols: dict[str, list[Any]] = {
        "run_id": [run_id] * n, "run_at": [run_at] * n, "model": [model] * n, "model_version": [model_version] * n,
        "window_start": [window_start] * n, "window_end": [window_end] * n,
        "detector": [r.detector for r in rs], "subject": [r.subject for r in rs], "test": [r.test for r in rs],
        "value": [r.value for r in rs], "threshold": [r.threshold for r in rs], "status": [r.status for r in rs],
        "sample_size": [int(r.sample_size) for r in rs],
        "detail": [json.dumps(_clean(dict(r.detail)), sort_keys=True) for r in rs],
    }
    return store.insert(DETECTOR_RESULTS, cols)


def query_results(store: Store, *, model: str | None = None, detector: str | None = None, test: str | None = None,
                  subject: str | None = None, status: str | None = None, start: _dt.datetime | None = None,
                  end: _dt.datetime | None = None, run_id: str | None = None, limit: int = 1000,
                  models: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Latest result per (model, version, detector, subject, test, window), newest windows first.
    ``models``: only these models' results (empty: every model)."""
    conds = [models_filter(models)]
    conds += [sql("%(c)s = %(v)s", c=ident(col), v=v) for col, v in (
        ("model", model), ("detector", detector), ("test", test), ("subject", subject), ("status", status),
        ("run_id", run_id)) if v is not None]
    if start is not None:
        conds.append(sql("window_start >= %(v)s", v=start))
    if end is not None:
        conds.append(sql("window_end <= %(v)s", v=end))
    rows = store.rows(sql(
        """SELECT run_id, run_at, model, model_version, window_start, window_end, detector, subject, test, value,
                  threshold, status, sample_size, detail
           FROM {db}.detector_results FINAL WHERE %(where)s
           ORDER BY window_start DESC, model, detector, subject, test LIMIT %(limit)s""",
        where=join(" AND ", conds) if conds else sql("1"), limit=int(limit)))
    for r in rows:
        r["detail"] = json.loads(r["detail"] or "{}")
    return rows
