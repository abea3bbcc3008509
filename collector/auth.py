"""API keys: hashed at rest, scoped to read / write / admin and optionally to models.

A key looks like ``dl_<key_id>_<secret>``; only ``sha256(secret)`` is stored. ``admin`` implies
``write`` implies ``read``. Every request carries ``X-API-Key`` (or ``Authorization: Bearer``),
except, when the operator asks for it (``--open-localhost``), requests from the loopback address
to an embedded-mode server.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import hmac
import ipaddress
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any

from fastapi import HTTPException, Request

from collector.store import Store

__all__ = ["Principal", "KeyStore", "SCOPES", "AuthPolicy", "LOCAL_PRINCIPAL"]

SCOPES = ("read", "write", "admin")
INGEST_PATHS = frozenset({"/v1/predictions", "/v1/labels", "/v1/metric-windows", "/v1/deploys"})
_RANK = {s: i for i, s in enumerate(SCOPES)}
_KINDS = {"key_id": "str", "key_hash": "str", "name": "str", "scope": "str", "models": "arr_s",
          "created_at": "ts", "revoked": "u8", "version": "u64"}


@dataclass(frozen=True)
class Principal:
    key_id: str
    name: str
    scope: str
    models: tuple[str, ...]  # empty: every model

    def can(self, scope: str) -> bool:
        return _RANK[self.scope] >= _RANK[scope]

    def allows_model(self, model: str) -> bool:
        return not self.models or model in self.models


LOCAL_PRINCIPAL = Principal("local", "localhost (no key)", "admin", ())


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class KeyStore:
    """Keys in the ``api_keys`` table, with a short cache so a hot ingest path does not query per request."""

    def __init__(self, store: Store, cache_s: float = 5.0) -> None:
        self.store = store
        self.cache_s = cache_s
        self._cache: dict[str, tuple[float, dict[str, Any] | None]] = {}
        self._lock = threading.Lock()

    def create(self, *, scope: str, name: str = "", models: tuple[str, ...] = ()) -> str:
        """Create a key and return it; this is the only time the secret is seen."""
        if scope not in SCOPES:
            raise ValueError(f"scope: must be one of {', '.join(SCOPES)}, got {scope!r}")
        key_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        self._write(key_id, _hash(secret), name, scope, list(models), revoked=0)
        return f"dl_{key_id}_{secret}"

    def _write(self, key_id: str, key_hash: str, name: str, scope: str, models: list[str], revoked: int) -> None:
        now = _dt.datetime.now(_dt.UTC)
        self.store.insert("api_keys", {
            "key_id": [key_id], "key_hash": [key_hash], "name": [name], "scope": [scope], "models": [models],
            "created_at": [now], "revoked": [revoked], "version": [time.time_ns()],
        }, _KINDS)
        with self._lock:
            self._cache.pop(key_id, None)

    def revoke(self, key_id: str) -> bool:
        row = self._row(key_id, cached=False)
        if row is None:
            return False
        self._write(key_id, row["key_hash"], row["name"], row["scope"], list(row["models"]), revoked=1)
        return True

    def list(self) -> list[dict[str, Any]]:
        return self.store.rows("SELECT key_id, name, scope, models, created_at, revoked FROM {db}.api_keys FINAL "
                               "ORDER BY created_at")

    def has_admin(self) -> bool:
        return bool(self.store.scalar("SELECT count() FROM {db}.api_keys FINAL WHERE scope = 'admin' AND revoked = 0"))

    def _row(self, key_id: str, cached: bool = True) -> dict[str, Any] | None:
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(key_id)
        if cached and hit and now - hit[0] < self.cache_s:
            return hit[1]
        rows = self.store.rows("SELECT key_id, key_hash, name, scope, models, revoked FROM {db}.api_keys FINAL "
                               "WHERE key_id = %(k)s", {"k": key_id})
        row = rows[0] if rows else None
        with self._lock:
            self._cache[key_id] = (now, row)
        return row

    def verify(self, key: str) -> Principal | None:
        parts = key.split("_", 2)
        if len(parts) != 3 or parts[0] != "dl" or not parts[1] or not parts[2]:
            return None
        row = self._row(parts[1])
        if row is None or row["revoked"] or not hmac.compare_digest(row["key_hash"], _hash(parts[2])):
            return None
        return Principal(row["key_id"], row["name"], row["scope"], tuple(row["models"]))


def _is_loopback(host: str | None) -> bool:
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class AuthPolicy:
    """FastAPI dependency: who is calling, and may they (GET needs read, other methods write)."""

    def __init__(self, keys: KeyStore, *, open_localhost: bool = False) -> None:
        self.keys = keys
        self.open_localhost = open_localhost

    def __call__(self, request: Request) -> Principal:
        key = request.headers.get("x-api-key")
        auth = request.headers.get("authorization", "")
        if not key and auth.lower().startswith("bearer "):
            key = auth[7:].strip()
        if key:
            principal = self.keys.verify(key)
            if principal is None:
                raise HTTPException(401, "api key: unknown or revoked key")
        elif self.open_localhost and _is_loopback(request.client.host if request.client else None):
            principal = LOCAL_PRINCIPAL
        else:
            raise HTTPException(401, "api key: missing (send X-API-Key; an admin creates keys with POST /v1/keys or `driftline keys create`)",
                                headers={"WWW-Authenticate": "Bearer"})
        need = "read" if request.method in ("GET", "HEAD", "OPTIONS") else "write"
        if request.url.path.startswith("/v1/keys"):
            need = "admin"
        if not principal.can(need):
            raise HTTPException(403, f"api key: scope {principal.scope!r} cannot {need} (needs {need!r} or higher)")
        model = request.query_params.get("model")
        if model and not principal.allows_model(model):
            raise HTTPException(403, f"model: this key is not allowed to read model {model!r}")
        if principal.models and not model:
            # a model-scoped key sees its models only: ingest checks each event's model; anything else
            # (listings across models, runs, references, silences) needs ?model= naming one of its models
            if need != "write" or request.url.path not in INGEST_PATHS:
                raise HTTPException(403, "model: this key is limited to models "
                                         f"{', '.join(principal.models)}; name one with ?model=")
        request.state.principal = principal
        return principal
