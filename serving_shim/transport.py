"""Moving batches of contract events: Kafka (scale mode) and HTTP (embedded mode).

One Kafka message carries one batch (an envelope of events of one kind), keyed by model so a
model's events stay ordered in one partition, and compressed by the producer (lz4).
One HTTP post carries one batch to the ingest API, on a pooled ``httpx.Client`` (transport injectable).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from serving_shim._internal.extras import require
from serving_shim.codec import encode_batch
from serving_shim.contract import KINDS
from serving_shim.exceptions import TransportError

__all__ = ["topic_for", "KafkaTransport", "HttpTransport", "IngestResult", "TransportError", "PATH_FOR_KIND"]

PATH_FOR_KIND = {
    "prediction": "predictions",
    "label": "labels",
    "metric_window": "metric-windows",
    "deploy": "deploys",
}


def topic_for(kind: str, prefix: str = "driftline") -> str:
    if kind not in KINDS:
        raise ValueError(f"kind: unknown event kind {kind!r}")
    return f"{prefix}.{kind}"


class KafkaTransport:
    """kafka-python producer of event batches.

    ``send`` may block up to ``max_block_ms`` when the broker is away: call it from a background
    worker, never from a model server's request thread.
    """

    def __init__(
        self,
        bootstrap_servers: str | Sequence[str],
        *,
        topic_prefix: str = "driftline",
        compression_type: str = "lz4",
        acks: str | int = "all",
        linger_ms: int = 20,
        max_block_ms: int = 5000,
        request_timeout_ms: int = 10000,
        **producer_config: Any,
    ) -> None:
        KafkaProducer = require("kafka", "kafka", "KafkaTransport").KafkaProducer
        if compression_type == "lz4":
            require("lz4", "kafka", "lz4 compression")

        self.topic_prefix = topic_prefix
        self._producer = KafkaProducer(
            bootstrap_servers=bootstrap_servers,
            compression_type=compression_type,
            acks=acks,
            linger_ms=linger_ms,
            max_block_ms=max_block_ms,
            request_timeout_ms=request_timeout_ms,
            max_request_size=8 * 1024 * 1024,
            **producer_config,
        )

    def send(self, kind: str, events: Sequence[Any], *, key: str | None = None) -> Any:
        """Queue one batch; returns kafka-python's future (``.get(timeout)`` waits for the ack)."""
        if not events:
            raise ValueError("events: empty batch")
        if key is None:
            first = events[0]
            key = first["model"] if isinstance(first, dict) else first.model
        return self._producer.send(topic_for(kind, self.topic_prefix), key=key.encode(),
                                   value=encode_batch(kind, list(events)))

    def send_raw(self, kind: str, value: bytes | None, *, key: bytes | None = None) -> Any:
        return self._producer.send(topic_for(kind, self.topic_prefix), key=key, value=value)

    def flush(self, timeout: float | None = None) -> None:
        self._producer.flush(timeout=timeout)

    def close(self, timeout: float | None = 5.0) -> None:
        self._producer.close(timeout=timeout)


@dataclass(frozen=True)
class IngestResult:
    accepted: int
    rejected: list[dict[str, Any]] = field(default_factory=list)


class HttpTransport:
    """Posts event batches to a Driftline ingest API (``driftline serve``) on one pooled ``httpx.Client``.

    The client (keep-alive connections) is built on first use and again in a forked child (a parent's
    pooled sockets are not the child's to use). Pass ``transport=`` (e.g. ``httpx.MockTransport`` in
    tests) or a whole ``client=`` of your own (its base URL, proxies and TLS settings are then yours; this
    transport does not close it). ``timeout`` bounds each request (connect, read, write, pool).
    """

    def __init__(self, base_url: str, *, api_key: str | None = None, timeout: float = 5.0,
                 transport: Any = None, client: Any = None) -> None:
        if transport is not None and client is not None:
            raise ValueError("transport: give a transport or a client, not both")
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.timeout = timeout
        self._transport = transport
        self._given = client
        self._client: Any = client
        self._pid = os.getpid()

    def _http(self) -> Any:
        if self._client is not None and (self._given is not None or self._pid == os.getpid()):
            return self._client
        import httpx

        headers = {"Content-Type": "application/json", **({"X-API-Key": self.api_key} if self.api_key else {})}
        self._client = httpx.Client(headers=headers, transport=self._transport, timeout=self.timeout,
                                    follow_redirects=False)
        self._pid = os.getpid()
        return self._client

    def send(self, kind: str, events: Sequence[Any], *, timeout: float | None = None) -> IngestResult:
        """Post one batch; the server's verdict per event, or :class:`TransportError` (``status`` set when it
        answered, ``None`` when it could not be reached)."""
        import httpx

        body = encode_batch(kind, list(events))
        url = f"{self.base_url}/v1/{PATH_FOR_KIND[kind]}"
        headers = None
        if self._given is not None:  # a caller's client: our headers on the request
            headers = {"Content-Type": "application/json", **({"X-API-Key": self.api_key} if self.api_key else {})}
        try:
            resp = self._http().post(url, content=body, headers=headers,
                                     timeout=self.timeout if timeout is None else timeout)
            raw = resp.read()
        except httpx.HTTPError as exc:
            raise TransportError(f"ingest API at {self.base_url} unreachable: {type(exc).__name__}") from None
        if resp.status_code >= 300:
            detail = raw[:2000].decode("utf-8", "replace")
            if resp.status_code == 422:
                try:
                    d = json.loads(detail)
                    return IngestResult(int(d.get("accepted", 0)), list(d.get("rejected", [])))
                except (ValueError, AttributeError):
                    pass
            raise TransportError(f"ingest API answered {resp.status_code}: {detail}", status=resp.status_code)
        try:
            out = json.loads(raw or b"{}")
            return IngestResult(int(out.get("accepted", 0)), list(out.get("rejected", [])))
        except (ValueError, AttributeError, TypeError):
            raise TransportError(f"ingest API answered {resp.status_code} with a body that is not its verdict",
                                 status=resp.status_code) from None

    def close(self, timeout: float | None = None) -> None:
        if self._client is not None and self._given is None and self._pid == os.getpid():
            self._client.close()
        self._client = None if self._given is None else self._client
