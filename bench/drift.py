"""PSI for every feature through the store, against Evidently's DataDriftPreset(method="psi").

    python bench/drift.py                      # 1M reference + 1M current rows, 20 features
    python bench/drift.py --rows 10000000      # the 10M target (Evidently anchor skipped unless --evidently)

The data (normal features, the first ``--shifted`` with a mean shift of 0.5) is generated once with a
fixed seed and written to Parquet. Driftline runs in subprocesses on a fresh chDB path:

1. load: both Parquet files are inserted into ``predictions`` by SQL (reference in one hour, current
   in the next) and the parts merged (``OPTIMIZE ... FINAL``), timed as ``load_s`` (not part of
   ``driftline_s``);
2. detect: a new process opens the store, builds and stores the reference profile of the first hour
   (quantile grid + exact bin counts), summarises the current hour on those bins and computes PSI for
   every feature, ``--repeat`` times (the first run is cold: empty caches). ``driftline_s`` is the
   median run of this whole step (reference build + current + PSI), ``run_s`` its current-window part
   (what every scheduled run costs once the reference is stored), and ``peak_rss_mb`` this process's
   ``ru_maxrss`` (Python, pyarrow, pandas once an insert has imported it, chDB engine and all;
   ``baseline_rss_mb`` is the same process idle, after opening the store, before any work).
   ``default_tests_run_s``: one run of the scheduler's default tests (PSI, KS, Wasserstein, JS, ...)
   against the stored reference, the window counted on the reference's full quantile grid.
   ``anon_mb`` and ``file_mb`` split the resident memory at the end of the runs (the largest value
   seen after any run, from ``RssAnon``/``RssFile`` in ``/proc/self/status``) into anonymous memory
   (Python objects, ClickHouse query memory and caches) and file-backed pages (mapped code, mostly
   the chDB library): they explain ``peak_rss_mb``, they do not replace it (a peak inside a query
   is not seen by these samples).

Evidently runs in this process on the same data as pandas DataFrames (timed: report run only).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

if TYPE_CHECKING:
    from collector.store import ChdbStore

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = "bench"


def _names(k: int) -> list[str]:
    return [f"f{i:02d}" for i in range(k)]


def generate(path: str, rows: int, features: int, shifted: int, shift: float, seed: int) -> None:
    """Parquet with ``features`` float columns, written in chunks (bounded memory)."""
    rng = np.random.default_rng(seed)
    names = _names(features)
    with pq.ParquetWriter(path, pa.schema([(n, pa.float64()) for n in names])) as w:
        for off in range(0, rows, 1_000_000):
            n = min(1_000_000, rows - off)
            cols = [rng.normal(shift if i < shifted else 0.0, 1.0 + 0.1 * i, n) for i in range(features)]
            w.write_table(pa.table(dict(zip(names, cols, strict=True))))


def _store(path: str) -> ChdbStore:
    sys.path.insert(0, ROOT)
    from collector.migrations import migrate
    from collector.store import ChdbStore
    from driftline.migrations import all_migrations

    s = ChdbStore(path, database="bench")
    migrate(s, all_migrations())
    return s


def part_load(store_path: str, data: str, rows: int, features: int, t0: _dt.datetime) -> dict:
    s = _store(store_path)
    t = time.perf_counter()
    from collector.sql import ident, join, sql

    fmap = join(", ", [sql("%(k)s, %(c)s", k=n, c=ident(n)) for n in _names(features)])
    for tag, start in (("ref", t0), ("cur", t0 + _dt.timedelta(hours=1))):
        s.execute(sql("""
            INSERT INTO {db}.predictions (event_id, ts, model, model_version, request_id, features_num, status,
                                          schema_version)
            SELECT concat(%(tag)s, toString(rowNumberInAllBlocks())) AS id,
                   %(start)s + toIntervalMillisecond(intDiv(rowNumberInAllBlocks() * 3599999, %(rows)s)),
                   %(model)s, 'v1', id, map(%(fmap)s), 'ok', 1
            FROM file(%(path)s, Parquet)""", tag=f"{tag}-", start=start, rows=int(rows), model=MODEL, fmap=fmap,
                      path=os.path.join(data, tag + ".parquet")))
    # merge the freshly inserted parts now, as the background merges of a running store would have:
    # otherwise they run inside the timed step and compete with it for the CPU
    s.execute("OPTIMIZE TABLE {db}.predictions FINAL")
    n = s.scalar("SELECT count() FROM {db}.predictions FINAL")
    return {"load_s": time.perf_counter() - t, "stored_rows": int(n),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _rss_split() -> tuple[float, float]:
    """(RssAnon, RssFile) of this process now, in MB (Linux; zeros elsewhere)."""
    got = {}
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                key, _, val = line.partition(":")
                if key in ("RssAnon", "RssFile"):
                    got[key] = int(val.split()[0]) / 1024
    except OSError:
        pass
    return got.get("RssAnon", 0.0), got.get("RssFile", 0.0)


def part_detect(store_path: str, t0: _dt.datetime, bins: int, repeat: int) -> dict:
    s = _store(store_path)
    s.scalar("SELECT 1")
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024   # Python + pandas + the chDB engine, idle
    from detectors.drift import DriftConfig, drift_results, summarize_window
    from detectors.drift_sql import window_source
    from detectors.reference import reference_from_window

    h = _dt.timedelta(hours=1)
    runs = []
    anon, file = _rss_split()
    for _ in range(repeat):
        t = time.perf_counter()
        prof = reference_from_window(s, MODEL, t0, t0 + h, name="bench-ref", labels=False)
        t_ref = time.perf_counter() - t
        cur = summarize_window(s, window_source(MODEL, t0 + h, t0 + 2 * h), prof, bins=bins)
        res = drift_results(prof, cur, DriftConfig.parse({"psi": 0.2}, bins=bins),
                            features={f for f in prof.features if not f.startswith("@")})
        total = time.perf_counter() - t
        runs.append((total, t_ref, total - t_ref))
        anon, file = (max(a, b) for a, b in zip((anon, file), _rss_split(), strict=True))
    # the median run: the machine is shared, and one run in a few takes 1.5-3x as long (at any step)
    total, t_ref, t_cur = sorted(runs)[len(runs) // 2]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024    # the PSI runs' peak (KS below loads scipy)
    full = []   # the scheduler's default tests (PSI, KS, Wasserstein, JS, ...): the window on the full grid
    for _ in range(3):
        t = time.perf_counter()
        whole = summarize_window(s, window_source(MODEL, t0 + h, t0 + 2 * h), prof)
        drift_results(prof, whole, DriftConfig(), features={f for f in prof.features if not f.startswith("@")})
        full.append(time.perf_counter() - t)
    return {"driftline_s": total, "reference_s": t_ref, "current_s": t_cur, "runs": runs,
            "full_grid_s": sorted(full)[1],
            "psi": {r.subject: r.value for r in res}, "status": {r.subject: r.status for r in res},
            "peak_rss_mb": peak, "baseline_rss_mb": baseline,
            "anon_mb": anon, "file_mb": file}


def run_evidently(data: str) -> tuple[float, dict[str, float]]:
    import pandas as pd
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    ref = pd.read_parquet(os.path.join(data, "ref.parquet"))
    cur = pd.read_parquet(os.path.join(data, "cur.parquet"))
    dd = DataDefinition(numerical_columns=list(ref.columns))
    t = time.perf_counter()
    snap = Report([DataDriftPreset(method="psi")]).run(Dataset.from_pandas(cur, data_definition=dd),
                                                      Dataset.from_pandas(ref, data_definition=dd))
    el = time.perf_counter() - t
    vals = {}
    for m in snap.dict()["metrics"]:
        if m["metric_name"].startswith("ValueDrift("):
            vals[m["config"]["column"]] = float(m["value"])
    return el, vals


def _sub(*args: str) -> dict:
    out = subprocess.run([sys.executable, os.path.abspath(__file__), *args], capture_output=True, text=True,
                         cwd=ROOT, env={**os.environ, "PYTHONPATH": ROOT})
    if out.returncode != 0:
        raise SystemExit(f"bench part {args[0]} failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=1_000_000, help="rows in the reference and in the current window each")
    p.add_argument("--features", type=int, default=20)
    p.add_argument("--shifted", type=int, default=5)
    p.add_argument("--shift", type=float, default=0.5)
    p.add_argument("--bins", type=int, default=10)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--repeat", type=int, default=5, help="Driftline runs (reference build + PSI) in one process; "
                   "the median is reported, every run is printed")
    p.add_argument("--evidently", action=argparse.BooleanOptionalAction, default=None,
                   help="run the Evidently anchor (default: only up to 2M rows)")
    p.add_argument("--part", choices=["load", "detect"], help=argparse.SUPPRESS)
    p.add_argument("--store", help=argparse.SUPPRESS)
    p.add_argument("--data", help=argparse.SUPPRESS)
    p.add_argument("--t0", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.part == "load":
        print(json.dumps(part_load(a.store, a.data, a.rows, a.features, _dt.datetime.fromisoformat(a.t0))))
        return 0
    if a.part == "detect":
        print(json.dumps(part_detect(a.store, _dt.datetime.fromisoformat(a.t0), a.bins, a.repeat)))
        return 0

    work = tempfile.mkdtemp(prefix="driftline-bench-")
    t0 = (_dt.datetime.now(_dt.UTC) - _dt.timedelta(hours=6)).replace(minute=0, second=0, microsecond=0)
    t = time.perf_counter()
    generate(os.path.join(work, "ref.parquet"), a.rows, a.features, 0, 0.0, a.seed)
    generate(os.path.join(work, "cur.parquet"), a.rows, a.features, a.shifted, a.shift, a.seed + 1)
    print(f"generated {a.rows} + {a.rows} rows x {a.features} features in {time.perf_counter() - t:.1f}s ({work})",
          flush=True)
    common = ["--rows", str(a.rows), "--features", str(a.features), "--bins", str(a.bins), "--repeat", str(a.repeat),
              "--store", os.path.join(work, "store"), "--data", work, "--t0", t0.isoformat()]
    load = _sub("--part", "load", *common)
    print(f"load (not timed as driftline): {load['load_s']:.2f}s, {load['stored_rows']} rows stored, "
          f"peak RSS of the loader {load['peak_rss_mb']:.0f} MB", flush=True)
    det = _sub("--part", "detect", *common)
    print("driftline runs (total, reference build, current window + PSI): "
          + "; ".join(f"{x:.3f}s {y:.3f}s {z:.3f}s" for x, y, z in det["runs"]), flush=True)
    print(f"driftline (median run): reference profile {det['reference_s']:.3f}s (built once, stored) "
          f"+ current window and PSI {det['current_s']:.3f}s (every run) = {det['driftline_s']:.3f}s; "
          f"peak RSS {det['peak_rss_mb']:.0f} MB, of which {det['baseline_rss_mb']:.0f} MB is the idle process "
          f"(Python, pyarrow, chDB engine) before any work; "
          f"resident after the runs: {det['anon_mb']:.0f} MB anonymous + {det['file_mb']:.0f} MB file-backed",
          flush=True)
    run_ev = a.evidently if a.evidently is not None else a.rows <= 2_000_000
    ev_s, ev = float("nan"), dict[str, float]()
    if run_ev:
        ev_s, ev = run_evidently(work)
    print(f"{'feature':<8} {'driftline_psi':>14} {'status':>8} {'evidently_psi':>14}")
    for f in sorted(det["psi"]):
        v = det["psi"][f]
        print(f"{f:<8} {v if v is None else round(v, 4)!s:>14} {det['status'][f]:>8} {ev.get(f, float('nan')):>14.4f}")
    speed = ev_s / det["driftline_s"] if run_ev else float("nan")
    run_speed = ev_s / det["current_s"] if run_ev else float("nan")
    # driftline_s and speedup: reference build + current window + PSI (what Evidently's run also does);
    # run_s and run_speedup: one scheduled run against the stored reference profile.
    print(f"drift_bench rows={a.rows} features={a.features} driftline_s={det['driftline_s']:.3f} "
          f"evidently_s={ev_s:.3f} speedup={speed:.1f} peak_rss_mb={det['peak_rss_mb']:.0f} "
          f"run_s={det['current_s']:.3f} run_speedup={run_speed:.1f} baseline_rss_mb={det['baseline_rss_mb']:.0f} "
          f"anon_mb={det['anon_mb']:.0f} file_mb={det['file_mb']:.0f} default_tests_run_s={det['full_grid_s']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
