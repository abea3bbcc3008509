"""The detectors' subcommands of ``driftline`` (wired in :mod:`driftline.cli`): ``reference`` uploads a
baseline file, ``report`` writes an Evidently HTML report. Both open the store directly (``open_store`` is
passed in by the composition root), so they run while no server owns a chDB path (or against a ClickHouse
server)."""

from __future__ import annotations

import argparse
import datetime as _dt
from collections.abc import Callable
from typing import Any

__all__ = ["add_upload_args", "add_report_args", "reference_upload", "report"]


def _ts(s: str) -> _dt.datetime:
    t = _dt.datetime.fromisoformat(s)
    return t if t.tzinfo else t.replace(tzinfo=_dt.UTC)


def add_upload_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", help="CSV (.csv, .tsv, .csv.gz) or Parquet file of the training baseline")
    p.add_argument("--model", required=True)
    p.add_argument("--name", default="baseline", help="reference name used by run_detectors(reference=...)")
    p.add_argument("--prediction", help="column with the prediction (number or class)")
    p.add_argument("--score", help="column with the prediction score")
    p.add_argument("--label", help="column with the ground truth (number or class)")
    p.add_argument("--exclude", action="append", default=[], help="column to leave out (repeatable)")
    p.add_argument("--store", default=None)
    p.add_argument("--no-progress", action="store_true")


def add_report_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True)
    p.add_argument("--start", required=True, type=_ts, help="current window start (ISO 8601, UTC if naive)")
    p.add_argument("--end", required=True, type=_ts)
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--reference-file", help="CSV or Parquet baseline")
    g.add_argument("--reference-window", nargs=2, type=_ts, metavar=("START", "END"))
    p.add_argument("--sample", type=int, default=10_000)
    p.add_argument("--version", default=None)
    p.add_argument("--out", default="drift_report.html")
    p.add_argument("--store", default=None)


def reference_upload(args: argparse.Namespace, open_store: Callable[[str | None], Any]) -> int:
    from collector.audit import cli_actor
    from detectors.reference import audit_reference, list_references
    from detectors.upload import upload_reference

    store = open_store(args.store)
    before = list_references(store, args.model)
    p = upload_reference(store, args.model, args.name, args.path, prediction=args.prediction, score=args.score,
                         label=args.label, exclude=args.exclude, progress=not args.no_progress)
    audit_reference(store, before, p, actor=cli_actor())
    kinds: dict[str, int] = {}
    for f in p.features.values():
        kinds[f.kind] = kinds.get(f.kind, 0) + 1
    print(f"reference {p.name!r} of model {p.model!r}: {p.rows} rows, "
          + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) + " features stored")
    return 0


def report(args: argparse.Namespace, open_store: Callable[[str | None], Any]) -> int:
    from detectors.report import evidently_html, file_sample, window_sample

    store = open_store(args.store)
    cur = window_sample(store, args.model, args.start, args.end, sample=args.sample, version=args.version)
    if args.reference_file:
        ref = file_sample(args.reference_file, sample=args.sample)
    else:
        ref = window_sample(store, args.model, *args.reference_window, sample=args.sample, version=args.version)
    html = evidently_html(ref, cur)
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(html)
    print(f"wrote {args.out}: reference {len(ref)} rows, current {len(cur)} rows")
    return 0
