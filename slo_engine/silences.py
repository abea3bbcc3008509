"""Silences in the store: create (matchers, start, end or duration, who, why), list, expire.

A silence matches an alert when every matcher equals the alert's attribute (``slo``, ``model``,
``model_version``, ``severity``). Expiring rewrites the silence's end to now (ReplacingMergeTree row).
"""

from __future__ import annotations

import datetime as _dt
import uuid
from collections.abc import Mapping

from collector.audit import record
from collector.schema import SLO_SILENCES
from collector.sql import sql
from collector.store import Store
from serving_shim.contract import as_utc
from slo_engine.exceptions import SilenceError
from slo_engine.router import SILENCE_MATCHERS, Silence

__all__ = ["create_silence", "expire_silence", "list_silences", "silence_models"]



def ms_precision(t: _dt.datetime) -> _dt.datetime:
    """``t`` cut to the millisecond (what the store keeps), so a time read back compares equal."""
    return t.replace(microsecond=t.microsecond // 1000 * 1000)


def _write(store: Store, s: Silence, now: _dt.datetime) -> None:
    store.insert(SLO_SILENCES, {
        "id": [s.id], "matchers": [dict(s.matchers)], "starts_at": [s.starts_at], "ends_at": [s.ends_at],
        "created_by": [s.created_by], "comment": [s.comment], "updated_at": [now],
    })


def create_silence(store: Store, matchers: Mapping[str, str], *, now: _dt.datetime,
                   ends_at: _dt.datetime | None = None, duration_s: int | None = None,
                   starts_at: _dt.datetime | None = None, created_by: str = "", comment: str = "",
                   actor: str = "system") -> Silence:
    """Store a new silence. Give ``ends_at`` or ``duration_s`` (from ``starts_at``, default now).
    Audited as ``silence.create`` by ``actor``."""
    if not matchers:
        raise SilenceError("a silence needs at least one matcher (slo, model, model_version, severity)")
    bad = sorted(set(matchers) - set(SILENCE_MATCHERS))
    if bad:
        raise SilenceError(f"unknown matcher {', '.join(bad)} (use {', '.join(SILENCE_MATCHERS)})")
    if "severity" in matchers and matchers["severity"] not in ("page", "ticket"):
        raise SilenceError("severity must be page or ticket")
    now = ms_precision(as_utc(now))
    start = ms_precision(as_utc(starts_at)) if starts_at else now
    if (ends_at is None) == (duration_s is None):
        raise SilenceError("give exactly one of ends_at and duration")
    end = ms_precision(as_utc(ends_at)) if ends_at else start + _dt.timedelta(seconds=int(duration_s or 0))
    if end <= start:
        raise SilenceError(f"the silence ends ({end.isoformat()}) before it starts ({start.isoformat()})")
    if end <= now:
        raise SilenceError("the silence would already be over")
    s = Silence(id=uuid.uuid4().hex[:16], matchers={k: str(v) for k, v in matchers.items()}, starts_at=start,
                ends_at=end, created_by=created_by, comment=comment)
    _write(store, s, now)
    record(store, actor=actor, action="silence.create", target=s.id, model=s.matchers.get("model", ""),
           after=_doc(s), at=now)
    return s


def _doc(s: Silence) -> dict[str, object]:
    return {"id": s.id, "matchers": dict(s.matchers), "starts_at": s.starts_at, "ends_at": s.ends_at,
            "created_by": s.created_by, "comment": s.comment}


def list_silences(store: Store, *, now: _dt.datetime | None = None, include_expired: bool = False) -> list[Silence]:
    where = sql("") if include_expired or now is None else sql("WHERE ends_at > %(now)s", now=now)
    rows = store.rows(sql("SELECT id, matchers, starts_at, ends_at, created_by, comment FROM {db}.slo_silences FINAL "
                          "%(where)s ORDER BY starts_at, id", where=where))
    return [Silence(id=r["id"], matchers=dict(r["matchers"]), starts_at=as_utc(r["starts_at"]),
                    ends_at=as_utc(r["ends_at"]), created_by=r["created_by"], comment=r["comment"]) for r in rows]


def expire_silence(store: Store, silence_id: str, *, now: _dt.datetime, actor: str = "system") -> Silence:
    """End a silence now (audited as ``silence.expire`` by ``actor``; one already over is left as it is)."""
    now = ms_precision(as_utc(now))
    found = [s for s in list_silences(store, include_expired=True) if s.id == silence_id]
    if not found:
        raise SilenceError(f"no silence {silence_id!r}")
    s = found[0]
    if s.ends_at <= now:
        return s
    before = _doc(s)
    s = Silence(id=s.id, matchers=s.matchers, starts_at=min(s.starts_at, now), ends_at=now,
                created_by=s.created_by, comment=s.comment)
    _write(store, s, now + _dt.timedelta(milliseconds=1))
    record(store, actor=actor, action="silence.expire", target=s.id, model=s.matchers.get("model", ""),
           before=before, after=_doc(s), at=now)
    return s


def silence_models(store: Store, silence_id: str) -> tuple[str, ...] | None:
    """The model a silence matches (``()``: it matches every model), or None when there is no such silence."""
    rows = store.rows(sql("SELECT matchers FROM {db}.slo_silences FINAL WHERE id = %(id)s", id=silence_id))
    if not rows:
        return None
    model = dict(rows[0]["matchers"]).get("model")
    return (model,) if model else ()
