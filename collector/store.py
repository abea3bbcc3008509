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
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pyarrow as pa

from collector.exceptions import QueryError, StoreLockedError, StoreUnavailable, StoreVersionError
from collector.sql import SQL, check_identifier, ident, join, render, sql

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Store", "ChdbStore", "ClickHouseStore", "open_store", "MIN_SERVER_VERSION"]

MIN_SERVER_VERSION = (24, 1)

# Column kinds used by inserts; both engines map them to their own types.
ARROW_TYPES: dict[str, pa.DataType] = {
    "str": pa.string(),
    "strn": pa.string(),
    "bytes": pa.binary(),  # a String column holding any bytes (dead letters' original payloads)
    "f64": pa.float64(),
    "f64n": pa.float64(),
    "u64": pa.uint64(),
    "u32": pa.uint32(),
    "u16": pa.uint16(),
    "i32": pa.int32(),
    "u8": pa.uint8(),
    "ts": pa.timestamp("ms", tz="UTC"),
    "map_sf": pa.map_(pa.string(), pa.float64()),
    "map_ss": pa.map_(pa.string(), pa.string()),
    "map_su": pa.map_(pa.string(), pa.uint64()),
    "arr_s": pa.list_(pa.string()),
    "arr_u64": pa.list_(pa.uint64()),
    "arr_f64": pa.list_(pa.float64()),
}


def _map_array(values: Any, typ: pa.MapType) -> pa.Array:
    """A Map column from a MapColumn (flat offsets/keys/values) or from a list of dicts."""
    if not hasattr(values, "offsets"):
        from collector.writer import MapColumn

        mc = MapColumn()
        for v in values:
            mc.append(v)
        values = mc
    return pa.MapArray.from_arrays(
        pa.array(values.offsets, type=pa.int32()),
        pa.array(values.keys, type=typ.key_type),
        pa.array(values.values, type=typ.item_type),
    )


class Store(ABC):
    """What every reader and writer of Driftline data talks to."""

    engine: str
    database: str

    @abstractmethod
    def _exec(self, sql: str) -> None: ...

    @abstractmethod
    def _df(self, sql: str) -> pd.DataFrame: ...

    @abstractmethod
    def _insert(
        self, table: str, columns: Mapping[str, Sequence[Any]], kinds: Mapping[str, str], merge: bool = True
    ) -> None: ...

    @abstractmethod
    def server_version(self) -> str: ...

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the connection (the chDB session stays for other stores in this process)."""

    def sql(self, sql: SQL | str, params: Mapping[str, Any] | None = None) -> str:
        return render(sql, params, self.database)

    def execute(self, sql: SQL | str, params: Mapping[str, Any] | None = None) -> None:
        self._exec(self.sql(sql, params))

    def df(self, sql: SQL | str, params: Mapping[str, Any] | None = None) -> pd.DataFrame:
        """Run a query and return its (small) result as a DataFrame."""
        return self._df(self.sql(sql, params))

    def rows(self, sql: SQL | str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """The result as dicts of Python values (NaN and NULL as None, maps as dicts, arrays as lists)."""
        return self._rows(self.sql(sql, params))

    def scalar(self, sql: SQL | str, params: Mapping[str, Any] | None = None) -> Any:
        return self._scalar(self.sql(sql, params))

    def _rows(self, sql: str) -> list[dict[str, Any]]:
        import pandas as pd

        out = cast(list[dict[str, Any]], self._df(sql).to_dict(orient="records"))  # a result's columns are names
        for r in out:
            for k, v in r.items():
                if isinstance(v, float) and v != v:  # NaN from nullable columns
                    r[k] = None
                elif isinstance(v, pd.Timestamp):
                    r[k] = v.to_pydatetime()
                elif isinstance(v, np.ndarray):
                    r[k] = v.tolist()
                elif isinstance(v, np.generic):
                    r[k] = v.item()
        return out

    def _scalar(self, sql: str) -> Any:
        df = self._df(sql)
        if df.empty:
            return None
        v = df.iat[0, 0]
        return v.item() if hasattr(v, "item") else v

    def insert(
        self, table: str, columns: Mapping[str, Sequence[Any]], kinds: Mapping[str, str], *, merge: bool = True
    ) -> int:
        """Columnar insert of one batch. Returns the number of rows.

        ``merge=False`` skips the engine's merge of the inserted block (``optimize_on_insert=0``): about
        half the insert time on the collector's path. Only for tables whose every reader uses ``FINAL``
        (the event tables): duplicates inside one block then collapse at read time, as across blocks.
        """
        check_identifier(table, "table")
        for name in columns:
            check_identifier(name, f"column of {table}")
        lengths = {len(v) for v in columns.values()}
        if len(lengths) > 1:
            raise ValueError(f"columns of {table} have different lengths: {sorted(lengths)}")
        n = lengths.pop() if lengths else 0
        if n:
            self._insert(table, columns, kinds, merge)
        return n

    def create_database(self) -> None:
        self.execute("CREATE DATABASE IF NOT EXISTS {db}")

    def drop_database(self) -> None:
        self.execute("DROP DATABASE IF EXISTS {db} SYNC")

    def _insert_head(self, table: str, names: Sequence[str]) -> SQL:
        """``INSERT INTO db.table (columns)``, every name through the identifier helper."""
        return sql("INSERT INTO {db}.%(t)s (%(c)s)", t=ident(table, "table"),
                   c=join(", ", [sql("%(c)s", c=ident(n, f"column of {table}")) for n in names]))


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
        self.create_database()

    def _run(self, sql: str, fmt: str) -> Any:
        with self._lock:
            try:
                return self._session.query(sql, fmt)
            except Exception as exc:
                raise QueryError(f"{str(exc).strip()[:2000]}\n-- in: {sql[:500]}") from None

    def _exec(self, sql: str) -> None:
        self._run(sql, "CSV")

    def _table(self, sql: str) -> pa.Table | None:
        """The result as an Arrow table, read from chDB's Arrow IPC output (its own ``ArrowTable``
        format imports pandas, about 50 MB resident, for nothing)."""
        res = self._run(sql, "Arrow")
        if not len(res):
            return None
        return pa.ipc.open_file(res.get_memview().view()).read_all()

    def _df(self, sql: str) -> pd.DataFrame:
        import pandas as pd

        tbl = self._table(sql)
        return tbl.to_pandas(maps_as_pydicts="strict") if tbl is not None else pd.DataFrame()

    def _rows(self, sql: str) -> list[dict[str, Any]]:
        """Straight from Arrow (no pandas: faster, and pandas stays unimported in a detector run)."""
        tbl = self._table(sql)
        if tbl is None:
            return []
        cols = {}
        for name, col in zip(tbl.column_names, tbl.columns, strict=True):
            vals = col.to_pylist()
            if pa.types.is_map(col.type):
                vals = [None if v is None else dict(v) for v in vals]
            elif pa.types.is_floating(col.type):
                vals = [None if v is None or v != v else v for v in vals]
            cols[name] = vals
        return [dict(zip(cols, r, strict=True)) for r in zip(*cols.values(), strict=True)]

    def _scalar(self, sql: str) -> Any:
        tbl = self._table(sql)
        if tbl is None or tbl.num_rows == 0:
            return None
        return tbl.column(0)[0].as_py()

    def _insert(
        self, table: str, columns: Mapping[str, Sequence[Any]], kinds: Mapping[str, str], merge: bool = True
    ) -> None:
        arrays = []
        names = []
        for name, values in columns.items():
            kind = kinds[name]
            typ = ARROW_TYPES[kind]
            if kind.startswith("map_"):
                arrays.append(_map_array(values, typ))
            else:
                arrays.append(pa.array(values, type=typ))
            names.append(name)
        batch = pa.Table.from_arrays(arrays, names=names)  # noqa: F841 - read by chDB's Python() table function
        cols = join(", ", [sql("%(c)s", c=ident(n)) for n in names])
        settings = sql("" if merge else " SETTINGS optimize_on_insert = 0")
        self.execute(sql("%(head)s%(settings)s SELECT %(cols)s FROM Python(batch)", head=self._insert_head(table, names),
                         settings=settings, cols=cols))

    def server_version(self) -> str:
        return str(self.scalar("SELECT version()"))


# ---------------------------------------------------------------------------------------------
# ClickHouse server


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
        if _parse_version(version)[:2] < MIN_SERVER_VERSION:
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
            except cherr.Error as exc:
                raise QueryError(f"{str(exc).strip()[:2000]}\n-- in: {sql[:500]}") from None

    def _exec(self, sql: str) -> None:
        self._call(sql)

    def _df(self, sql: str) -> pd.DataFrame:
        import pandas as pd

        rows, cols = self._call(sql, with_column_types=True)
        return pd.DataFrame(rows, columns=[c[0] for c in cols])

    def _insert(
        self, table: str, columns: Mapping[str, Sequence[Any]], kinds: Mapping[str, str], merge: bool = True
    ) -> None:
        names = list(columns)
        data = []
        for name in names:
            col = columns[name]
            vals = col.to_dicts() if hasattr(col, "to_dicts") else list(col)
            if kinds[name] == "ts":
                vals = [v if isinstance(v, _dt.datetime) else _dt.datetime.fromtimestamp(v / 1000, _dt.UTC) for v in vals]
            data.append(vals)
        self._call(self.sql(sql("%(head)s VALUES", head=self._insert_head(table, names))), data, columnar=True,
                   settings=None if merge else {"optimize_on_insert": 0})

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
