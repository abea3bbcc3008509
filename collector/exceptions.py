"""Exceptions of the collector package.

    DriftlineStoreError
    ├── StoreUnavailable        the store cannot be reached (retry with backoff)
    ├── StoreVersionError       a ClickHouse server older than Driftline supports
    ├── StoreLockedError        a chDB path is owned by another process
    └── QueryError              the SQL failed (a bug or bad parameters, not a transient fault)
"""

from __future__ import annotations


class DriftlineStoreError(Exception):
    """Base of all store errors."""


class StoreUnavailable(DriftlineStoreError):
    """The store cannot be reached right now; the operation may be retried."""


class StoreVersionError(DriftlineStoreError):
    """The ClickHouse server is older than the minimum Driftline supports."""


class StoreLockedError(DriftlineStoreError):
    """Another process owns this chDB path."""


class QueryError(DriftlineStoreError):
    """A statement failed."""
