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
from collections.abc import Iterator, Sequence
from typing import Any

import pyarrow as pa

from collector.store import Store
from detectors.drift_sql import upload_source
from detectors.reference import Profile, build_profile, save_profile

__all__ = ["upload_reference", "read_batches"]

_KINDS = {"upload_id": "str", "features_num": "map_sf", "features_cat": "map_ss", "features_null": "arr_s",
          "pred_value": "f64n", "pred_score": "f64n", "pred_label": "strn", "label_value": "f64n", "label_class": "strn"}


def read_batches(path: str, batch_rows: int) -> tuple[int | None, Iterator[pa.RecordBatch]]:
    """(total rows if known cheaply, batches) of a CSV or Parquet file."""
    low = path.lower()
    if low.endswith((".parquet", ".pq")):
        import pyarrow.parquet as pq

        f = pq.ParquetFile(path)
        return f.metadata.num_rows, f.iter_batches(batch_size=batch_rows)
    if low.endswith((".csv", ".csv.gz", ".tsv")):
        from pyarrow import csv

        with open(path, "rb") as fh:
            total = max(0, sum(1 for _ in fh) - 1) if not low.endswith(".gz") else None
        opts = csv.ReadOptions(block_size=1 << 22)
        parse = csv.ParseOptions(delimiter="\t" if low.endswith(".tsv") else ",")
        reader = csv.open_csv(path, read_options=opts, parse_options=parse)
        return total, iter(reader)
    raise ValueError(f"{path}: unknown file type (use .csv, .tsv, .csv.gz or .parquet)")


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
                     max_categories: int = 100) -> Profile:
    """Stage ``path`` in the store, build and store its profile under ``(model, name)``."""
    from tqdm import tqdm

    if not os.path.exists(path):
        raise FileNotFoundError(path)
    total, batches = read_batches(path, batch_rows)
    uid = uuid.uuid4().hex
    special = {c for c in (prediction, score, label) if c}
    bar = tqdm(total=total, unit="rows", desc=f"upload {os.path.basename(path)}", disable=not progress)
    rows = 0
    try:
        for batch in batches:
            names = [c for c in batch.schema.names if c not in special and c not in exclude
                     and (features is None or c in features)]
            cols = {c: (batch.column(c), _is_num(batch.column(c).type)) for c in names}
            pylists = {c: (a.cast(pa.float64()) if num else a.cast(pa.string())).to_pylist() for c, (a, num) in cols.items()}
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
            store.insert("reference_rows", out, _KINDS)
            rows += n
            bar.update(n)
    finally:
        bar.close()
    try:
        prof = build_profile(store, upload_source(uid), model=model, name=name, source="upload",
                             max_categories=max_categories)
        return save_profile(store, prof)
    finally:
        store.execute("DELETE FROM {db}.reference_rows WHERE upload_id = %(u)s", {"u": uid})
