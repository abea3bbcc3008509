"""The audit log: who changed what, when, from what to what. Append-only.

Every change to SLO specs, detector configuration and thresholds, silences, API keys, references,
retention and subject deletions is one row of ``audit_log`` (migration ``governance#1``): the time,
the actor (``key:<key_id>`` for an API key, ``local`` for an unauthenticated loopback request under
``--open-localhost``, ``cli:<user>`` for a CLI command), the action (``silence.create``...), the target
(what was changed: a silence id, a key id, a table, a subject hash), the model it concerns ('' for
none) and the state before and after, as JSON.

- Append-only: :func:`record` inserts; nothing in Driftline edits or deletes a row, and the API has no
  route that could (``GET /v1/audit`` only). The table has its own retention (two years by default,
  ``driftline retention set audit_log DAYS``), separate from the event tables'.
- Secrets never go in: :func:`scrub` replaces the values of secret-like keys (key hashes, webhook
  secrets, passwords, tokens, salts, URLs of webhooks) and API keys found in any string.
"""

from __future__ import annotations

import datetime as _dt
import getpass
import json
import re
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from collector.sql import SQL, join, sql
from collector.store import Store

__all__ = ["record", "record_if_changed", "query", "scrub", "cli_actor", "principal_actor", "REDACTED"]

REDACTED = "<redacted>"

#: keys whose values are secrets wherever they appear in a before/after document
_SECRET_KEY = re.compile(r"(?i)(^key$|hash|secret|passw|token|salt|routing_key|webhook_url|^api_key$|credential)")
#: an API key inside any string: its id stays, its secret goes
_API_KEY = re.compile(r"\bdl_([0-9a-f]{1,64})_[A-Za-z0-9_-]{1,128}")
_MAX_DOC = 64 * 1024


def scrub(doc: Any) -> Any:
    """``doc`` with every secret replaced by ``<redacted>`` (a copy; plain JSON types out)."""
    if isinstance(doc, Mapping):
        return {str(k): (REDACTED if _SECRET_KEY.search(str(k)) and v not in (None, "") else scrub(v))
                for k, v in doc.items()}
    if isinstance(doc, (list, tuple, set, frozenset)):
        return [scrub(v) for v in doc]
    if isinstance(doc, str):
        return _API_KEY.sub(lambda m: f"dl_{m.group(1)}_{REDACTED}", doc)
    if isinstance(doc, (_dt.datetime, _dt.date)):
        return doc.isoformat()
    if doc is None or isinstance(doc, (bool, int, float)):
        return doc
    return scrub(str(doc))


def _json(doc: Any) -> str:
    if doc is None:
        return ""
    text = json.dumps(scrub(doc), sort_keys=True, ensure_ascii=False, default=str)
    if len(text) > _MAX_DOC:  # a huge spec file: its size and digest, not a row of megabytes
        import hashlib

        return json.dumps({"truncated": True, "chars": len(text),
                           "sha256": hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()})
    return text


def cli_actor() -> str:
    """The actor of a CLI command: ``cli:<login name>``."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no login name (a container without a passwd entry)
        user = "unknown"
    return f"cli:{user}"


def principal_actor(principal: Any) -> str:
    """The actor of an API request: ``key:<key_id>`` (``local`` for an open-localhost request)."""
    key_id = getattr(principal, "key_id", None) or "unknown"
    return "local" if key_id == "local" else f"key:{key_id}"


def record(store: Store, *, actor: str, action: str, target: str, model: str = "", before: Any = None,
           after: Any = None, at: _dt.datetime | None = None) -> str:
    """Append one entry; returns its id. ``before``/``after`` are JSON-able documents (None: none)."""
    if not actor or not action:
        raise ValueError("audit: actor and action are required")
    entry_id = uuid.uuid4().hex
    store.insert("audit_log", {
        "ts": [at or _dt.datetime.now(_dt.UTC)], "id": [entry_id], "actor": [actor], "action": [action],
        "target": [str(target)], "model": [model or ""], "before": [_json(before)], "after": [_json(after)],
    })
    return entry_id


def record_if_changed(store: Store, *, actor: str, action: str, target: str, after: Any, model: str = "") -> bool:
    """For configuration read at start (SLO spec files, detector settings): record ``after`` when it differs
    from the ``after`` of the last entry of this action and target (the before is that entry's after)."""
    rows = store.rows(sql("SELECT after FROM {db}.audit_log WHERE action = %(a)s AND target = %(t)s "
                          "ORDER BY ts DESC, id LIMIT 1", a=action, t=target))
    text = _json(after)
    last = rows[0]["after"] if rows else None
    if last == text:
        return False
    record(store, actor=actor, action=action, target=target, model=model,
           before=_doc(last) if last else None, after=after)
    return True


def _doc(text: str) -> Any:
    return json.loads(text) if text else None


def query(store: Store, *, since: _dt.datetime | None = None, until: _dt.datetime | None = None,
          actor: str | None = None, action: str | None = None, target: str | None = None,
          model: str | None = None, models: Sequence[str] = (), limit: int = 1000) -> list[dict[str, Any]]:
    """Entries, newest first. ``action`` ending in ``.`` or ``*`` is a prefix (``silence.``); ``models``
    is the caller's scope (empty: every entry; else only entries of those models)."""
    conds: list[SQL] = [sql("1")]
    if since is not None:
        conds.append(sql("ts >= %(t)s", t=since))
    if until is not None:
        conds.append(sql("ts < %(t)s", t=until))
    if actor:
        conds.append(sql("actor = %(a)s", a=actor))
    if action:
        if action.endswith(("*", ".")):
            conds.append(sql("startsWith(action, %(a)s)", a=action.rstrip("*")))
        else:
            conds.append(sql("action = %(a)s", a=action))
    if target:
        conds.append(sql("target = %(t)s", t=target))
    if model:
        conds.append(sql("model = %(m)s", m=model))
    if models:
        conds.append(sql("has(%(ms)s, model)", ms=list(models)))
    rows = store.rows(sql("SELECT ts, id, actor, action, target, model, before, after FROM {db}.audit_log "
                          "WHERE %(w)s ORDER BY ts DESC, id LIMIT %(n)s", w=join(" AND ", conds), n=int(limit)))
    for r in rows:
        r["ts"] = r["ts"].astimezone(_dt.UTC).isoformat() if r["ts"].tzinfo else r["ts"].isoformat() + "+00:00"
        r["before"], r["after"] = _doc(r["before"]), _doc(r["after"])
    return rows
