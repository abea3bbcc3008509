"""``Monitor``: what a model server holds, one per model (and so one sampling rate per model).

The caller's thread does the least (see ARCHITECTURE.md, hot-path rules): count the request into
the current metric window under a short lock, decide sampling from a hash of ``request_id``
(errors always kept), and append the sampled payload (a shallow copy) to the bounded queue.
Redaction, validation, serialisation and I/O happen on the worker of the batch processor.
"""

from __future__ import annotations

import contextvars
import logging
import os
import socket
import threading
import time
import uuid
import weakref
from bisect import bisect_left
from collections import defaultdict
from typing import Any

from serving_shim._internal import events as ev
from serving_shim._internal.config import BatchConfig, Redaction, ShimConfigError
from serving_shim._internal.metrics import MetricsSnapshot, ShimMetrics, register_prometheus
from serving_shim._internal.processor import BatchProcessor
from serving_shim._internal.redaction import TOKEN_RE, Redactor
from serving_shim._internal.sampling import sample_key, threshold_for
from serving_shim._internal.sinks import Batch, Sink
from serving_shim.contract import LATENCY_BUCKETS_MS, SCHEMA_VERSION, validate_events

__all__ = ["Monitor", "COUNTED_BY"]

log = logging.getLogger("driftline.shim")
_SPACE = 1 << 64
#: Set by the ASGI middleware while it handles a request: that monitor counts the request itself,
#: so a ``log()`` inside the endpoint only samples the payload.
COUNTED_BY: contextvars.ContextVar[Any] = contextvars.ContextVar("driftline_counted_by", default=None)


class Monitor:
    """Counts every request, samples payloads, redacts and exports them in the background.

    ``Monitor(model="credit-risk", version="v2", sink=HttpSink("http://127.0.0.1:8000"))``, then
    ``monitor.log(request_id, features, prediction, latency_ms=..., status=...)`` per request.
    """

    def __init__(
        self,
        *,
        model: str,
        version: str,
        sink: Sink,
        sample_rate: float = 1.0,
        redaction: Redaction | None = None,
        window_s: int = 10,
        batch: BatchConfig | None = None,
        source: str | None = None,
        registry: Any = None,
    ) -> None:
        if not ev.safe_name(model) == model or not ev.safe_name(version) == version:
            raise ShimConfigError("model and version must match [A-Za-z0-9_.:-/]+ and be at most 128 characters")
        if not 1 <= window_s <= 3600:
            raise ShimConfigError("window_s must be between 1 and 3600")
        self.model, self.version, self.window_s = model, version, int(window_s)
        self.sample_rate = sample_rate
        self._threshold = threshold_for(sample_rate)
        self._all = self._threshold >= _SPACE
        self._given_source = source
        self.source = source or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.redaction = redaction or Redaction()
        self._redactor = Redactor(self.redaction)
        self._metrics = ShimMetrics()
        self._lock = threading.Lock()
        self._open_window(time.time())
        self._processor = BatchProcessor(
            sink, prepare=self._prepare, windows=self._prepare_windows, tick=self._tick,
            config=batch or BatchConfig(), metrics=self._metrics, name=f"driftline-shim-{model}",
        )
        ref = weakref.WeakMethod(self._after_fork)
        os.register_at_fork(after_in_child=lambda: (m := ref()) is not None and m())
        self.registry = register_prometheus(self, registry)

    # -- hot path ----------------------------------------------------------------------------
    def log(
        self,
        request_id: str,
        features: Any,
        prediction: Any,
        *,
        latency_ms: float | None = None,
        status: str = "ok",
        error_type: str | None = None,
        slices: Any = None,
        subject: str | None = None,
    ) -> bool:
        """Count one request; queue its payload if sampled. Never blocks, never raises.

        ``subject``: the id of the person the request is about (a user or customer id), sent only as its
        hash with the redaction's salt (an event whose subject cannot be hashed, for want of a salt, is
        dropped as ``redaction_error``, never sent raw), so ``driftline subjects delete`` can find it.
        Returns True when the payload was queued for export.
        """
        try:
            now = time.time()
            ok = status == "ok"
            rid = request_id if type(request_id) is str else str(request_id)
            keep = not ok or self._all or sample_key(rid) < self._threshold
            counted = COUNTED_BY.get() is not self
            with self._lock:
                if now >= self._win_end:
                    self._rotate(now)
                m = self._metrics
                if counted:
                    m.requests += 1
                    self._n += 1
                    if latency_ms is not None and latency_ms >= 0:  # NaN and negatives are not latencies
                        self._buckets[bisect_left(LATENCY_BUCKETS_MS, latency_ms)] += 1
                        self._lat_sum += latency_ms
                    if not ok:
                        et = error_type or "error"
                        self._errors[et] = self._errors.get(et, 0) + 1
                if keep:
                    m.sampled += 1
            if not keep:
                return False
            item = ("prediction", now, rid, dict(features) if features is not None else {}, prediction,
                    latency_ms, status, error_type, dict(slices) if slices is not None else None,
                    None if subject is None else str(subject))
        except Exception:  # noqa: BLE001 - bad arguments are dropped and counted, never raised to the caller
            self._metrics.drop("invalid")
            return False
        return self._processor.submit(item)

    def count(self, *, latency_ms: float | None, error_type: str | None = None) -> None:
        """Count a request without a payload (the ASGI middleware does this for every request)."""
        now = time.time()
        with self._lock:
            if now >= self._win_end:
                self._rotate(now)
            self._metrics.requests += 1
            self._n += 1
            if latency_ms is not None and latency_ms >= 0:
                self._buckets[bisect_left(LATENCY_BUCKETS_MS, latency_ms)] += 1
                self._lat_sum += latency_ms
            if error_type is not None:
                self._errors[error_type] = self._errors.get(error_type, 0) + 1

    def sampled(self, request_id: str) -> bool:
        """The sampling decision for a successful request with this id (same in every process)."""
        return self._all or sample_key(str(request_id)) < self._threshold

    def log_label(self, request_id: str, *, label: str | None = None, value: float | None = None,
                  subject: str | None = None) -> bool:
        """Ground truth for an earlier request; sent only when that request is sampled (``subject`` as in
        :meth:`log`)."""
        if not self.sampled(request_id):
            return False
        return self._processor.submit(("label", time.time(), str(request_id), label, value,
                                       None if subject is None else str(subject)))

    def log_deploy(self, annotations: dict[str, str] | None = None) -> bool:
        """A deploy marker for this model version."""
        return self._processor.submit(("deploy", time.time(), dict(annotations or {})))

    # -- integrations (see serving_shim._internal.integrations) ------------------------------
    def track(self, request_id: str, features: Any, *, slices: Any = None) -> Any:
        """``with monitor.track(rid, x) as t: t.prediction = model(x)``: timed; errors logged, re-raised."""
        from serving_shim._internal.integrations import track

        return track(self, request_id, features, slices=slices)

    def instrument(self, fn: Any = None, *, request_id_arg: str = "request_id") -> Any:
        """Decorator for ``predict(features, ..., request_id=...)`` (with or without arguments)."""
        from serving_shim._internal.integrations import instrument

        deco = instrument(self, request_id_arg=request_id_arg)
        return deco(fn) if fn is not None else deco

    def wrap(self, model: Any, *, feature_names: list[str] | None = None) -> Any:
        """A scikit-learn-style model whose ``predict``/``predict_proba`` log one event per row."""
        from serving_shim._internal.integrations import MonitoredModel

        return MonitoredModel(model, self, feature_names=feature_names)

    # -- metric windows ----------------------------------------------------------------------
    def _open_window(self, now: float) -> None:
        start = now - now % self.window_s
        # a window closed early (flush) and reopened for the same interval is a new part: its own id
        self._part: int = self._part + 1 if start == getattr(self, "_win_start", None) else 0
        self._win_start, self._win_end = start, start + self.window_s
        self._n, self._lat_sum = 0, 0.0
        self._errors: dict[str, int] = {}
        self._buckets = [0] * (len(LATENCY_BUCKETS_MS) + 1)

    def _rotate(self, now: float) -> None:
        """Close the current window (under the lock) and hand it to the processor."""
        if self._n:
            self._processor.submit_window((self._win_start, self._part, self._n, self._errors, self._buckets,
                                           self._lat_sum))
        self._open_window(now)

    def _tick(self, force: bool = False) -> None:
        now = time.time()
        with self._lock:
            if force or now >= self._win_end:
                self._rotate(now)

    def _prepare_windows(self, windows: list[Any]) -> list[Batch]:
        out = []
        for start, part, n, errors, buckets, lat_sum in windows:
            ws = ev.utc(start)
            key = (self.source, self.model, self.version, ws.isoformat()) + ((part,) if part else ())
            out.append({
                "schema_version": SCHEMA_VERSION, "model": self.model, "model_version": self.version,
                "event_id": ev.event_id("w", *key),
                "window_start": ws, "window_s": self.window_s, "source": self.source, "requests": n,
                "errors": self._error_counts(errors), "latency_buckets": buckets,
                "latency_sum_ms": lat_sum,
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

    # -- worker side -------------------------------------------------------------------------
    def _prepare(self, items: list[Any]) -> list[Batch]:
        by_kind: dict[str, list[dict[str, Any]]] = defaultdict(list)
        try:  # free texts of the whole batch through the NER pipeline at once (nlp.pipe)
            red = self._redactor
            red.prefetch(t for item in items if item[0] == "prediction"
                         for t in (*red.text_values(item[3]), *red.text_values(item[8])))
        except Exception as exc:  # noqa: BLE001 - each event is then analysed (and may fail) on its own
            log.warning("batched redaction failed (%s)", type(exc).__name__)
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
        if kind == "prediction":
            _, _, rid, features, prediction, latency_ms, status, error_type, slices, subject = item
            ok = status == "ok"
            out = {**base, "event_id": ev.event_id("p", self.model, self.version, rid, repr(now)),
                   "model_version": self.version, "request_id": rid,
                   "features": {ev.safe_name(k, "feature"): ev.clip(ev.number(v))
                                for k, v in self._redactor.apply(features).items()},
                   "prediction": self._prediction(prediction),
                   "slices": {ev.safe_name(k, "slice"): ev.clip(str(v)) for k, v in self._redactor.apply(slices).items()}
                   if slices else {},
                   "status": "ok" if ok else "error"}
            lat = ev.number(latency_ms)
            if isinstance(lat, float) and lat >= 0:
                out["latency_ms"] = lat
            if not ok:
                out["error_type"] = ev.safe_name(self._redactor.error_type(error_type or "error"))
            if subject is not None:
                out["subject"] = self._subject(subject)
            return out
        if kind == "label":
            _, _, rid, label, value, subject = item
            return {**base, "event_id": ev.event_id("l", self.model, rid, label, value, repr(now)), "request_id": rid,
                    **({"label": ev.clip(self._redactor.label(str(label)))} if label is not None else {}),
                    **({"value": ev.number(value)} if value is not None else {}),
                    **({"subject": self._subject(subject)} if subject is not None else {})}
        _, _, annotations = item
        return {**base, "event_id": ev.event_id("d", self.model, self.version, repr(now)),
                "model_version": self.version,
                "annotations": {ev.safe_name(k): ev.clip(v) for k, v in self._redactor.annotations(annotations).items()}}

    def _subject(self, subject: str) -> str:
        """The subject's salted hash (a hash made upstream passes); no salt: the event cannot be sent."""
        if TOKEN_RE.fullmatch(subject):
            return subject
        if not self.redaction.salt:
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
        good, errors = validate_events(kind, events, window=None)  # the time window is the server's rule
        if errors:
            self._metrics.drop("invalid", len(errors))
            log.warning("%d %s events dropped as invalid (fields: %s)", len(errors), kind, sorted({e.field for e in errors}))
        return [Batch(kind, self.model, tuple(good))] if good else []

    # -- control -----------------------------------------------------------------------------
    def metrics(self) -> MetricsSnapshot:
        """The shim's own counters (requests, sampled, dropped by reason, exported, queue depth...)."""
        return self._metrics.snapshot()

    def flush(self, timeout: float | None = None) -> bool:
        """Close the open metric window and export everything queued; True when done in time."""
        self._tick(force=True)
        return self._processor.force_flush(timeout)

    def shutdown(self, timeout: float | None = None) -> None:
        """Export what is left (within ``timeout``), then stop; later calls are counted as drops."""
        self._processor.shutdown(timeout)

    def __enter__(self) -> Monitor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    def _after_fork(self) -> None:
        self._lock = threading.Lock()
        self._open_window(time.time())  # the parent exports what it counted
        if self._given_source:
            self.source = f"{self._given_source}/{os.getpid()}"
        else:
            self.source = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
