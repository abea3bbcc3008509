"""Ways into a :class:`Monitor` without writing ``log()`` calls: a context manager and decorator
that time a predict call and record errors, a plain-ASGI middleware, a scikit-learn wrapper."""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar, cast

from serving_shim._internal.monitor import COUNTED_BY, Monitor

__all__ = ["Tracked", "track", "instrument", "DriftlineMiddleware", "MonitoredModel"]

F = TypeVar("F", bound=Callable[..., Any])


class Tracked:
    """Yielded by :func:`track`: set ``prediction`` (and ``slices``) inside the block."""

    __slots__ = ("prediction", "slices")

    def __init__(self, slices: Mapping[str, str] | None) -> None:
        self.prediction: Any = None
        self.slices = slices


@contextmanager
def track(monitor: Monitor, request_id: str, features: Mapping[str, Any], *,
          slices: Mapping[str, str] | None = None) -> Iterator[Tracked]:
    """``with track(monitor, rid, x) as t: t.prediction = model(x)``; an exception is logged as an
    error (its class name is the error type) and raised again."""
    rec = Tracked(slices)
    t0 = time.perf_counter()
    try:
        yield rec
    except BaseException as exc:
        monitor.log(request_id, features, rec.prediction, latency_ms=(time.perf_counter() - t0) * 1000,
                    status="error", error_type=type(exc).__name__, slices=rec.slices)
        raise
    monitor.log(request_id, features, rec.prediction, latency_ms=(time.perf_counter() - t0) * 1000,
                slices=rec.slices)


def instrument(monitor: Monitor, *, request_id_arg: str = "request_id") -> Callable[[F], F]:
    """Decorate ``predict(features, ..., request_id=...)``: its first argument is the features
    mapping, its return value the prediction; a missing request id gets a random one."""

    def deco(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            features = args[0] if args and isinstance(args[0], Mapping) else {}
            rid = kwargs.get(request_id_arg) or uuid.uuid4().hex
            with track(monitor, rid, features) as t:
                t.prediction = fn(*args, **kwargs)
            return t.prediction

        return cast(F, wrapper)  # functools.wraps keeps fn's signature

    return deco


class DriftlineMiddleware:
    """Plain ASGI middleware: counts every HTTP request (latency; 5xx and exceptions as errors)
    into the monitor's metric windows. A ``monitor.log()`` inside the endpoint adds the payload
    without counting the request twice. ``app.add_middleware(DriftlineMiddleware, monitor=m)``."""

    def __init__(self, app: Any, *, monitor: Monitor, paths: tuple[str, ...] | None = None) -> None:
        self.app = app
        self.monitor = monitor
        self.paths = paths

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or (self.paths is not None and scope.get("path") not in self.paths):
            await self.app(scope, receive, send)
            return
        status = 500
        error: str | None = None

        async def send_status(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        token = COUNTED_BY.set(self.monitor)
        t0 = time.perf_counter()
        try:
            await self.app(scope, receive, send_status)
        except Exception as exc:
            error = type(exc).__name__
            raise
        finally:
            COUNTED_BY.reset(token)
            if error is None and status >= 500:
                error = f"http_{status}"
            self.monitor.count(latency_ms=(time.perf_counter() - t0) * 1000, error_type=error)


class MonitoredModel:
    """Wraps a scikit-learn-style model: ``predict``/``predict_proba`` log one event per row
    (latency = the call's time divided by the rows); everything else is the model's own."""

    def __init__(self, model: Any, monitor: Monitor, *, feature_names: list[str] | None = None) -> None:
        self.model = model
        self.monitor = monitor
        self.feature_names = feature_names

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)

    def _names(self, X: Any, width: int) -> list[str]:
        if self.feature_names is not None:
            return list(self.feature_names)
        if hasattr(X, "columns"):
            return [str(c) for c in X.columns]
        names = getattr(self.model, "feature_names_in_", None)
        return [str(n) for n in names] if names is not None else [f"f{i}" for i in range(width)]

    def _call(self, method: str, X: Any, request_ids: list[str] | None, to_pred: Callable[[Any], Any]) -> Any:
        rows = X.to_numpy() if hasattr(X, "to_numpy") else X
        n = len(rows)
        rids = list(request_ids) if request_ids is not None else [uuid.uuid4().hex for _ in range(n)]
        if len(rids) != n:
            raise ValueError(f"request_ids has {len(rids)} ids for {n} rows")
        t0 = time.perf_counter()
        try:
            out = getattr(self.model, method)(X)
        except Exception as exc:
            per_row = (time.perf_counter() - t0) * 1000 / max(n, 1)
            for rid in rids:
                self.monitor.log(rid, {}, None, latency_ms=per_row, status="error", error_type=type(exc).__name__)
            raise
        per_row = (time.perf_counter() - t0) * 1000 / max(n, 1)
        names = self._names(X, len(rows[0]) if n else 0)
        for rid, row, pred in zip(rids, rows, out, strict=True):
            self.monitor.log(rid, dict(zip(names, row, strict=False)), to_pred(pred), latency_ms=per_row)
        return out

    def predict(self, X: Any, *, request_ids: list[str] | None = None) -> Any:
        return self._call("predict", X, request_ids, lambda p: p)

    def predict_proba(self, X: Any, *, request_ids: list[str] | None = None) -> Any:
        classes = [str(c) for c in getattr(self.model, "classes_", [])]

        def to_pred(row: Any) -> Any:
            probs = [float(p) for p in row]
            if len(classes) != len(probs):
                return probs
            best = max(range(len(probs)), key=probs.__getitem__)
            return {"label": classes[best], "score": probs[best],
                    "probabilities": dict(zip(classes, probs, strict=True))}

        return self._call("predict_proba", X, request_ids, to_pred)
