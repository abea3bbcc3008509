"""Driftline serving shim: the SDK a model server calls.

Three lines in a model server::

    from serving_shim import Monitor, HttpSink
    monitor = Monitor(model="credit-risk", version="v2", sink=HttpSink("http://127.0.0.1:8000"), sample_rate=0.1)
    monitor.log(request_id, features, prediction, latency_ms=12.5)

Every request is counted into per-interval metric windows (exact SLIs); payloads are sampled by a
hash of ``request_id`` (errors always kept), redacted (:class:`Redaction`, Presidio) and exported
by a background worker to a :class:`Sink` (Kafka, HTTP, in memory). The caller never blocks.
The event contract lives in :mod:`serving_shim.contract`, its wire codec in :mod:`serving_shim.codec`,
the raw transports in
:mod:`serving_shim.transport`, the exceptions in :mod:`serving_shim.exceptions`; everything under
``serving_shim._internal`` is private.
"""

import typing as _typing

from serving_shim._internal.config import BatchConfig, Policy, Redaction
from serving_shim._internal.entities import DEFAULT_ENTITIES
from serving_shim.exceptions import ShimConfigError, ShimError

if _typing.TYPE_CHECKING:
    from serving_shim._internal.integrations import DriftlineMiddleware, MonitoredModel
    from serving_shim._internal.metrics import MetricsSnapshot
    from serving_shim._internal.monitor import Monitor
    from serving_shim._internal.sampling import is_sampled
    from serving_shim._internal.sinks import Batch, ExportResult, HttpSink, InMemorySink, KafkaSink, Sink

__all__ = [
    "Monitor",
    "Redaction",
    "Policy",
    "DEFAULT_ENTITIES",
    "BatchConfig",
    "Sink",
    "Batch",
    "ExportResult",
    "KafkaSink",
    "HttpSink",
    "InMemorySink",
    "DriftlineMiddleware",
    "MonitoredModel",
    "MetricsSnapshot",
    "is_sampled",
    "ShimError",
    "ShimConfigError",
]

#: the rest is imported on first use (PEP 562), so ``import serving_shim`` stays cheap in a model server
_LAZY = {
    "Monitor": "monitor", "MetricsSnapshot": "metrics", "is_sampled": "sampling",
    "DriftlineMiddleware": "integrations", "MonitoredModel": "integrations",
    **dict.fromkeys(("Sink", "Batch", "ExportResult", "KafkaSink", "HttpSink", "InMemorySink"), "sinks"),
}


def __getattr__(name: str) -> _typing.Any:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'serving_shim' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f"serving_shim._internal.{mod}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
