"""Exceptions of the serving shim, in one place.

::

    Exception
     └── ShimError
          ├── ShimConfigError (ValueError)  a setting is invalid; raised at construction only
          ├── ContractError (ValueError)    a whole batch could not be read (envelope, kind, JSON)
          │    └── BatchTooLarge               it holds more events (or bytes) than the reader allows
          └── TransportError                a batch could not be delivered (the raw transports)

The hot path (``Monitor.log`` and friends) raises none of them: bad arguments, full queues and
dead sinks are counted as drops by reason (``Monitor.metrics()``).
"""

from __future__ import annotations

__all__ = ["ShimError", "ShimConfigError", "ContractError", "BatchTooLarge", "TransportError"]


class ShimError(Exception):
    """Base of the serving shim's exceptions."""


class ShimConfigError(ShimError, ValueError):
    """A setting of the shim is invalid (raised at construction, never on the hot path)."""


class ContractError(ShimError, ValueError):
    """A whole batch could not be read (bad envelope, unknown kind, not JSON)."""


class BatchTooLarge(ContractError):
    """A batch holds more events (or bytes) than the reader allows (HTTP 413); found while reading it."""


class TransportError(ShimError):
    """A batch could not be delivered (the caller decides whether to retry or drop).

    ``status`` is the HTTP status when the server answered (None when it could not be reached)."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status
