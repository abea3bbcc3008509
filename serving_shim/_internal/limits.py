"""The contract's version and limits as plain constants, so the SDK's hot modules read them without
importing the models (pydantic). Their public home is :mod:`serving_shim.contract`."""

from __future__ import annotations

SCHEMA_VERSION = 1
SUPPORTED_SCHEMA_VERSIONS = (1,)
#: Upper bounds (ms, inclusive) of the latency histogram buckets; one overflow bucket follows.
LATENCY_BUCKETS_MS: tuple[float, ...] = (
    1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000,
)
KINDS = ("prediction", "label", "metric_window", "deploy")

MAX_FEATURES = 1000
MAX_CLASSES = 1000
MAX_SLICES = 64
MAX_ANNOTATIONS = 64
MAX_ERROR_TYPES = 64
#: requests (and error and bucket counts) of one metric window from one replica: 10 billion is ~2.8M
#: requests a second for an hour; sums over a year of windows stay exact in a double
MAX_COUNT = 10**10
MAX_NAME_LEN = 128
MAX_STRING_LEN = 8192
#: events in one batch (an HTTP body or a Kafka message), unless the reader allows another number
MAX_BATCH_EVENTS = 10_000
