"""Turn validated contract events into columnar batches and store them.

Idempotency: every event table is a ReplacingMergeTree whose sorting key ends in ``event_id``,
and every reader selects with ``FINAL``, so a batch delivered twice (a crash between insert and
offset commit, a rebalance, a retried HTTP post) never shows twice in a query result, whether or
not a background merge has happened yet.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from collector.schema import DEAD_LETTERS, DEPLOYS, LABELS, METRIC_WINDOWS, PREDICTIONS, MapColumn, Table
from collector.store import Store
from serving_shim._internal.redaction import TOKEN_RE as _TOKEN
from serving_shim.contract import DeployEvent, EventError, MetricWindowEvent

__all__ = ["TABLE_FOR_KIND", "MapColumn", "to_columns", "EventWriter", "DeadLetter",
           "dead_letter_payload", "MAX_DEAD_LETTER_PAYLOAD"]

#: the table of each event kind (declared in :mod:`collector.schema`)
TABLES_OF_KIND: dict[str, Table] = {
    "prediction": PREDICTIONS,
    "label": LABELS,
    "metric_window": METRIC_WINDOWS,
    "deploy": DEPLOYS,
}
TABLE_FOR_KIND = {kind: t.name for kind, t in TABLES_OF_KIND.items()}


_UTC = _dt.UTC


def _utc(ts: _dt.datetime) -> _dt.datetime:
    # the hot-path half of serving_shim.contract.as_utc: the contract has converted aware times already
    # (and lets naive prediction times through, which mean UTC), so only the zone is attached here
    return ts.replace(tzinfo=_UTC) if ts.tzinfo is None else ts


def _subject_hash(s: str) -> str:
    """Only a hash is ever stored (collector.redaction hashes raw subjects before events get here): a raw
    value that reached the writer some other way is left out, never written."""
    return s if _TOKEN.fullmatch(s) else ""


def _prediction_columns(events: Sequence[Any], cols: dict[str, Any]) -> None:
    """The collector's hottest loop (once per stored prediction): Map columns are filled flat, in place."""
    c_id, c_ts, c_model, c_ver, c_req = (cols["event_id"], cols["ts"], cols["model"], cols["model_version"],
                                         cols["request_id"])
    num, cat, c_null, probs, sl = (cols["features_num"], cols["features_cat"], cols["features_null"],
                                   cols["pred_probs"], cols["slices"])
    num_k, num_v, num_o = num.keys, num.values, num.offsets
    cat_k, cat_v, cat_o = cat.keys, cat.values, cat.offsets
    sl_k, sl_v, sl_o = sl.keys, sl.values, sl.offsets
    c_pv, c_pl, c_ps = cols["pred_value"], cols["pred_label"], cols["pred_score"]
    c_lat, c_st, c_et, c_sv = cols["latency_ms"], cols["status"], cols["error_type"], cols["schema_version"]
    c_subj = cols["subject_hash"]
    no_nulls: list[str] = []  # shared by every row without a null feature; never mutated
    for e in events:
        c_id.append(e.event_id)
        t = e.ts
        c_ts.append(t if t.tzinfo is not None else t.replace(tzinfo=_UTC))
        c_model.append(e.model)
        c_ver.append(e.model_version)
        c_req.append(e.request_id)
        null = no_nulls
        for k, v in e.features.items():
            if v is None:
                if null is no_nulls:
                    null = []
                null.append(k)
            elif v.__class__ is str:
                cat_k.append(k)
                cat_v.append(v)
            else:
                num_k.append(k)
                num_v.append(v)
        num_o.append(len(num_k))
        cat_o.append(len(cat_k))
        c_null.append(null)
        p = e.prediction
        c_pv.append(p.value)
        c_pl.append(p.label)
        c_ps.append(p.score)
        probs.append(p.probabilities)
        s = e.slices
        if s:
            sl_k.extend(s.keys())
            sl_v.extend(s.values())
        sl_o.append(len(sl_k))
        c_lat.append(e.latency_ms)
        c_st.append(e.status)
        c_et.append(e.error_type or "")
        c_sv.append(e.schema_version)
        c_subj.append("" if e.subject is None else _subject_hash(e.subject))


def to_columns(kind: str, events: Sequence[Any], into: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
    """Columns for the table of ``kind`` from validated events (Map columns as :class:`MapColumn`),
    appended to ``into`` when given (columns from an earlier call for the same kind)."""
    table = TABLES_OF_KIND[kind]
    cols: dict[str, Any] = into if into is not None else {
        c.name: (MapColumn() if c.is_map else []) for c in table.columns
        if not c.default or c.name == "subject_hash"  # the store fills the rest (arrival times, computed columns)
    }
    if kind == "prediction":  # models or fast-path objects, as for labels
        _prediction_columns(events, cols)
    elif kind == "label":  # contract models or the contract's fast-path objects: the same attributes
        c_id, c_ts, c_model, c_req = cols["event_id"], cols["ts"], cols["model"], cols["request_id"]
        c_val, c_cls, c_sv = cols["label_value"], cols["label_class"], cols["schema_version"]
        c_subj = cols["subject_hash"]
        for e in events:
            c_id.append(e.event_id)
            c_ts.append(_utc(e.ts))
            c_model.append(e.model)
            c_req.append(e.request_id)
            c_val.append(e.value)
            c_cls.append(e.label)
            c_sv.append(e.schema_version)
            c_subj.append("" if e.subject is None else _subject_hash(e.subject))
    elif kind == "metric_window":
        for e in events:
            assert isinstance(e, MetricWindowEvent)
            for name, v in (
                ("event_id", e.event_id), ("window_start", _utc(e.window_start)), ("window_s", e.window_s),
                ("model", e.model), ("model_version", e.model_version), ("source", e.source),
                ("requests", e.requests), ("errors", dict(e.errors)), ("latency_buckets", list(e.latency_buckets)),
                ("latency_sum_ms", e.latency_sum_ms), ("schema_version", e.schema_version),
            ):
                cols[name].append(v)
    elif kind == "deploy":
        for e in events:
            assert isinstance(e, DeployEvent)
            for name, value in (
                ("event_id", e.event_id), ("ts", _utc(e.ts)), ("model", e.model), ("model_version", e.model_version),
                ("annotations", dict(e.annotations)), ("schema_version", e.schema_version),
            ):
                cols[name].append(value)
    return table.name, cols


#: bytes of a rejected event or message kept in its dead letter
MAX_DEAD_LETTER_PAYLOAD = 64 * 1024


def dead_letter_payload(raw: Any) -> bytes:
    """What a dead letter keeps of the bytes it was made from: the original bytes (not a decoded or
    re-encoded copy), cut at :data:`MAX_DEAD_LETTER_PAYLOAD`. Every dead letter's payload is made here."""
    if raw is None:
        return b""
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogatepass")
    return bytes(memoryview(raw)[:MAX_DEAD_LETTER_PAYLOAD])


@dataclass(frozen=True)
class DeadLetter:
    """A rejected event or message: where it came from (``kafka:topic:partition:offset`` or ``http``),
    why, and its original bytes (:func:`dead_letter_payload`).

    Payloads were redacted by the shim before they left the model server; they are stored here
    and never written to logs.
    """

    source: str
    kind: str
    index: int
    event_id: str
    field: str
    reason: str
    payload: bytes
    #: salted hashes of the subjects of the events in the payload (collector.subjects)
    subject_hashes: tuple[str, ...] = ()

    @classmethod
    def from_error(cls, source: str, kind: str, err: EventError, raw: Any) -> DeadLetter:
        """The dead letter of ``err`` (index -1: the whole batch) made from the bytes ``raw``."""
        return cls(source, kind, err.index, err.event_id or "", err.field, err.reason, dead_letter_payload(raw))


class EventWriter:
    """Stores validated batches, and dead letters for what was rejected."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def write(self, kind: str, events: Sequence[Any]) -> int:
        if not events:
            return 0
        return self.write_columns(kind, to_columns(kind, events)[1])

    def write_columns(self, kind: str, cols: dict[str, Any]) -> int:
        """Store columns made by :func:`to_columns` for ``kind``."""
        # every reader of the event tables uses FINAL, so the insert need not merge its block (2x faster)
        return self.store.insert(TABLES_OF_KIND[kind], cols, merge=False)

    def write_dead_letters(self, letters: Sequence[DeadLetter]) -> int:
        if not letters:
            return 0
        cols: dict[str, list[Any]] = {
            "source": [d.source for d in letters],
            "kind": [d.kind for d in letters],
            "event_index": [d.index for d in letters],
            "event_id": [d.event_id for d in letters],
            "field": [d.field for d in letters],
            "reason": [d.reason for d in letters],
            "payload": [d.payload for d in letters],
            "subject_hashes": [list(d.subject_hashes) for d in letters],
        }
        # the table behind the deduplicated view ``dead_letters`` (collector migrations 3 and 4)
        return self.store.insert(DEAD_LETTERS, cols)

