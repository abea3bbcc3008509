"""The dashboard's only way to Driftline: the query API over HTTP (never the store's files).

Exceptions::

    ApiError            the API answered with an error status (4xx, 5xx)
    └── ApiUnreachable  no answer at all (connection refused, timeout, DNS)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

__all__ = ["ApiConfig", "ApiError", "ApiUnreachable", "request"]

DEFAULT_API = "http://127.0.0.1:8000"


class ApiError(Exception):
    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class ApiUnreachable(ApiError):
    pass


@dataclass(frozen=True, kw_only=True)
class ApiConfig:
    """Where the API is and how to authenticate: ``DRIFTLINE_API``, ``DRIFTLINE_API_KEY`` (sent as
    ``X-API-Key``, or the header named by ``DRIFTLINE_API_KEY_HEADER``), read when the page runs."""

    base_url: str = DEFAULT_API
    api_key: str = ""
    key_header: str = "X-API-Key"
    timeout_s: float = 20.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ApiConfig:
        env = os.environ if environ is None else environ
        return cls(base_url=(env.get("DRIFTLINE_API") or DEFAULT_API).rstrip("/"),
                   api_key=env.get("DRIFTLINE_API_KEY", ""),
                   key_header=env.get("DRIFTLINE_API_KEY_HEADER") or "X-API-Key")

    def headers(self) -> dict[str, str]:
        return {self.key_header: self.api_key} if self.api_key else {}


def request(cfg: ApiConfig, method: str, path: str, params: Mapping[str, Any] | None = None,
            json: Any = None) -> Any:
    """One call to the API; the decoded JSON body, or :class:`ApiError` / :class:`ApiUnreachable`."""
    url = f"{cfg.base_url}{path}"
    try:
        r = httpx.request(method, url, params=dict(params or {}), json=json, headers=cfg.headers(),
                          timeout=cfg.timeout_s)
    except httpx.TransportError as exc:
        raise ApiUnreachable(f"{type(exc).__name__}: {exc}") from None
    if r.status_code >= 400:
        try:
            detail = r.json().get("detail", r.text)
        except ValueError:
            detail = r.text
        raise ApiError(f"{method} {path}: HTTP {r.status_code}: {detail}", r.status_code)
    return r.json() if r.content else None
