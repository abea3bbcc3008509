"""API keys: hashed at rest, scoped to read / write / admin and optionally to models.

A key looks like ``dl_<key_id>_<secret>``; only ``sha256(secret)`` is stored. ``admin`` implies
``write`` implies ``read``. Every request carries ``X-API-Key`` (or ``Authorization: Bearer``),
except, when the operator asks for it (``--open-localhost``), requests from the loopback address
to an embedded-mode server. Who may call which route is decided in :mod:`collector.authz`.

Lookups are remembered for a few seconds in a bounded LRU (hits and misses alike), so neither a hot
ingest path nor a stream of bogus keys grows memory; a key of the wrong shape or length is refused
before any lookup.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import hmac
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from collector.audit import record
from collector.schema import API_KEYS
from collector.sql import sql
from collector.store import Store

__all__ = ["Principal", "KeyStore", "SCOPES", "LOCAL_PRINCIPAL"]

SCOPES = ("read", "write", "admin")
_KEY = re.compile(r"dl_([0-9a-f]{1,64})_([A-Za-z0-9_-]{1,128})")
_RANK = {s: i for i, s in enumerate(SCOPES)}


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


def _one(models: Sequence[str]) -> str:
    """The model of an audit entry: the one model of a key scoped to exactly one ('' otherwise)."""
    return models[0] if len(models) == 1 else ""


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class KeyStore:
    """Keys in the ``api_keys`` table, with a short cache so a hot ingest path does not query per request.

    The cache holds at most ``cache_entries`` lookups (least recently used dropped first), each for
    ``cache_s`` seconds; keys longer than ``max_key_chars`` are refused without a lookup."""

    def __init__(self, store: Store, cache_s: float = 5.0, *, cache_entries: int = 4096,
                 max_key_chars: int = 256) -> None:
        self.store = store
        self.cache_s = cache_s
        self.cache_entries = cache_entries
        self.max_key_chars = max_key_chars
        self._cache: OrderedDict[str, tuple[float, dict[str, Any] | None]] = OrderedDict()
        self._lock = threading.Lock()

    def create(self, *, scope: str, name: str = "", models: tuple[str, ...] = (), actor: str = "system") -> str:
        """Create a key and return it; this is the only time the secret is seen. Audited as ``key.create``
        by ``actor`` (``system``: code of the server itself; never with its secret or hash)."""
        if scope not in SCOPES:
            raise ValueError(f"scope: must be one of {', '.join(SCOPES)}, got {scope!r}")
        key_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        self._write(key_id, _hash(secret), name, scope, list(models), revoked=0)
        record(self.store, actor=actor, action="key.create", target=key_id, model=_one(models),
               after={"key_id": key_id, "name": name, "scope": scope, "models": list(models), "revoked": False})
        return f"dl_{key_id}_{secret}"

    def _write(self, key_id: str, key_hash: str, name: str, scope: str, models: list[str], revoked: int) -> None:
        now = _dt.datetime.now(_dt.UTC)
        self.store.insert(API_KEYS, {
            "key_id": [key_id], "key_hash": [key_hash], "name": [name], "scope": [scope], "models": [models],
            "created_at": [now], "revoked": [revoked], "version": [time.time_ns()],
        })
        with self._lock:
            self._cache.pop(key_id, None)

    def revoke(self, key_id: str, *, actor: str = "system") -> bool:
        """Revoke a key (audited as ``key.revoke`` by ``actor``); False when there is no such key."""
        row = self._row(key_id, cached=False)
        if row is None:
            return False
        self._write(key_id, row["key_hash"], row["name"], row["scope"], list(row["models"]), revoked=1)
        state = {"key_id": key_id, "name": row["name"], "scope": row["scope"], "models": list(row["models"])}
        record(self.store, actor=actor, action="key.revoke", target=key_id, model=_one(row["models"]),
               before={**state, "revoked": bool(row["revoked"])}, after={**state, "revoked": True})
        return True

    def list(self) -> list[dict[str, Any]]:
        return self.store.rows(sql("SELECT key_id, name, scope, models, created_at, revoked FROM {db}.api_keys FINAL "
                                   "ORDER BY created_at"))

    def has_admin(self) -> bool:
        return bool(self.store.scalar(sql(
            "SELECT count() FROM {db}.api_keys FINAL WHERE scope = 'admin' AND revoked = 0")))

    def _row(self, key_id: str, cached: bool = True) -> dict[str, Any] | None:
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(key_id)
            if cached and hit and now - hit[0] < self.cache_s:
                self._cache.move_to_end(key_id)
                return hit[1]
        rows = self.store.rows(sql("SELECT key_id, key_hash, name, scope, models, revoked FROM {db}.api_keys FINAL "
                                   "WHERE key_id = %(k)s", k=key_id))
        row = rows[0] if rows else None
        with self._lock:
            self._cache[key_id] = (now, row)
            self._cache.move_to_end(key_id)
            while len(self._cache) > self.cache_entries:
                self._cache.popitem(last=False)
        return row

    def verify(self, key: str) -> Principal | None:
        if len(key) > self.max_key_chars:
            return None
        m = _KEY.fullmatch(key)
        if m is None:
            return None
        row = self._row(m.group(1))
        if row is None or row["revoked"] or not hmac.compare_digest(row["key_hash"], _hash(m.group(2))):
            return None
        return Principal(row["key_id"], row["name"], row["scope"], tuple(row["models"]))
