"""Subjects: the person an event is about, kept only as a salted hash; deletion and access requests.

A prediction or label may carry ``subject`` (a user or customer id). The SDK hashes it with its salt
before it leaves the model server; from other senders the server hashes it (:class:`SubjectHasher`, the
redaction code's salted hash: ``h:`` + 32 hex digits of HMAC-SHA256, one way). Tables keep the hash in
their own indexed columns (bloom-filter skip indexes, migration ``governance#2``):

=================  ==================  ==================================================================
table              column              note
=================  ==================  ==================================================================
predictions        ``subject_hash``    '' for none
labels             ``subject_hash``    '' for none
dead_letters_v2    ``subject_hashes``  Array(String): a rejected batch may hold events of many subjects
=================  ==================  ==================================================================

:class:`Subjects` exports or deletes every row tied to a subject on both engines. Deletion is
``ALTER TABLE ... DELETE WHERE ... SETTINGS mutations_sync = 2``: a mutation that rewrites the parts
holding the rows, so they are gone from disk (not only hidden, as a lightweight ``DELETE`` leaves them
until a merge), and the statement returns once it is done (chDB 4.4 and servers of 24.x alike). Both
are audited (``subject.delete`` / ``subject.export``) with the hash and the counts, never the raw id.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable
from typing import Any

from collector.audit import record
from collector.sql import SQL, ident, sql
from collector.store import Store
from serving_shim import Redaction
from serving_shim._internal.redaction import TOKEN_RE, Redactor

__all__ = ["SubjectHasher", "Subjects", "SUBJECT_COLUMNS", "is_subject_hash", "MAX_EXPORT_ROWS"]

#: table -> (column, whether it is an array of hashes)
SUBJECT_COLUMNS: dict[str, tuple[str, bool]] = {
    "predictions": ("subject_hash", False),
    "labels": ("subject_hash", False),
    "dead_letters_v2": ("subject_hashes", True),
}
MAX_EXPORT_ROWS = 100_000


def is_subject_hash(value: str) -> bool:
    return TOKEN_RE.fullmatch(value) is not None


class SubjectHasher:
    """Raw subject ids to their salted hashes (a hash passes unchanged); ``salt`` None: cannot hash."""

    def __init__(self, salt: bytes | None) -> None:
        self._red = Redactor(Redaction(salt=salt)) if salt else None

    @property
    def can_hash(self) -> bool:
        return self._red is not None

    def __call__(self, subject: str) -> str:
        if TOKEN_RE.fullmatch(subject):
            return subject
        if self._red is None:
            raise ValueError("subject: no salt to hash it with (set DRIFTLINE_REDACTION_SALT, the SDK's salt)")
        return self._red.hash(subject)

    def hashes_in(self, doc: Any) -> tuple[str, ...]:
        """The hashes of the ``subject`` values of an event, a list of events or an envelope (dead letters);
        a raw value is left out when there is no salt."""
        events: Iterable[Any] = ()
        if isinstance(doc, list):
            events = doc
        elif isinstance(doc, dict):
            events = doc["events"] if isinstance(doc.get("events"), list) else [doc]
        out: list[str] = []
        for e in events:
            s = e.get("subject") if isinstance(e, dict) else None
            if isinstance(s, str) and s and (self._red is not None or TOKEN_RE.fullmatch(s)):
                h = self(s)
                if h not in out:
                    out.append(h)
        return tuple(out)


class Subjects:
    """Export and delete what the store holds about one subject."""

    def __init__(self, store: Store, hasher: SubjectHasher) -> None:
        self.store = store
        self.hasher = hasher

    def subject_hash(self, subject: str, *, hashed: bool = False) -> str:
        if not isinstance(subject, str) or not subject or len(subject) > 256:
            raise ValueError("subject: give the identifier (1 to 256 characters) or its hash")
        if hashed and not is_subject_hash(subject):
            raise ValueError("subject: a hash is 'h:' and 32 lowercase hex digits")
        return self.hasher(subject)

    @staticmethod
    def _where(table: str, h: str) -> SQL:
        column, is_array = SUBJECT_COLUMNS[table]
        if is_array:
            return sql("has(%(c)s, %(h)s)", c=ident(column, "column"), h=h)
        return sql("%(c)s = %(h)s", c=ident(column, "column"), h=h)

    def count(self, h: str) -> dict[str, int]:
        """Rows (as stored, duplicates of a redelivery included) tied to the hash, per table."""
        return {t: int(self.store.scalar(sql("SELECT count() FROM {db}.%(t)s WHERE %(w)s", t=ident(t, "table"),
                                             w=self._where(t, h))) or 0) for t in SUBJECT_COLUMNS}

    def export(self, subject: str, *, hashed: bool = False, actor: str) -> dict[str, Any]:
        """Every stored row tied to the subject (deduplicated, as every reader sees them), per table."""
        h = self.subject_hash(subject, hashed=hashed)
        tables: dict[str, list[dict[str, Any]]] = {}
        for t in SUBJECT_COLUMNS:
            rows = self.store.rows(sql("SELECT * FROM {db}.%(t)s FINAL WHERE %(w)s LIMIT %(n)s", t=ident(t, "table"),
                                       w=self._where(t, h), n=MAX_EXPORT_ROWS + 1))
            tables[t] = [_plain(r) for r in rows[:MAX_EXPORT_ROWS]]
        counts = {t: len(r) for t, r in tables.items()}
        record(self.store, actor=actor, action="subject.export", target=h, after={"rows": counts})
        return {"subject_hash": h, "rows": counts, "truncated_at": MAX_EXPORT_ROWS
                if any(n >= MAX_EXPORT_ROWS for n in counts.values()) else None, "tables": tables}

    def delete(self, subject: str, *, hashed: bool = False, actor: str) -> dict[str, Any]:
        """Delete every row tied to the subject from every table; the rows removed per table."""
        h = self.subject_hash(subject, hashed=hashed)
        before = self.count(h)
        for t, n in before.items():
            if n:
                self.store.execute(sql("ALTER TABLE {db}.%(t)s DELETE WHERE %(w)s SETTINGS mutations_sync = 2",
                                       t=ident(t, "table"), w=self._where(t, h)))
        left = self.count(h)
        removed = {t: before[t] - left[t] for t in before}
        record(self.store, actor=actor, action="subject.delete", target=h,
               before={"rows": before}, after={"rows": left, "removed": removed})
        return {"subject_hash": h, "removed": removed, "remaining": left, "total_removed": sum(removed.values())}


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in row.items():
        if isinstance(v, (bytes, bytearray)):
            v = bytes(v).decode("utf-8", "replace")
        elif isinstance(v, _dt.datetime):
            v = v.isoformat()
        out[k] = v
    return out
