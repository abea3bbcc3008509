"""Moving batches of contract events: Kafka (scale mode) and HTTP (embedded mode).

One Kafka message carries one batch (an envelope of events of one kind), keyed by model so a
model's events stay ordered in one partition, and compressed by the producer (lz4).
One HTTP post carries one batch to the ingest API.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

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
        from kafka import KafkaProducer  # type: ignore[import-untyped]

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
        return self._producer.send(topic_for(kind, self.topic_prefix), key=key.encode(), value=encode_batch(kind, list(events)))

    def send_raw(self, kind: str, value: bytes, *, key: bytes | None = None) -> Any:
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
    """Posts event batches to a Driftline ingest API (``driftline serve``)."""

    def __init__(self, base_url: str, *, api_key: str | None = None, timeout: float = 5.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.timeout = timeout

    def send(self, kind: str, events: Sequence[Any]) -> IngestResult:
        body = encode_batch(kind, list(events))
        req = urllib.request.Request(
            f"{self.base_url}/v1/{PATH_FOR_KIND[kind]}",
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", **({"X-API-Key": self.api_key} if self.api_key else {})},
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                out = json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as exc:
            detail = exc.read()[:2000].decode("utf-8", "replace")
            if exc.code == 422:
                try:
                    d = json.loads(detail)
                    return IngestResult(int(d.get("accepted", 0)), list(d.get("rejected", [])))
                except (ValueError, AttributeError):
                    pass
            raise TransportError(f"ingest API answered {exc.code}: {detail}", status=exc.code) from None
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            raise TransportError(f"ingest API at {self.base_url} unreachable: {exc}") from None
        return IngestResult(int(out.get("accepted", 0)), list(out.get("rejected", [])))

    def close(self, timeout: float | None = None) -> None:
        return None
