"""Upload a training baseline (CSV or Parquet) as a stored reference profile.

The file is read in batches (pyarrow), staged in ``reference_rows`` under a fresh upload id with
the same Map layout as predictions, summarised by the same SQL as a time-window reference, stored
as a profile, and the staged rows are deleted. Numeric columns become numeric features, string
columns categorical ones, nulls explicit nulls. Optional columns give the prediction (number:
``@pred.value``, string: ``@pred.label``), the score (``@pred.score``) and the label (number:
``@label.value``, string: ``@label.class``), so prediction and label drift have a baseline too.
"""

from __future__ import annotations

import os
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

import pyarrow as pa

from collector.schema import REFERENCE_ROWS
from collector.sql import sql
from collector.store import Store
from detectors.drift_sql import upload_source
from detectors.multivariate import save_upload_sample
from detectors.reference import Profile, build_profile, save_profile

__all__ = ["upload_reference", "read_batches", "UploadRefused", "UPLOAD_SUFFIXES"]

#: The file types a reference upload may be (longest first: ``.csv.gz`` before ``.csv``).
UPLOAD_SUFFIXES = (".csv.gz", ".csv", ".tsv", ".parquet", ".pq")



class UploadRefused(ValueError):
    """A file that cannot be a reference: unreadable, duplicate columns, or over a row or column cap."""


def _header_columns(path: str, delimiter: str, max_columns: int | None) -> list[str]:
    """The column names of a CSV's first line, read with a bound (1 KiB per allowed column)."""
    import csv as _csv

    bound = (max_columns or 100_000) * 1024
    with open(path, "rb") as fh:
        line = fh.readline(bound + 1)
    if len(line) > bound and not line.endswith(b"\n"):
        raise UploadRefused(f"header: the first line is longer than {bound} bytes")
    try:
        return next(_csv.reader([line.decode("utf-8-sig").rstrip("\r\n")], delimiter=delimiter), [])
    except UnicodeDecodeError:
        raise UploadRefused("header: not UTF-8 text") from None


def _check_columns(names: Sequence[str], max_columns: int | None) -> None:
    if max_columns is not None and len(names) > max_columns:
        raise UploadRefused(f"columns: {len(names)} columns is over the limit of {max_columns}")
    dup = sorted(n for n, count in Counter(names).items() if count > 1)
    if dup:
        raise UploadRefused(f"columns: {', '.join(repr(d) for d in dup[:10])} appear more than once")


def _count_lines(path: str) -> int:
    with open(path, "rb") as fh:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 20), b""))


def read_batches(path: str, batch_rows: int, *, max_rows: int | None = None,
                 max_columns: int | None = None) -> tuple[int | None, Iterator[pa.RecordBatch]]:
    """(total rows if known cheaply, batches) of a CSV or Parquet file, refused (:class:`UploadRefused`)
    when unreadable, with duplicate column names, or over ``max_rows`` / ``max_columns``. Messages name
    the file by its base name only."""
    low = path.lower()
    shown = os.path.basename(path)
    if low.endswith((".parquet", ".pq")):
        import pyarrow.parquet as pq

        try:
            f = pq.ParquetFile(path)
        except (pa.ArrowException, OSError) as exc:
            raise UploadRefused(f"file: not a readable Parquet file ({type(exc).__name__})") from None
        _check_columns(f.schema_arrow.names, max_columns)
        total = f.metadata.num_rows
        if max_rows is not None and total > max_rows:
            raise UploadRefused(f"rows: {total} rows is over the limit of {max_rows}")
        return total, f.iter_batches(batch_size=batch_rows)
    if low.endswith((".csv", ".csv.gz", ".tsv")):
        from pyarrow import csv

        delimiter = "\t" if low.endswith(".tsv") else ","
        total = None
        if not low.endswith(".gz"):
            _check_columns(_header_columns(path, delimiter, max_columns), max_columns)
            total = max(0, _count_lines(path) - 1)
            if max_rows is not None and total > max_rows:
                raise UploadRefused(f"rows: about {total} rows is over the limit of {max_rows}")
        opts = csv.ReadOptions(block_size=1 << 22)
        try:
            reader = csv.open_csv(path, read_options=opts, parse_options=csv.ParseOptions(delimiter=delimiter))
        except (pa.ArrowException, OSError) as exc:
            raise UploadRefused(f"file: not a readable CSV file ({_scrub(exc, path)})") from None
        _check_columns(reader.schema.names, max_columns)
        return total, _bounded(reader, path, max_rows)
    raise UploadRefused(f"{shown}: unknown file type (use {', '.join(UPLOAD_SUFFIXES)})")


def _scrub(exc: BaseException, path: str) -> str:
    """An error message without the server's file path."""
    return str(exc).replace(path, os.path.basename(path)).replace(os.path.dirname(path) + os.sep, "")


def _bounded(reader: Any, path: str, max_rows: int | None) -> Iterator[pa.RecordBatch]:
    rows = 0
    while True:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            return
        except (pa.ArrowException, OSError) as exc:
            raise UploadRefused(f"file: after row {rows}: {_scrub(exc, path)}") from None
        rows += batch.num_rows
        if max_rows is not None and rows > max_rows:
            raise UploadRefused(f"rows: over the limit of {max_rows}")
        yield batch


def _is_num(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t) or pa.types.is_decimal(t)


def _col(batch: pa.RecordBatch, name: str | None) -> tuple[list[Any] | None, bool]:
    if name is None:
        return None, False
    if name not in batch.schema.names:
        raise ValueError(f"column {name!r} is not in the file (columns: {batch.schema.names[:30]})")
    arr = batch.column(name)
    num = _is_num(arr.type)
    vals = arr.cast(pa.float64()).to_pylist() if num else arr.cast(pa.string()).to_pylist()
    return vals, num


def upload_reference(store: Store, model: str, name: str, path: str, *, features: Sequence[str] | None = None,
                     exclude: Sequence[str] = (), prediction: str | None = None, score: str | None = None,
                     label: str | None = None, batch_rows: int = 50_000, progress: bool = True,
                     max_categories: int = 100, max_rows: int | None = None,
                     max_columns: int | None = None) -> Profile:
    """Stage ``path`` in the store, build and store its profile under ``(model, name)``.

    Refuses (:class:`UploadRefused`) an unreadable file, duplicate columns, or more than ``max_rows`` rows
    or ``max_columns`` columns, before staging anything (a file that fails half-way leaves no staged rows)."""
    from tqdm import tqdm

    if not os.path.exists(path):
        raise FileNotFoundError(path)
    total, batches = read_batches(path, batch_rows, max_rows=max_rows, max_columns=max_columns)
    uid = uuid.uuid4().hex
    special = {c for c in (prediction, score, label) if c}
    bar = tqdm(total=total, unit="rows", desc=f"upload {os.path.basename(path)}", disable=not progress)
    rows = 0
    try:
        for batch in batches:
            names = [c for c in batch.schema.names if c not in special and c not in exclude
                     and (features is None or c in features)]
            cols = {c: (batch.column(c), _is_num(batch.column(c).type)) for c in names}
            pylists = {c: (a.cast(pa.float64()) if num else a.cast(pa.string())).to_pylist()
                       for c, (a, num) in cols.items()}
            n = batch.num_rows
            fnum: list[dict[str, float]] = [{} for _ in range(n)]
            fcat: list[dict[str, str]] = [{} for _ in range(n)]
            fnull: list[list[str]] = [[] for _ in range(n)]
            for c, vals in pylists.items():
                target = fnum if cols[c][1] else fcat
                for i, v in enumerate(vals):
                    if v is None or (isinstance(v, float) and v != v):
                        fnull[i].append(c)
                    else:
                        target[i][c] = v
            out: dict[str, list[Any]] = {"upload_id": [uid] * n, "features_num": fnum, "features_cat": fcat,
                                         "features_null": fnull}
            pv, pnum = _col(batch, prediction)
            sv, _ = _col(batch, score)
            lv, lnum = _col(batch, label)
            out["pred_value"] = pv if pv is not None and pnum else [None] * n
            out["pred_label"] = pv if pv is not None and not pnum else [None] * n
            out["pred_score"] = sv if sv is not None else [None] * n
            out["label_value"] = lv if lv is not None and lnum else [None] * n
            out["label_class"] = lv if lv is not None and not lnum else [None] * n
            store.insert(REFERENCE_ROWS, out)
            rows += n
            bar.update(n)
        bar.close()
        prof = build_profile(store, upload_source(uid), model=model, name=name, source="upload",
                             max_categories=max_categories)
        saved = save_profile(store, prof)
        save_upload_sample(store, uid, saved)       # the rows multivariate drift samples, once the staging is gone
        return saved
    finally:
        bar.close()
        if rows:  # staged rows go, whether the profile was stored or the file failed half-way
            store.execute(sql("DELETE FROM {db}.reference_rows WHERE upload_id = %(u)s", u=uid))
