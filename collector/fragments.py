"""SQL fragments that several readers share, defined once: the query routes, the detectors and the SLO engine
build their statements from these (values bound, see :mod:`collector.sql`).

- :func:`models_filter`: the rows of the models an API key may read;
- :func:`time_window`: rows of ``[start, end)`` (or from ``start`` on) of a time column;
- :func:`version_filter`: one model version, or every version;
- :func:`model_window`: a model's rows (of one version or all) in a time window;
- :func:`latest_labels` and :func:`join_latest_label`: *the* label of a request.

The label of a request
----------------------
A request may get several labels (a correction, a label delivered late, a redelivery). Its label is the
one with the latest event time ``ts`` (the time the sender stamped it: a correction sent later wins,
even if an older label reaches the store after it); labels with equal ``ts`` are ordered by when the
store received them (``ingested_at``, the later wins), then by ``event_id`` (the greater wins), so the
choice never depends on how parts were merged. The label is the chosen event as a whole: its value and
its class together (a value-only correction clears an earlier class). A redelivered event (same
``event_id``) counts once (``FINAL``).
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence

from collector.sql import SQL, ident, join, sql

__all__ = ["models_filter", "time_window", "version_filter", "model_window", "latest_labels", "join_latest_label",
           "LABEL_ORDER"]

#: The order that picks the latest label: event time, then arrival, then event id (greatest wins).
LABEL_ORDER = sql("(ts, ingested_at, event_id)")


def models_filter(models: Sequence[str]) -> SQL:
    """Rows of ``models`` (of every model when empty: a key for every model)."""
    return sql("(empty(%(m)s) OR has(%(m)s, model))", m=list(models))


def time_window(start: _dt.datetime, end: _dt.datetime | None = None, *, column: str = "ts") -> SQL:
    """``start <= column < end`` (``column >= start`` without ``end``)."""
    if end is None:
        return sql("%(c)s >= %(start)s", c=ident(column), start=start)
    return sql("%(c)s >= %(start)s AND %(c)s < %(end)s", c=ident(column), start=start, end=end)


def version_filter(version: str | None) -> SQL:
    """``model_version = version``, or true for every version (``None``)."""
    return sql("1") if version is None else sql("model_version = %(v)s", v=version)


def model_window(model: str, start: _dt.datetime, end: _dt.datetime | None = None, *, version: str | None = None,
                 column: str = "ts") -> SQL:
    """Rows of ``model`` (of ``version``; every version for ``None``) in :func:`time_window` of ``column``."""
    parts = [sql("model = %(model)s", model=model), time_window(start, end, column=column)]
    if version is not None:
        parts.append(version_filter(version))
    return join(" AND ", parts)


def latest_labels(predictions: SQL) -> SQL:
    """A subquery: one row per ``(model, request_id)`` among the predictions matching ``predictions`` (a
    condition on the ``predictions`` table), with its latest label (see the module docstring):
    ``label_value``, ``label_class`` and ``label_ts`` (its event time)."""
    return _latest_labels(sql("(model, request_id) IN (SELECT model, request_id FROM {db}.predictions WHERE %(p)s)",
                              p=predictions))


def _latest_labels(which: SQL) -> SQL:
    return sql("""(SELECT model, request_id, lab.1 AS label_value, lab.2 AS label_class, lab.3 AS label_ts
          FROM (SELECT model, request_id, argMax((label_value, label_class, ts), %(order)s) AS lab
                FROM {db}.labels FINAL WHERE %(which)s
                GROUP BY model, request_id))""", order=LABEL_ORDER, which=which)


def _hashed_labels(predictions: SQL) -> SQL:
    """The labels of the requests matching ``predictions``, found through a set of 64-bit hashes of
    ``(model, request_id)``: a 1M-request window builds its set about five times faster than a set of
    string tuples. A colliding hash lets a stray request through this filter only: a join on the ids
    themselves (:func:`join_latest_label`) drops it, so the result is exact."""
    return _latest_labels(sql("cityHash64(model, request_id) IN "
                              "(SELECT cityHash64(model, request_id) FROM {db}.predictions WHERE %(p)s)",
                              p=predictions))


def join_latest_label(p: SQL, predictions: SQL, *, inner: bool = False) -> SQL:
    """``p AS p LEFT JOIN (latest labels) AS l`` on model and request id: ``p`` is a subquery of the predictions
    (with ``model`` and ``request_id``) that match the condition ``predictions``; ``inner``: labelled ones only.
    In a left join a request without a label has ``l.request_id = ''`` and a NULL value and class (ClickHouse's
    default ``join_use_nulls = 0``)."""
    return sql("%(p)s AS p %(kind)s JOIN %(l)s AS l ON p.model = l.model AND p.request_id = l.request_id",
               p=p, kind=sql("INNER" if inner else "LEFT"), l=_hashed_labels(predictions))
