"""``driftline audit``, ``driftline retention`` and ``driftline subjects``: registered by ``driftline.cli``.

Each opens the store (``--store``; no server may hold a chDB path at the same time) or calls a running
server (``--api URL``, with ``--api-key`` or ``$DRIFTLINE_API_KEY``, an admin key). Changes made on the store
directly are audited with the actor ``cli:<user>``; through the API, with the key's id.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import functools
import json
from collections.abc import Callable, Sequence
from typing import Any

from collector.cli_support import api_call, safe, where_options

__all__ = ["register"]

OpenStore = Callable[[str | None], Any]
_TIMEOUT_S = 600.0   # a subject delete or a retention change rewrites whole tables


def register(sub: Any, *, open_store: OpenStore) -> None:
    p = sub.add_parser("audit", help="the audit log: who changed what, when (newest first)")
    p.add_argument("--since", type=_time, default=None, help="ISO 8601 time (UTC if naive), or like 24h / 7d")
    p.add_argument("--actor", default=None, help="key:<key_id>, cli:<user>, local ...")
    p.add_argument("--action", default=None, help="like silence.create; ending in '.' or '*' matches a prefix")
    p.add_argument("--target", default=None)
    p.add_argument("--model", default=None)
    p.add_argument("--limit", type=int, default=100)
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    where_options(p)
    p.set_defaults(fn=safe(lambda a: _audit(a, open_store)))

    p = sub.add_parser("retention", help="how long each table keeps its rows; set one (applied as its TTL)")
    p.add_argument("action", choices=["show", "set"], nargs="?", default="show")
    p.add_argument("table", nargs="?")
    p.add_argument("days", nargs="?", type=int, help="days to keep (0: forever)")
    p.add_argument("--json", action="store_true")
    where_options(p)
    p.set_defaults(fn=safe(lambda a: _retention(a, open_store)))

    subj = sub.add_parser("subjects", help="data-protection requests about one subject (a user or customer id)")
    ss = subj.add_subparsers(dest="subjects_command", required=True)
    for name, text in (("delete", "delete every row tied to the subject (predictions, labels, dead letters)"),
                       ("export", "print every stored row tied to the subject (JSON)")):
        p = ss.add_parser(name, help=text)
        p.add_argument("subject", help="the raw identifier (hashed with $DRIFTLINE_REDACTION_SALT) or, with --hash, "
                                       "its stored hash (h:...)")
        p.add_argument("--hash", action="store_true", help="SUBJECT is the stored hash")
        where_options(p)
        p.set_defaults(fn=safe(functools.partial(_subjects, action=name, open_store=open_store)))


def _time(s: str) -> _dt.datetime:
    s = s.strip()
    units = {"m": 60, "h": 3600, "d": 86400}
    if s[:-1].isdigit() and s[-1:] in units:
        return _dt.datetime.now(_dt.UTC) - _dt.timedelta(seconds=int(s[:-1]) * units[s[-1]])
    try:
        t = _dt.datetime.fromisoformat(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a time: {s!r} (ISO 8601, or like 24h, 7d)") from None
    return t if t.tzinfo else t.replace(tzinfo=_dt.UTC)


def _table(rows: Sequence[dict[str, Any]], cols: Sequence[str], width: int = 60) -> str:
    def cell(v: Any) -> str:
        t = v if isinstance(v, str) else json.dumps(v, sort_keys=True, default=str) if v is not None else "-"
        return t if len(t) <= width else t[: width - 1] + "…"

    cells = [[cell(r.get(c)) for c in cols] for r in rows]
    widths = [max([len(c), *(len(x[i]) for x in cells)]) for i, c in enumerate(cols)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True))]
    lines += ["  ".join(x.ljust(w) for x, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(line.rstrip() for line in lines)


def _audit(a: argparse.Namespace, open_store: OpenStore) -> int:
    if a.api:
        rows = api_call(a, "GET", "/v1/audit", params={
            "since": a.since.isoformat() if a.since else None, "actor": a.actor, "action": a.action,
            "target": a.target, "model": a.model, "limit": a.limit}, timeout=_TIMEOUT_S)
    else:
        from collector.audit import query

        rows = query(open_store(a.store), since=a.since, actor=a.actor, action=a.action, target=a.target,
                     model=a.model, limit=a.limit)
    if a.json:
        for r in rows:
            print(json.dumps(r, sort_keys=True))
    elif rows:
        print(_table(rows, ("ts", "actor", "action", "target", "model", "before", "after")))
    else:
        print("no audit entries match")
    return 0


def _retention(a: argparse.Namespace, open_store: OpenStore) -> int:
    from collector.audit import cli_actor
    from collector.retention import retention, set_retention

    if a.action == "set":
        if a.table is None or a.days is None:
            raise ValueError("retention set: give TABLE DAYS (0 days: keep forever)")
        if a.api:
            out = api_call(a, "PUT", "/v1/retention", body={"table": a.table, "days": a.days}, timeout=_TIMEOUT_S)
        else:
            out = set_retention(open_store(a.store), a.table, a.days, actor=cli_actor())
        rows = [out]
    else:
        rows = api_call(a, "GET", "/v1/retention", timeout=_TIMEOUT_S) if a.api else retention(open_store(a.store))
    if a.json:
        for r in rows:
            print(json.dumps(r))
    else:
        shown = [{**r, "days": "forever" if r["days"] is None else str(r["days"])} for r in rows]
        print(_table(shown, ("table", "days", "time_column")))
    return 0


def _subjects(a: argparse.Namespace, action: str, open_store: OpenStore) -> int:
    from urllib.parse import quote

    if a.api:
        out = api_call(a, "DELETE" if action == "delete" else "GET", "/v1/subjects/" + quote(a.subject, safe=""),
                       params={"hashed": "true" if a.hash else None}, timeout=_TIMEOUT_S)
    else:
        from collector.audit import cli_actor
        from collector.subjects import SubjectHasher, Subjects
        from driftline.config import Settings

        salt = Settings.from_env(store_url=a.store).redaction_salt.encode() or None
        subj = Subjects(open_store(a.store), SubjectHasher(salt))
        fn = subj.delete if action == "delete" else subj.export
        out = fn(a.subject, hashed=a.hash, actor=cli_actor())
    print(json.dumps(out, indent=2, default=str))
    return 0
