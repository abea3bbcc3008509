"""The store: one interface, two engines, the same SQL.

- :class:`ChdbStore` (default): the ClickHouse engine in-process (chDB) on a local path, owned by
  one process. Several :class:`ChdbStore` objects in one process share that path's session and
  keep apart by database.
- :class:`ClickHouseStore`: a ClickHouse server (24.x or newer) over the native protocol with
  clickhouse-driver. Older servers are refused with both versions named.

SQL is written once (ClickHouse dialect) as templates or fragments of :mod:`collector.sql`: ``{db}``
stands for the store's database and ``%(name)s`` for bound values, rendered in one pass. Inserts are columnar: a dict of
column name to a list of values, with the column types declared in :mod:`collector.schema`.
"""

from __future__ import annotations

import datetime as _dt
import os
import re
import threading
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa

from collector.exceptions import (
    StoreLockedError,
    StoreRejected,
    StoreUnavailable,
    StoreVersionError,
    store_error,
)
from collector.schema import Column, MapColumn, Table
from collector.schema import table as declared_table
from collector.sql import MAX_TIME, MIN_TIME, SQL, check_identifier, join, render, sql

__all__ = ["Store", "ChdbStore", "ClickHouseStore", "open_store", "MIN_SERVER_VERSION"]

MIN_SERVER_VERSION = (24, 1)


# ---------------------------------------------------------------------------------------------
# Inserts: a batch built from the declared column types (both engines)

_SCALARS: dict[str, pa.DataType] = {
    # String as bytes: a String column holds any bytes (dead letters keep their original payloads)
    "String": pa.binary(), "Float64": pa.float64(), "Float32": pa.float32(),
    "UInt8": pa.uint8(), "UInt16": pa.uint16(), "UInt32": pa.uint32(), "UInt64": pa.uint64(),
    "Int8": pa.int8(), "Int16": pa.int16(), "Int32": pa.int32(), "Int64": pa.int64(),
    "DateTime": pa.timestamp("s", tz="UTC"), "DateTime64(3, 'UTC')": pa.timestamp("ms", tz="UTC"),
}
_MS = _dt.timedelta(milliseconds=1)
_EPOCH = _dt.datetime(1970, 1, 1)
#: the range of DateTime64 in milliseconds since the epoch: a time outside it is refused, not wrapped
_TIME_RANGE_MS = ((MIN_TIME - _EPOCH) // _MS, (MAX_TIME - _EPOCH) // _MS + 86_400_000 - 1)


def _args(inner: str) -> list[str]:
    """The top-level arguments of a type's parentheses: ``K, Map(A, B)`` → ``["K", "Map(A, B)"]``."""
    out, depth, start = [], 0, 0
    for i, c in enumerate(inner):
        depth += c == "("
        depth -= c == ")"
        if c == "," and depth == 0:
            out.append(inner[start:i].strip())
            start = i + 1
    out.append(inner[start:].strip())
    return out


def arrow_type(ch: str) -> pa.DataType:
    """The Arrow type a batch uses for the ClickHouse type ``ch`` (as :mod:`collector.schema` declares it)."""
    for wrapper in ("Nullable(", "LowCardinality("):
        if ch.startswith(wrapper):
            return arrow_type(ch[len(wrapper):-1])
    if ch.startswith("Array("):
        return pa.list_(arrow_type(ch[6:-1]))
    if ch.startswith("Map("):
        k, v = _args(ch[4:-1])
        return pa.map_(arrow_type(k), arrow_type(v))
    t = _SCALARS.get(ch)
    if t is None:
        raise ValueError(f"no Arrow type for the ClickHouse type {ch!r} (add it to collector.store._SCALARS)")
    return t


_ARROW_TYPES: dict[str, pa.DataType] = {}


def _arrow_array(col: Column, values: Any) -> pa.Array:
    typ = _ARROW_TYPES.get(col.type)
    if typ is None:
        typ = _ARROW_TYPES[col.type] = arrow_type(col.type)
    if col.is_map:
        mc = values if isinstance(values, MapColumn) else MapColumn.of(values)
        return pa.MapArray.from_arrays(pa.array(mc.offsets, type=pa.int32()), pa.array(mc.keys, type=typ.key_type),
                                       pa.array(mc.values, type=typ.item_type))
    arr = pa.array(values, type=typ)
    if pa.types.is_timestamp(typ) and arr.null_count < len(arr):
        import pyarrow.compute as pc

        ms = pc.min_max(arr.cast(pa.int64()))
        lo, hi = _TIME_RANGE_MS if typ.unit == "ms" else (_TIME_RANGE_MS[0] // 1000, _TIME_RANGE_MS[1] // 1000)
        if ms["min"].as_py() < lo or ms["max"].as_py() > hi:
            bad = next(v for v in arr.cast(pa.int64()).to_pylist() if v is not None and not lo <= v <= hi)
            try:
                when = (_EPOCH + _dt.timedelta(milliseconds=bad if typ.unit == "ms" else bad * 1000)).isoformat()
            except OverflowError:
                when = f"{bad} {typ.unit} since 1970"
            raise ValueError(f"time {when} is outside {MIN_TIME.year}-{MAX_TIME.year}")
    return arr


def arrow_batch(table: Table, columns: Mapping[str, Sequence[Any] | MapColumn]) -> pa.Table:
    """The insert batch of ``columns`` for the declared ``table``, every value converted to its column's
    type. A value the column cannot hold raises :class:`StoreRejected` naming the column."""
    arrays = []
    for name, values in columns.items():
        col = table.column(name)
        try:
            arrays.append(_arrow_array(col, values))
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError, ValueError, UnicodeError) as exc:
            raise StoreRejected(f"{table.name}.{name} ({col.type}): {str(exc)[:500]}") from None
    return pa.Table.from_arrays(arrays, names=list(columns))


# ---------------------------------------------------------------------------------------------
# Reads: rows from a result's columns (both engines)


def _rows_of(names: Sequence[str], columns: Sequence[Sequence[Any]], kinds: Sequence[str]) -> list[dict[str, Any]]:
    """The rows of a result given column by column, each column's values normalised by its kind:
    ``map`` (pairs or a dict → dict), ``float`` (NaN → None, as NULL) or ``plain``."""
    out_cols = []
    for values, kind in zip(columns, kinds, strict=True):
        if kind == "map":
            values = [None if v is None else dict(v) for v in values]
        elif kind == "float":
            values = [None if v is None or v != v else v for v in values]
        out_cols.append(values)
    return [dict(zip(names, r, strict=True)) for r in zip(*out_cols, strict=True)]


class Store(ABC):
    """What every reader and writer of Driftline data talks to.

    Errors are the three classes of :mod:`collector.exceptions` on both engines: :class:`StoreUnavailable`
    (retry), :class:`StoreRejected` (the rows are refused: dead-letter them), :class:`QueryError` (a bug)."""

    engine: str
    database: str

    @abstractmethod
    def _exec(self, sql: str) -> None: ...

    @abstractmethod
    def _result(self, sql: str) -> tuple[list[str], list[Sequence[Any]], list[str]]:
        """A query's result: column names, values column by column, and each column's kind for :func:`_rows_of`."""

    @abstractmethod
    def _insert(self, table: Table, names: Sequence[str], batch: pa.Table, merge: bool) -> None: ...

    @abstractmethod
    def server_version(self) -> str: ...

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the connection (the chDB session stays for other stores in this process)."""

    def sql(self, sql: SQL | str, params: Mapping[str, Any] | None = None) -> str:
        return render(sql, params, self.database)

    def execute(self, sql: SQL | str, params: Mapping[str, Any] | None = None) -> None:
        self._exec(self.sql(sql, params))

    def rows(self, sql: SQL | str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """The result as dicts of Python values (NaN and NULL as None, maps as dicts, arrays as lists)."""
        return _rows_of(*self._result(self.sql(sql, params)))

    def scalar(self, sql: SQL | str, params: Mapping[str, Any] | None = None) -> Any:
        """The first column of the first row (None for no rows)."""
        names, columns, kinds = self._result(self.sql(sql, params))
        if not names or not len(columns[0]):
            return None
        return _rows_of(names[:1], [columns[0][:1]], kinds[:1])[0][names[0]]

    def insert(self, table: Table | str, columns: Mapping[str, Sequence[Any] | MapColumn], *,
               merge: bool = True) -> int:
        """Columnar insert of one batch into a table declared in :mod:`collector.schema` (or its name);
        each column's values are converted to its declared type. Returns the number of rows.

        ``merge=False`` skips the engine's merge of the inserted block (``optimize_on_insert=0``): about
        half the insert time on the collector's path. Only for tables whose every reader uses ``FINAL``
        (the event tables): duplicates inside one block then collapse at read time, as across blocks.
        """
        t = table if isinstance(table, Table) else declared_table(table)
        lengths = {len(v) for v in columns.values()}
        if len(lengths) > 1:
            raise ValueError(f"columns of {t.name} have different lengths: {sorted(lengths)}")
        n = lengths.pop() if lengths else 0
        if n:
            self._insert(t, list(columns), arrow_batch(t, columns), merge)
        return n

    def create_database(self) -> None:
        self.execute("CREATE DATABASE IF NOT EXISTS {db}")

    def drop_database(self) -> None:
        self.execute("DROP DATABASE IF EXISTS {db} SYNC")

    @staticmethod
    def _insert_head(table: Table, names: Sequence[str]) -> SQL:
        """``INSERT INTO db.table (columns)``, the identifiers checked when the table was declared."""
        return sql("INSERT INTO {db}.%(t)s (%(c)s)", t=table.ident,
                   c=join(", ", [sql("%(c)s", c=table.by_name[n].ident) for n in names]))


# ---------------------------------------------------------------------------------------------
# chDB


#: The detectors' scans spell out every feature's grid and thresholds: a model with a few hundred features
#: passes ClickHouse's default limit of 256 KiB per query (parsed before any SETTINGS clause applies).
MAX_QUERY_BYTES = 16 * 1024 * 1024

_SESSIONS: dict[str, tuple[Any, threading.RLock]] = {}
_SESSIONS_LOCK = threading.Lock()


def _session_for(path: str) -> tuple[Any, threading.RLock]:
    """The process's chDB session on ``path`` and the lock that serializes every query on it.

    A chDB session must not run two queries at once. In particular, ``INSERT ... SELECT FROM
    Python(batch)`` looks up the name ``batch`` while the query runs: with two threads inserting at
    once (two collectors, the collector next to the API), one thread's insert can read the *other*
    thread's ``batch``, so one batch is stored twice (hidden by ``FINAL``) and the other is lost,
    with no error. Every store object on the path shares the session, so they share this lock.
    """
    from chdb import session as chs

    path = os.path.abspath(path)
    with _SESSIONS_LOCK:
        entry = _SESSIONS.get(path)
        if entry is not None:
            return entry
        if _SESSIONS:
            other = next(iter(_SESSIONS))
            raise StoreLockedError(
                f"this process already has the chDB store at {other}; one process can open one chDB path "
                f"(asked for {path}). Use another database in the same path, or another process."
            )
        os.makedirs(path, exist_ok=True)
        try:
            s = chs.Session(path)
        except Exception as exc:  # chDB raises plain exceptions
            msg = str(exc)
            if "lock" in msg.lower():
                raise StoreLockedError(
                    f"the chDB store at {path} is owned by another process ({msg.strip()[:200]}); "
                    "read it through that process's query API"
                ) from None
            raise StoreUnavailable(f"cannot open the chDB store at {path}: {msg[:300]}") from None
        # No JIT compilation of expressions: Driftline's queries embed constants that change with every
        # reference and window, so ClickHouse would keep compiling new ones, each inside the query that
        # reaches its third use (0.2 to 0.6 s of a 0.3 s detector run, measured). A server gets the same
        # settings on the detectors' scans (detectors.drift_sql.NO_JIT).
        for setting, value in (("compile_expressions", 0), ("compile_aggregate_expressions", 0),
                               ("max_query_size", MAX_QUERY_BYTES)):
            s.query(f"SET {setting} = {value}", "CSV")
        entry = _SESSIONS[path] = (s, threading.RLock())
        return entry


class ChdbStore(Store):
    """chDB on a local path (embedded mode)."""

    engine = "chdb"

    def __init__(self, path: str = ".driftline", *, database: str = "driftline") -> None:
        self.path = os.path.abspath(path)
        self.database = check_identifier(database, "database")
        # one lock per session (per path), not per store object: see _session_for
        self._session, self._lock = _session_for(self.path)
        self._closed = False
        self.create_database()

    def close(self) -> None:
        """This store object takes no more statements (:class:`StoreUnavailable`); the path's session
        stays open for the other stores of this process."""
        self._closed = True

    def _run(self, sql: str, fmt: str) -> Any:
        with self._lock:
            if self._closed:
                raise StoreUnavailable(f"the chDB store at {self.path} (database {self.database}) is closed")
            try:
                return self._session.query(sql, fmt)
            except Exception as exc:  # chDB raises plain exceptions, with ClickHouse's "Code: NNN." in the text
                raise store_error(None, str(exc), sql) from None

    def _exec(self, sql: str) -> None:
        self._run(sql, "CSV")

    def _result(self, sql: str) -> tuple[list[str], list[Sequence[Any]], list[str]]:
        """Read from chDB's Arrow IPC output (its own ``ArrowTable`` format imports pandas, about 50 MB
        resident, for nothing)."""
        res = self._run(sql, "Arrow")
        if not len(res):
            return [], [], []
        tbl = pa.ipc.open_file(res.get_memview().view()).read_all()
        kinds = ["map" if pa.types.is_map(c.type) else "float" if pa.types.is_floating(c.type) else "plain"
                 for c in tbl.columns]
        return tbl.column_names, [c.to_pylist() for c in tbl.columns], kinds

    def _insert(self, table: Table, names: Sequence[str], batch: pa.Table, merge: bool) -> None:
        cols = join(", ", [sql("%(c)s", c=table.by_name[n].ident) for n in names])
        settings = sql("" if merge else " SETTINGS optimize_on_insert = 0")
        # chDB's Python() table function reads the local variable ``batch`` while the statement runs
        self.execute(sql("%(head)s%(settings)s SELECT %(cols)s FROM Python(batch)",
                         head=self._insert_head(table, names), settings=settings, cols=cols))

    def server_version(self) -> str:
        return str(self.scalar("SELECT version()"))


# ---------------------------------------------------------------------------------------------
# ClickHouse server


_FLOAT = re.compile(r"(Nullable\()?(LowCardinality\()?Float")


def _parse_version(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", v)[:3])


class ClickHouseStore(Store):
    """A ClickHouse server over the native protocol (scale mode)."""

    engine = "clickhouse"

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 9000,
        user: str = "default",
        password: str = "",
        database: str = "driftline",
        connect_timeout: float = 5.0,
        send_receive_timeout: float = 60.0,
    ) -> None:
        from clickhouse_driver import Client

        self.database = check_identifier(database, "database")
        self.host, self.port = host, port
        self._client = Client(
            host=host,
            port=port,
            user=user,
            password=password,
            connect_timeout=connect_timeout,
            send_receive_timeout=send_receive_timeout,
            settings={"use_numpy": False, "max_query_size": MAX_QUERY_BYTES},
        )
        self._lock = threading.Lock()  # one clickhouse-driver Client is not thread-safe
        try:
            version = self.server_version()
        except StoreUnavailable:
            self._client.disconnect()
            raise
        self._version = _parse_version(version)
        if self._version[:2] < MIN_SERVER_VERSION:
            self._client.disconnect()
            raise StoreVersionError(
                f"ClickHouse server {version} at {host}:{port} is too old: Driftline needs "
                f"{MIN_SERVER_VERSION[0]}.{MIN_SERVER_VERSION[1]} or newer"
            )
        self.create_database()

    def _call(self, sql: str, *args: Any, **kw: Any) -> Any:
        from clickhouse_driver import errors as cherr

        with self._lock:
            try:
                return self._client.execute(sql, *args, **kw)
            except (cherr.NetworkError, cherr.SocketTimeoutError, EOFError, OSError) as exc:
                raise StoreUnavailable(f"ClickHouse at {self.host}:{self.port} unavailable: {exc}") from None
            except cherr.ServerException as exc:
                raise store_error(exc.code, str(exc), sql) from None
            except cherr.Error as exc:  # the driver's own refusal of a value it cannot encode
                raise store_error(getattr(exc, "code", None), str(exc), sql) from None

    def _exec(self, sql: str) -> None:
        self._call(sql)

    def _result(self, sql: str) -> tuple[list[str], list[Sequence[Any]], list[str]]:
        columns, types = self._call(sql, with_column_types=True, columnar=True)
        kinds = ["map" if t.startswith("Map(") else "float" if _FLOAT.match(t) else "plain" for _, t in types]
        return [n for n, _ in types], [list(c) for c in columns] or [[] for _ in types], kinds

    def _insert(self, table: Table, names: Sequence[str], batch: pa.Table, merge: bool) -> None:
        data = []
        for col in batch.columns:
            vals = col.to_pylist()
            if pa.types.is_map(col.type):
                vals = [dict(v) for v in vals]
            data.append(vals)
        # optimize_on_insert exists from 20.11 on (an older server never merges on insert)
        skip_merge = not merge and self._version >= (20, 11)
        self._call(self.sql(sql("%(head)s VALUES", head=self._insert_head(table, names))), data, columnar=True,
                   settings={"optimize_on_insert": 0} if skip_merge else None)

    def server_version(self) -> str:
        rows = self._call("SELECT version()")
        return str(rows[0][0])

    def close(self) -> None:
        self._client.disconnect()


def open_store(url: str, *, database: str = "driftline") -> Store:
    """Open a store from a URL: ``chdb:///path/to/dir`` (or a bare path) or ``clickhouse://user:pass@host:port``."""
    from urllib.parse import unquote, urlparse

    if "://" not in url:
        return ChdbStore(url, database=database)
    u = urlparse(url)
    if u.scheme == "chdb":
        return ChdbStore((u.netloc + u.path) or ".driftline", database=database)
    if u.scheme in ("clickhouse", "clickhouse+native"):
        return ClickHouseStore(
            host=u.hostname or "127.0.0.1",
            port=u.port or 9000,
            user=unquote(u.username or "default"),
            password=unquote(u.password or ""),
            database=(u.path.strip("/") or database),
        )
    raise ValueError(f"store: unknown scheme {u.scheme!r} in {url!r} (use chdb:///path or clickhouse://host:9000)")
