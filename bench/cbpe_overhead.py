"""What CBPE adds to a detector run: 1M predictions x 20 features in the window (a binary model's score and
label), a labelled reference hour before it.

    python bench/cbpe_overhead.py                  # 1M rows in the window, 200k labelled reference rows
    python bench/cbpe_overhead.py --rows 100000
    python bench/cbpe_overhead.py --labelled 0.5   # half the window's labels have arrived

Rows are generated in the store by SQL (``numbers()``), then merged. Timed, each the median of ``--repeat``
runs after one warm-up, the three interleaved: ``run_s`` a detector run (drift, quality, performance; CBPE
pointed at a calibration that does not exist),
``calibrate_s`` :func:`detectors.cbpe.fit_calibration` on the reference hour (once per calibration, not per
run), ``cbpe_s`` :func:`detectors.cbpe.cbpe_run` on the window (what every scheduled run adds once a
calibration exists; all traffic and per slice), ``run_with_cbpe_s`` the detector run with the calibration stored.
``run_with_cbpe_and_calibration_s`` the detector run with CBPE and every drift test's threshold calibrated
(issue #16's speed target: ``cbpe_and_calibration_overhead`` = that / run_s - 1 <= 0.3).
The last line is ``cbpe_overhead key=value ...`` with ``overhead`` = cbpe_s / run_s and ``run_overhead`` =
run_with_cbpe_s / run_s - 1.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import statistics
import sys
import tempfile
import time
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

MODEL = "bench"


def load(store: Any, rows: int, ref_rows: int, features: int, t0: _dt.datetime, labelled: float = 0.0) -> None:
    """``labelled``: the share of the window's predictions whose labels have arrived."""
    from collector.sql import sql

    for tag, start, n, share in (("ref", t0, ref_rows, 1.0), ("cur", t0 + _dt.timedelta(hours=1), rows, labelled)):
        store.execute(sql("""
            INSERT INTO {db}.predictions (event_id, ts, model, model_version, request_id, features_num, pred_label,
                                          pred_score, slices, status, schema_version)
            SELECT id, %(start)s + toIntervalMillisecond(intDiv(number * 3599999, %(n)s)), %(model)s, 'v1', id,
                   mapFromArrays(arrayMap(i -> concat('f', leftPad(toString(i), 2, '0')), range(%(k)s)), xs),
                   if(score >= 0.5, '1', '0'), score, map('region', ['eu', 'us', 'apac'][number % 3 + 1]), 'ok', 1
            FROM (SELECT number, concat(%(tag)s, toString(number)) AS id,
                         arrayMap(i -> randNormal(0, 1) + if(%(shift)s AND i = 0, 0.5, 0), range(%(k)s)) AS xs,
                         1 / (1 + exp(-(xs[1] + xs[2]))) AS score
                  FROM numbers(%(n)s))""",
                          tag=f"{tag}-", start=start, n=int(n), model=MODEL, k=int(features), shift=tag == "cur"))
        if share > 0:
            store.execute(sql("""
                INSERT INTO {db}.labels (event_id, ts, model, request_id, label_class, schema_version)
                SELECT concat('l-', request_id), ts, model, request_id,
                       if(randCanonical() < pow(pred_score, 1.3), '1', '0'), 1
                FROM {db}.predictions WHERE model = %(model)s AND startsWith(request_id, %(tag)s)
                  AND cityHash64(request_id) % 1000 < %(share)s""",
                model=MODEL, tag=f"{tag}-", share=int(round(share * 1000))))
    store.execute("OPTIMIZE TABLE {db}.predictions FINAL")
    store.execute("OPTIMIZE TABLE {db}.labels FINAL")


def _median(fn: Any, repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def measure(rows: int = 1_000_000, ref_rows: int = 200_000, features: int = 20, repeat: int = 3,
            labelled: float = 0.0) -> dict[str, float]:
    from collector.migrations import migrate
    from collector.store import ChdbStore
    from detectors.cbpe import cbpe_run, fit_calibration
    from detectors.runner import run_detectors
    from driftline.migrations import all_migrations

    store = ChdbStore(tempfile.mkdtemp(prefix="cbpe-overhead-"), database="bench")
    migrate(store, all_migrations())
    t0 = (_dt.datetime.now(_dt.UTC) - _dt.timedelta(days=1)).replace(minute=0, second=0, microsecond=0)
    t = time.perf_counter()
    load(store, rows, ref_rows, features, t0, labelled)
    load_s = time.perf_counter() - t
    end = t0 + _dt.timedelta(hours=2)
    hour = _dt.timedelta(hours=1)
    calibrate_s = _median(lambda: fit_calibration(store, MODEL, t0, t0 + hour), 1)
    without = {"cbpe": {"calibration": "absent"}}          # no such calibration: the CBPE block does nothing
    calibrated = {"drift": {"threshold": "calibrated"}}     # CBPE (the calibration is stored) + calibrated thresholds
    runs: dict[str, list[float]] = {"run": [], "with": [], "cbpe": [], "all": []}
    for _ in range(repeat + 1):                             # interleaved (a shared machine's load drifts); the
        for key, fn in (("run", lambda: run_detectors(store, MODEL, end, hour, write=False, config=without)),
                        ("with", lambda: run_detectors(store, MODEL, end, hour, write=False)),
                        ("cbpe", lambda: cbpe_run(store, MODEL, t0 + hour, end)),
                        ("all", lambda: run_detectors(store, MODEL, end, hour, write=False, config=calibrated))):
            t = time.perf_counter()
            fn()
            runs[key].append(time.perf_counter() - t)
    run_s, with_s, cbpe_s, all_s = (statistics.median(runs[k][1:])     # [0]: the warm-up
                                    for k in ("run", "with", "cbpe", "all"))
    store.drop_database()
    return {"rows": rows, "features": features, "labelled": labelled, "load_s": load_s, "run_s": run_s,
            "calibrate_s": calibrate_s,
            "cbpe_s": cbpe_s, "run_with_cbpe_s": with_s, "overhead": cbpe_s / run_s,
            "run_overhead": with_s / run_s - 1, "run_with_cbpe_and_calibration_s": all_s,
            "cbpe_and_calibration_overhead": all_s / run_s - 1}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--ref-rows", type=int, default=200_000)
    ap.add_argument("--features", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--labelled", type=float, default=0.0, help="share of the window's labels already arrived")
    a = ap.parse_args(argv)
    r = measure(a.rows, a.ref_rows, a.features, a.repeat, a.labelled)
    print("cbpe_overhead " + " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
