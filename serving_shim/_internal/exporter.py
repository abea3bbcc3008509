"""The monitor's exporter: queued items in, redacted and validated contract events out to a :class:`Sink`.

The batch processor hands it what the caller's thread queued (raw tuples) and the closed metric windows;
it builds the events on the worker (redaction, normalisation, validation: never on the caller's
thread), groups them into :class:`Batch` es of one kind and sends each through the sink, counting
what it exported, what failed and what it dropped by reason (``redaction_error``, ``invalid``,
``export_error``).
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from typing import Any

from serving_shim._internal import events as ev
from serving_shim._internal.config import ShimConfigError
from serving_shim._internal.limits import SCHEMA_VERSION
from serving_shim._internal.metrics import ShimMetrics
from serving_shim._internal.redaction import TOKEN_RE, Redactor
from serving_shim._internal.sinks import Batch, ExportResult, Sink
from serving_shim._internal.windows import ClosedWindow

__all__ = ["EventExporter"]

log = logging.getLogger("driftline.shim")


class EventExporter:
    """Builds one model version's events and exports them through ``sink``; ``source`` names the replica."""

    def __init__(self, sink: Sink, *, model: str, version: str, window_s: int, source: str, redactor: Redactor,
                 metrics: ShimMetrics) -> None:
        self.sink = sink
        self.model, self.version, self.window_s, self.source = model, version, window_s, source
        self._redactor = redactor
        self._metrics = metrics

    # -- the processor's interface -----------------------------------------------------------
    def export(self, items: list[Any], *, timeout: float) -> bool:
        """Build and send the events of ``items``; False when a batch failed (it and the rest are dropped)."""
        batches = self._build(items)
        for i, batch in enumerate(batches):
            if not self._send(batch, timeout):  # this batch and the other kinds of the same items are dropped
                self._metrics.drop("export_error", sum(len(b.events) for b in batches[i:]))
                return False
        return True

    def export_windows(self, windows: list[ClosedWindow], *, timeout: float) -> bool:
        """Send closed metric windows; False when the sink failed (the caller keeps them to send again)."""
        return all(self._send(batch, timeout) for batch in self._build_windows(windows))

    def flush(self, timeout: float) -> bool:
        return self.sink.flush(timeout)

    def shutdown(self, timeout: float) -> None:
        self.sink.shutdown(timeout=timeout)

    def _send(self, batch: Batch, timeout: float) -> bool:
        t0 = time.perf_counter()
        try:
            res = self.sink.export(batch, timeout=timeout)
        except Exception as exc:  # noqa: BLE001 - a sink that raises counts as a failed export
            log.warning("sink export raised %s", type(exc).__name__)
            res = ExportResult.FAILURE
        dt = time.perf_counter() - t0
        if res is ExportResult.SUCCESS:
            self._metrics.exported_batch(batch.kind, len(batch.events), dt)
            return True
        self._metrics.failed_batch(dt)
        return False

    # -- building events ---------------------------------------------------------------------
    def _build_windows(self, windows: list[ClosedWindow]) -> list[Batch]:
        out = []
        for w in windows:
            ws = ev.utc(w.start)
            key = (self.source, self.model, self.version, ws.isoformat()) + ((w.part,) if w.part else ())
            out.append({
                "schema_version": SCHEMA_VERSION, "model": self.model, "model_version": self.version,
                "event_id": ev.event_id("w", *key),
                "window_start": ws, "window_s": self.window_s, "source": self.source, "requests": w.requests,
                "errors": self._error_counts(w.errors), "latency_buckets": w.buckets,
                "latency_sum_ms": w.latency_sum_ms,
            })
        return self._validated("metric_window", out)

    def _error_counts(self, errors: dict[str, int]) -> dict[str, int]:
        out: dict[str, int] = {}
        for k, c in errors.items():
            try:
                name = ev.safe_name(self._redactor.error_type(k))
            except Exception:  # noqa: BLE001 - a type that breaks redaction is counted under a placeholder
                name = "redaction_error"
            out[name] = out.get(name, 0) + c
        return out

    def _build(self, items: list[Any]) -> list[Batch]:
        by_kind: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self._redactor.prefetch_values(m for item in items if item[0] == "prediction" for m in (item[3], item[8]))
        for item in items:
            try:
                by_kind[item[0]].append(self._event(item))
            except Exception as exc:  # noqa: BLE001 - a value that breaks redaction is dropped, never logged
                self._metrics.drop("redaction_error")
                log.warning("event dropped: redaction failed (%s)", type(exc).__name__)
        return [b for kind, evs in by_kind.items() for b in self._validated(kind, evs)]

    def _event(self, item: tuple[Any, ...]) -> dict[str, Any]:
        kind, now = item[0], item[1]
        base = {"schema_version": SCHEMA_VERSION, "model": self.model, "ts": ev.utc(now)}
        red = self._redactor
        if kind == "prediction":
            _, _, rid, features, prediction, latency_ms, status, error_type, slices, subject = item
            ok = status == "ok"
            out = {**base, "event_id": ev.event_id("p", self.model, self.version, rid, repr(now)),
                   "model_version": self.version, "request_id": rid,
                   "features": {ev.safe_name(k, "feature"): ev.clip(ev.number(v))
                                for k, v in red.apply(features).items()},
                   "prediction": self._prediction(prediction),
                   "slices": {ev.safe_name(k, "slice"): ev.clip(str(v)) for k, v in red.apply(slices).items()}
                   if slices else {},
                   "status": "ok" if ok else "error"}
            lat = ev.number(latency_ms)
            if isinstance(lat, float) and lat >= 0:
                out["latency_ms"] = lat
            if not ok:
                out["error_type"] = ev.safe_name(red.error_type(error_type or "error"))
            if subject is not None:
                out["subject"] = self._subject(subject)
            return out
        if kind == "label":
            _, _, rid, label, value, subject = item
            return {**base, "event_id": ev.event_id("l", self.model, rid, label, value, repr(now)), "request_id": rid,
                    **({"label": ev.clip(red.label(str(label)))} if label is not None else {}),
                    **({"value": ev.number(value)} if value is not None else {}),
                    **({"subject": self._subject(subject)} if subject is not None else {})}
        _, _, annotations = item
        return {**base, "event_id": ev.event_id("d", self.model, self.version, repr(now)),
                "model_version": self.version,
                "annotations": {ev.safe_name(k): ev.clip(v) for k, v in red.annotations(annotations).items()}}

    def _subject(self, subject: str) -> str:
        """The subject's salted hash (a hash made upstream passes); no salt: the event cannot be sent (it is
        dropped as ``redaction_error``, never sent raw)."""
        if TOKEN_RE.fullmatch(subject):
            return subject
        if not self._redactor.cfg.salt:
            raise ShimConfigError("a subject needs Redaction(salt=...) to be hashed")
        return self._redactor.hash(subject)

    def _prediction(self, prediction: Any) -> dict[str, Any]:
        """The contract's prediction object, its label and class names through the ``label`` policy."""
        p = ev.normalize_prediction(prediction)
        red = self._redactor
        if p.get("label"):
            p["label"] = ev.clip(red.label(p["label"]))
        if p.get("probabilities"):
            p["probabilities"] = {ev.safe_name(red.label(k), "class"): v for k, v in p["probabilities"].items()}
        return p

    def _validated(self, kind: str, events: list[dict[str, Any]]) -> list[Batch]:
        if not events:
            return []
        from serving_shim.contract import validate_events  # pydantic: imported by the worker, not at import

        good, errors = validate_events(kind, events, window=None)  # the time window is the server's rule
        if errors:
            self._metrics.drop("invalid", len(errors))
            log.warning("%d %s events dropped as invalid (fields: %s)", len(errors), kind,
                        sorted({e.field for e in errors}))
        return [Batch(kind, self.model, tuple(good))] if good else []
