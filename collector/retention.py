"""Retention per table, applied as the table's ClickHouse TTL (``driftline retention``, ``/v1/retention``).

The TTL in the store is the one truth: :func:`retention` reads it back from ``system.tables`` (what is
kept for how long), :func:`set_retention` changes it with ``ALTER TABLE ... MODIFY TTL`` (``REMOVE TTL``
for 0 days: kept forever). Both are plain ALTERs on the table's metadata, so they are safe beside the
numbered migrations: the migrations create tables with ``IF NOT EXISTS`` and never touch a TTL again,
and a change survives restarts and re-runs of ``driftline migrate``. Rows older than a shortened
retention go when ClickHouse materializes the new TTL (at once on chDB, whose ALTERs are synchronous; in
the background on a server). Each change is an audit entry (``retention.set``, before and after).

Checked on chDB 4.4 (ClickHouse 26.9): MODIFY TTL and REMOVE TTL on MergeTree and ReplacingMergeTree.
ClickHouse servers have MODIFY TTL since 19.6 (the 18.16 of Debian's package has none; Driftline refuses
servers older than 24.1 anyway).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from collector.audit import record
from collector.sql import ident, sql
from collector.store import Store

__all__ = ["TABLES", "ALIASES", "MAX_DAYS", "MIN_DAYS", "retention", "set_retention", "table_name"]

#: The tables whose retention is configurable, with the time column their TTL counts from. The audit
#: log is here too: its retention is its own (two years by default, one at the least), set apart from the
#: event tables'.
TABLES: Mapping[str, str] = {
    "predictions": "ts", "labels": "ts", "metric_windows": "window_start", "deploys": "ts",
    "dead_letters_v2": "received_at", "detector_results": "window_start", "slo_deliveries": "ts",
    "audit_log": "ts", "reference_samples": "built_at",   # the raw rows kept of uploaded baselines (multivariate)
}
#: names users know (the dead letters are read through the ``dead_letters`` view of ``dead_letters_v2``)
ALIASES: Mapping[str, str] = {"dead_letters": "dead_letters_v2"}
MAX_DAYS = 36_500
#: a floor per table: the audit log cannot be cut short through the API (it would erase the trail of the change)
MIN_DAYS: Mapping[str, int] = {"audit_log": 365}

_TTL_DAYS = re.compile(r"\bTTL\s+(?:toDateTime\((\w+)\)|(\w+))\s*\+\s*toIntervalDay\((\d+)\)")


def table_name(table: str) -> str:
    """The stored table for a user's name (``dead_letters`` is ``dead_letters_v2``); ValueError if unknown."""
    name = ALIASES.get(table, table)
    if name not in TABLES:
        known = sorted({*TABLES, *ALIASES} - set(ALIASES.values()))
        raise ValueError(f"table: {table!r} has no configurable retention (one of {', '.join(known)})")
    return name


def retention(store: Store) -> list[dict[str, Any]]:
    """Each configurable table with its retention in days (None: kept forever) and its time column."""
    rows = store.rows(sql("SELECT name, engine_full FROM system.tables WHERE database = %(d)s AND has(%(t)s, name) "
                          "ORDER BY name", d=store.database, t=list(TABLES)))
    shown = {v: k for k, v in ALIASES.items()}
    out = []
    for r in rows:
        m = _TTL_DAYS.search(r["engine_full"] or "")
        out.append({"table": shown.get(r["name"], r["name"]), "stored_as": r["name"],
                    "time_column": TABLES[r["name"]], "days": int(m.group(3)) if m else None})
    return out


def set_retention(store: Store, table: str, days: int, *, actor: str) -> dict[str, Any]:
    """Keep ``days`` days of ``table`` (0: forever); audited as ``retention.set``. Returns the new state."""
    name = table_name(table)
    if isinstance(days, bool) or not isinstance(days, int) or not 0 <= days <= MAX_DAYS:
        raise ValueError(f"days: must be a whole number from 0 (keep forever) to {MAX_DAYS}, got {days!r}")
    if days and days < MIN_DAYS.get(name, 1):
        raise ValueError(f"days: {table} keeps at least {MIN_DAYS[name]} days (or 0: forever), got {days}")
    before = next((r for r in retention(store) if r["stored_as"] == name), None)
    if before is None:
        raise ValueError(f"table: {table!r} does not exist in this store")
    if days:
        store.execute(sql("ALTER TABLE {db}.%(t)s MODIFY TTL toDateTime(%(c)s) + INTERVAL %(d)s DAY",
                          t=ident(name, "table"), c=ident(TABLES[name], "column"), d=days))
    elif before["days"] is not None:
        store.execute(sql("ALTER TABLE {db}.%(t)s REMOVE TTL", t=ident(name, "table")))
    after = next(r for r in retention(store) if r["stored_as"] == name)
    record(store, actor=actor, action="retention.set", target=before["table"],
           before={"days": before["days"]}, after={"days": after["days"]})
    return after
