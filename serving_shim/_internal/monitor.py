"""``Monitor``: what a model server holds, one per model (and so one sampling rate per model).

The caller's thread does the least (see ARCHITECTURE.md, hot-path rules): count the request into
the current metric window under a short lock, decide sampling from a hash of ``request_id``
(errors always kept), and append the sampled payload (a shallow copy) to the bounded queue.
Redaction, validation, serialisation and I/O happen on the worker of the batch processor, in the
monitor's exporter (:mod:`serving_shim._internal.exporter`).
"""

from __future__ import annotations

import contextvars
import os
import time
import weakref
from typing import Any

from serving_shim._internal import events as ev
from serving_shim._internal.config import BatchConfig, Redaction, ShimConfigError
from serving_shim._internal.exporter import EventExporter
from serving_shim._internal.metrics import MetricsSnapshot, ShimMetrics, register_prometheus
from serving_shim._internal.processor import BatchProcessor
from serving_shim._internal.redaction import Redactor
from serving_shim._internal.sampling import sample_key, threshold_for
from serving_shim._internal.sinks import Sink
from serving_shim._internal.windows import WindowCounter

__all__ = ["Monitor", "COUNTED_BY"]

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
        deploy_on_start: bool = False,
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
        self.source = source or _replica()
        self.redaction = redaction or Redaction()
        self._redactor = Redactor(self.redaction)
        self._metrics = ShimMetrics()
        cfg = batch or BatchConfig()
        self._windows = WindowCounter(self.window_s, self._metrics, max_closed=cfg.max_pending_windows)
        self._exporter = EventExporter(sink, model=model, version=version, window_s=self.window_s, source=self.source,
                                       redactor=self._redactor, metrics=self._metrics)
        self._processor = BatchProcessor(self._exporter, windows=self._windows, config=cfg, metrics=self._metrics,
                                         name=f"driftline-shim-{model}")
        ref = weakref.WeakMethod(self._after_fork)
        os.register_at_fork(after_in_child=lambda: (m := ref()) is not None and m())
        self.registry = register_prometheus(self, registry)
        if deploy_on_start:   # the version this replica serves (a deploy marker; the CLI's deploys outrank it)
            self.log_deploy({"source": "sdk"})

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
            self._windows.count(now, latency_ms, None if ok else error_type or "error",
                                counted=COUNTED_BY.get() is not self, sampled=keep)
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
        self._windows.count(time.time(), latency_ms, error_type, counted=True, sampled=False)

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

    # -- control -----------------------------------------------------------------------------
    def metrics(self) -> MetricsSnapshot:
        """The shim's own counters (requests, sampled, dropped by reason, exported, queue depth...)."""
        return self._metrics.snapshot()

    def flush(self, timeout: float | None = None) -> bool:
        """Close the open metric window and export everything queued; True when done in time."""
        self._windows.close_now()
        return self._processor.force_flush(timeout)

    def shutdown(self, timeout: float | None = None) -> None:
        """Export what is left (within ``timeout``), then stop; later calls are counted as drops."""
        self._processor.shutdown(timeout)

    def __enter__(self) -> Monitor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    def _after_fork(self) -> None:
        self._windows.reset(time.time())  # the parent exports what it counted
        if self._given_source:
            self.source = f"{self._given_source}/{os.getpid()}"
        else:
            self.source = _replica()
        self._exporter.source = self.source


def _replica() -> str:
    """This process's name as a metric-window ``source``: host, pid and a random suffix (a reused pid)."""
    import socket  # here, not at import: ``import serving_shim`` stays cheap

    return f"{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}"
