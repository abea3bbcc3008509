"""What every ``driftline`` subcommand shares: where it works (``--store`` or ``--api``), calling a running
server's API, and turning expected errors into one line on stderr with exit status 1.

Lives in ``collector`` (the lowest package every CLI part may import) so ``slo_engine`` need not import
``driftline``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import Any

__all__ = ["api_call", "safe", "where_options"]

Command = Callable[[argparse.Namespace], int]


def where_options(p: argparse.ArgumentParser) -> None:
    """``--store PATH`` or ``--api URL`` (mutually exclusive), and ``--api-key`` for the latter."""
    g = p.add_mutually_exclusive_group()
    g.add_argument("--store", default=None, help="open the store directly (no server running on it)")
    g.add_argument("--api", default=None, help="a running server, like http://127.0.0.1:8000")
    p.add_argument("--api-key", default=None, help="sent as X-API-Key with --api (default $DRIFTLINE_API_KEY)")


def api_call(a: argparse.Namespace, method: str, path: str, *, params: dict[str, Any] | None = None,
             body: Any = None, timeout: float = 60.0) -> Any:
    """``method path`` on the server ``a.api``, with the key of ``--api-key`` or ``$DRIFTLINE_API_KEY`` if any;
    None params are left out. Returns the decoded JSON answer; an HTTP error status raises ValueError naming
    the request, the status and the start of the answer."""
    import httpx

    key = getattr(a, "api_key", None) or os.environ.get("DRIFTLINE_API_KEY", "")
    try:
        r = httpx.request(method, a.api.rstrip("/") + path,
                          params={k: v for k, v in (params or {}).items() if v is not None},
                          json=body, headers={"X-API-Key": key} if key else {}, timeout=timeout)
    except httpx.HTTPError as exc:
        raise ValueError(f"{method} {path}: {type(exc).__name__}: {exc}") from None
    if r.status_code >= 400:
        raise ValueError(f"{method} {path}: HTTP {r.status_code}: {r.text[:500]}")
    return r.json()


def safe(fn: Command, *errors: type[Exception]) -> Command:
    """``fn`` with ValueError and ``errors`` printed as ``driftline <command>: <error>`` (exit status 1)."""
    caught: tuple[type[Exception], ...] = (ValueError, *errors)

    def run(a: argparse.Namespace) -> int:
        try:
            return fn(a)
        except caught as exc:
            command = getattr(a, "command", None)
            print(f"driftline {command}: {exc}" if command else f"driftline: {exc}", file=sys.stderr)
            return 1
    return run
