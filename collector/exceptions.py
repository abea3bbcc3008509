"""Exceptions of the collector package, and the one table that sorts a store's failures.

    DriftlineStoreError
    ├── StoreUnavailable        the store cannot do it now (unreachable, closed, overloaded, out of disk):
    │                           retry with backoff; nothing is lost meanwhile
    ├── StoreRejected           the store refuses the rows themselves (a value the column cannot hold):
    │                           retrying cannot help; the rows become dead letters with the reason
    ├── QueryError              a bug: the statement is wrong (unknown table or column, syntax): neither
    │                           retried nor dead-lettered, it propagates
    ├── StoreVersionError       a ClickHouse server older than Driftline supports
    └── StoreLockedError        a chDB path is owned by another process

Both engines raise these three classes from :func:`store_error` (ClickHouse's error codes are the
same in chDB and in a server), so a retry decision made on one engine holds on the other.
"""

from __future__ import annotations

import re

__all__ = ["DriftlineStoreError", "StoreUnavailable", "StoreRejected", "QueryError", "StoreVersionError",
           "StoreLockedError", "store_error"]


class DriftlineStoreError(Exception):
    """Base of all store errors."""


class StoreUnavailable(DriftlineStoreError):
    """The store cannot be reached or cannot take the statement right now; the operation may be retried."""


class StoreRejected(DriftlineStoreError):
    """The store refuses the rows (a value a column cannot hold, a constraint): the same rows will be refused again."""


class QueryError(DriftlineStoreError):
    """A statement failed for a reason of its own (a bug or bad parameters): retrying or dead-lettering cannot help."""


class StoreVersionError(DriftlineStoreError):
    """The ClickHouse server is older than the minimum Driftline supports."""


class StoreLockedError(DriftlineStoreError):
    """Another process owns this chDB path."""


# ClickHouse error codes (src/Common/ErrorCodes.cpp), the same in chDB and in a server.
#: the server (or the embedded engine) cannot take it now: retry
UNAVAILABLE_CODES = frozenset({
    3,      # UNEXPECTED_END_OF_FILE (a connection cut mid-stream)
    159,    # TIMEOUT_EXCEEDED
    164,    # READONLY
    173,    # CANNOT_ALLOCATE_MEMORY
    202,    # TOO_MANY_SIMULTANEOUS_QUERIES
    203,    # NO_FREE_CONNECTION
    209,    # SOCKET_TIMEOUT
    210,    # NETWORK_ERROR
    236,    # ABORTED
    241,    # MEMORY_LIMIT_EXCEEDED
    242,    # TABLE_IS_READ_ONLY
    243,    # NOT_ENOUGH_SPACE
    252,    # TOO_MANY_PARTS
    285,    # TOO_FEW_LIVE_REPLICAS
    319,    # UNKNOWN_STATUS_OF_INSERT
    394,    # QUERY_WAS_CANCELLED
    425,    # SYSTEM_ERROR
    439,    # CANNOT_SCHEDULE_TASK
    999,    # KEEPER_EXCEPTION
})
#: the rows themselves are refused: dead-letter them
REJECTED_CODES = frozenset({
    6,      # CANNOT_PARSE_TEXT
    27,     # CANNOT_PARSE_INPUT_ASSERTION_FAILED
    38,     # CANNOT_PARSE_DATE
    41,     # CANNOT_PARSE_DATETIME
    53,     # TYPE_MISMATCH
    69,     # ARGUMENT_OUT_OF_BOUND
    70,     # CANNOT_CONVERT_TYPE
    72,     # CANNOT_PARSE_NUMBER
    117,    # INCORRECT_DATA
    131,    # TOO_LARGE_STRING_SIZE
    321,    # VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE
    349,    # CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN
    469,    # VIOLATED_CONSTRAINT
})

_CODE = re.compile(r"Code:\s*(\d+)")


def store_error(code: int | None, message: str, statement: str = "") -> DriftlineStoreError:
    """The store error for a ClickHouse failure: ``code`` if known, else read from ``message``
    (``Code: NNN.``, as both engines print it). Unknown codes are bugs (:class:`QueryError`)."""
    if code is None:
        m = _CODE.search(message)
        code = int(m.group(1)) if m else None
    text = message.strip()[:2000] + (f"\n-- in: {statement[:500]}" if statement else "")
    if code in UNAVAILABLE_CODES:
        return StoreUnavailable(text)
    if code in REJECTED_CODES:
        return StoreRejected(text)
    return QueryError(text)
