"""Where exported batches go, behind one small protocol (``export``, ``flush``, ``shutdown``).

- :class:`KafkaSink` (scale mode): one compressed Kafka message per batch, keyed by model.
- :class:`HttpSink` (embedded mode): one POST per batch to the ingest API.
- :class:`InMemorySink`: keeps the batches, for users' own tests.

Sinks are called from the background worker only. ``export`` never raises: it answers
:attr:`ExportResult.SUCCESS` or :attr:`ExportResult.FAILURE`, and the worker counts the outcome.
"""

from __future__ import annotations

import enum
import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

__all__ = ["Batch", "ExportResult", "Sink", "KafkaSink", "HttpSink", "InMemorySink"]

log = logging.getLogger("driftline.shim")


@dataclass(frozen=True, slots=True)
class Batch:
    """Events of one kind and one model, already redacted and validated (contract models)."""

    kind: str
    model: str
    events: tuple[Any, ...]


class ExportResult(enum.Enum):
    SUCCESS = "success"
    FAILURE = "failure"


@runtime_checkable
class Sink(Protocol):
    def export(self, batch: Batch, *, timeout: float) -> ExportResult: ...

    def flush(self, timeout: float) -> bool: ...

    def shutdown(self, timeout: float = 5.0) -> None: ...


class InMemorySink:
    """Keeps every exported batch in memory (thread-safe): assert on :meth:`events` in tests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._batches: list[Batch] = []
        self.is_shutdown = False

    def export(self, batch: Batch, *, timeout: float = 0.0) -> ExportResult:
        if self.is_shutdown:
            return ExportResult.FAILURE
        with self._lock:
            self._batches.append(batch)
        return ExportResult.SUCCESS

    def batches(self) -> list[Batch]:
        with self._lock:
            return list(self._batches)

    def events(self, kind: str | None = None) -> list[Any]:
        return [e for b in self.batches() if kind is None or b.kind == kind for e in b.events]

    def clear(self) -> None:
        with self._lock:
            self._batches.clear()

    def flush(self, timeout: float = 0.0) -> bool:
        return True

    def shutdown(self, timeout: float = 5.0) -> None:
        self.is_shutdown = True


class KafkaSink:
    """Produces each batch as one lz4-compressed message keyed by model and waits for the ack.

    The producer is created lazily on the worker (its constructor talks to the broker), recreated
    in a forked child, and tuned so a dead broker costs bounded time and memory: ``max_block_ms``,
    ``bootstrap_timeout_ms`` and ``delivery_timeout_ms`` follow the export timeout (kafka-python 3
    has no ``buffer_memory``: as each export waits for its ack and a failed one ends the worker's
    round, the producer holds at most a batch or two until they expire), and reconnection backs
    off at most ``reconnect_backoff_max_ms``. After ``recreate_after_failures`` failed exports in a row
    the producer is closed (its pending records aborted) and a fresh one bootstraps on the next
    export: kafka-python 3.0 was seen to keep failing on stale metadata after a broker restart, and
    its network thread to spin (holding the GIL, so slowing the model server's threads) on
    leaderless partitions while the broker is away; a new producer does neither.
    """

    def __init__(
        self,
        bootstrap_servers: str | Sequence[str],
        *,
        topic_prefix: str = "driftline",
        reconnect_backoff_max_ms: int = 1000,
        recreate_after_failures: int = 1,
        **producer_config: Any,
    ) -> None:
        from serving_shim._internal.extras import installed, missing_extra

        for module in ("kafka", "lz4"):  # at construction, not on the worker's first export
            if not installed(module):
                raise missing_extra("kafka", "KafkaSink", module)
        self.bootstrap_servers = bootstrap_servers
        self.topic_prefix = topic_prefix
        self._config = {"reconnect_backoff_max_ms": reconnect_backoff_max_ms, **producer_config}
        self.recreate_after_failures = recreate_after_failures
        self._failures = 0
        self._transport: Any = None
        self._orphans: list[Any] = []
        self._pid = os.getpid()

    def _ensure(self, timeout: float) -> Any:
        if self._transport is not None and self._pid == os.getpid():
            return self._transport
        from serving_shim.transport import KafkaTransport

        if not self._reachable(timeout):
            raise ConnectionError("no bootstrap server answers")
        if self._transport is not None:  # a forked child: the parent's producer is not ours to close
            self._orphan(self._transport)
        self._pid = os.getpid()
        ms = max(1, int(timeout * 1000))
        cfg = {"max_block_ms": ms, "request_timeout_ms": ms, "delivery_timeout_ms": ms + 1000, "linger_ms": 0,
               "bootstrap_timeout_ms": ms,
               **self._config}
        self._transport = KafkaTransport(self.bootstrap_servers, topic_prefix=self.topic_prefix, **cfg)
        return self._transport

    def _reachable(self, timeout: float) -> bool:
        """A plain TCP probe before building a producer: kafka-python's constructor, failing
        against a dead broker, leaves sockets behind; the probe closes its own."""
        import socket

        servers = self.bootstrap_servers
        for server in servers.split(",") if isinstance(servers, str) else servers:
            host, _, port = server.strip().rpartition(":")
            try:
                with socket.create_connection((host.strip("[]") or "localhost", int(port)), timeout=min(timeout, 1.0)):
                    return True
            except (OSError, ValueError):
                continue
        return False

    def _orphan(self, t: Any) -> None:
        # Its sender thread was not copied by fork: closing it here (atexit, or __del__) could wait
        # on records that will never complete. Keep it referenced and drop its atexit hook.
        self._orphans.append(t)
        try:
            t._producer._unregister_cleanup()
        except Exception:  # noqa: BLE001 - best effort on a private hook of kafka-python
            pass

    def export(self, batch: Batch, *, timeout: float = 5.0) -> ExportResult:
        try:
            fut = self._ensure(timeout).send(batch.kind, list(batch.events), key=batch.model)
            fut.get(timeout=timeout)
        except Exception as exc:  # noqa: BLE001 - any failure is a failed export, counted by the worker
            log.warning("kafka export of %d %s events failed: %s", len(batch.events), batch.kind, type(exc).__name__)
            self._failures += 1
            if self._failures >= self.recreate_after_failures:
                self._discard()  # a fresh producer re-bootstraps once the broker is back
            return ExportResult.FAILURE
        self._failures = 0
        return ExportResult.SUCCESS

    def _discard(self) -> None:
        t, self._transport, self._failures = self._transport, None, 0
        if t is not None and self._pid == os.getpid():
            self._close(t, 0.0)

    def _close(self, t: Any, timeout: float) -> None:
        # kafka-python 3.0's close() first flushes, and raises (leaving its sender thread, which may
        # spin on leaderless partitions, and its sockets) while records are pending: then force the
        # sender to abort them and close again. Pending records were already counted as failed.
        producer = t._producer
        try:
            producer.close(timeout=timeout)
            return
        except Exception as exc:  # noqa: BLE001
            log.info("kafka producer close with pending records (%s): forcing", type(exc).__name__)
        sender = getattr(producer, "_sender", None)
        if sender is not None:
            sender.force_close()
            sender.join(max(1.0, timeout))
        try:
            producer.close(timeout=0)
        except Exception as exc:  # noqa: BLE001
            log.warning("kafka producer close failed: %s", type(exc).__name__)

    def flush(self, timeout: float = 5.0) -> bool:
        if self._transport is None or self._pid != os.getpid():
            return True
        try:
            self._transport.flush(timeout=timeout)
        except Exception:  # noqa: BLE001
            return False
        return True

    def shutdown(self, timeout: float = 5.0) -> None:
        if self._transport is not None:
            if self._pid == os.getpid():
                self._close(self._transport, timeout)
            else:
                self._orphan(self._transport)
        self._transport = None


class HttpSink:
    """Posts each batch to a Driftline ingest API (``driftline serve``) on one pooled ``httpx.Client``.

    Unreachable, 401/403 and 5xx answers are failures (the processor retries windows and counts dropped
    payloads); a per-event verdict (200 with rejections, 422) and 400/413 are final and not retried.
    ``transport=`` (e.g. ``httpx.MockTransport(handler)``) or ``client=`` replace the network, for tests
    or your own TLS and proxy settings."""

    def __init__(self, base_url: str, *, api_key: str | None = None, transport: Any = None,
                 client: Any = None) -> None:
        from serving_shim.transport import HttpTransport

        self.base_url = base_url
        self.api_key = api_key
        self._http = HttpTransport(base_url, api_key=api_key, transport=transport, client=client)

    def export(self, batch: Batch, *, timeout: float = 5.0) -> ExportResult:
        from serving_shim.transport import TransportError

        try:
            res = self._http.send(batch.kind, list(batch.events), timeout=timeout)
        except TransportError as exc:
            if exc.status in (400, 413):  # the batch itself is refused: sending it again cannot help
                log.warning("ingest API refused a batch of %d %s events (HTTP %s); dropped", len(batch.events),
                            batch.kind, exc.status)
                return ExportResult.SUCCESS
            log.warning("http export of %d %s events failed: %s", len(batch.events), batch.kind,
                        str(exc).split(":", 1)[0])
            return ExportResult.FAILURE
        if res.rejected:  # a per-event verdict is final: the server keeps them as dead letters, no retry
            log.warning("ingest API rejected %d of %d %s events (fields: %s)", len(res.rejected), len(batch.events),
                        batch.kind, sorted({str(r.get("field")) for r in res.rejected}))
        return ExportResult.SUCCESS

    def flush(self, timeout: float = 5.0) -> bool:
        return True

    def shutdown(self, timeout: float = 5.0) -> None:
        self._http.close(timeout)
