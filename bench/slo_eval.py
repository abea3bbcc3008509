"""Benchmark: evaluate 100 SLOs over 30 days of one-minute metric windows.

Loads 30 days × 1440 one-minute windows for each of 100 models (one replica each: 4.32 M rows) into a
fresh chDB store, defines 100 SLOs (one per model, availability and latency alternating, 99.9% over
30 days, the workbook's three tiers: 6 distinct windows), then times :func:`slo_engine.evaluate.evaluate` only
(the data load is not timed): one scan of ``metric_windows FINAL`` for all SLOs and windows, plus the
Python that turns its few rows into statuses and rules. Best of ``--repeat`` runs. One scheduler tick
(:func:`slo_engine.engine.evaluate_and_notify`) is timed once as well. Last line:
``slo_eval slos=100 days=30 seconds=…``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # this checkout, not an install

import numpy as np  # noqa: E402

from collector.migrations import migrate  # noqa: E402
from collector.store import ChdbStore  # noqa: E402
from driftline.server import all_migrations  # noqa: E402
from serving_shim.contract import LATENCY_BUCKETS_MS  # noqa: E402
from slo_engine.engine import evaluate_and_notify  # noqa: E402
from slo_engine.evaluate import evaluate  # noqa: E402
from slo_engine.model import Sli, Slo  # noqa: E402


def load(store: ChdbStore, models: int, days: int, now: _dt.datetime) -> int:
    rng = np.random.default_rng(7)
    minutes = days * 1440
    start_ms = int((now - _dt.timedelta(minutes=minutes)).timestamp() * 1000)
    nb = len(LATENCY_BUCKETS_MS) + 1
    n = 0
    for m in range(models):
        req = rng.integers(500, 1500, minutes)
        err = rng.binomial(req, 0.0005)
        share = rng.dirichlet(np.ones(nb) * 2, 1)[0]
        buckets = [list(rng.multinomial(int(r), share)) for r in req]
        store.insert("metric_windows", {
            "event_id": [f"w{m}-{i}" for i in range(minutes)],
            "window_start": [start_ms + i * 60_000 for i in range(minutes)],
            "window_s": [60] * minutes, "model": [f"model-{m:03d}"] * minutes, "model_version": ["v1"] * minutes,
            "source": ["replica-1"] * minutes, "requests": req.tolist(),
            "errors": [{"timeout": int(e)} for e in err], "latency_buckets": buckets,
            "latency_sum_ms": (req * 40.0).tolist(), "schema_version": [1] * minutes,
        })
        n += minutes
    return n


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--models", type=int, default=100)
    p.add_argument("--slos", type=int, default=100)
    p.add_argument("--days", type=int, default=30)
    p.add_argument("--repeat", type=int, default=5)
    a = p.parse_args()
    path = tempfile.mkdtemp(prefix="driftline-bench-slo-")
    try:
        store = ChdbStore(path, database="bench")
        migrate(store, all_migrations())
        now = _dt.datetime(2026, 11, 1, tzinfo=_dt.UTC)
        t0 = time.perf_counter()
        rows = load(store, a.models, a.days, now)
        print(f"loaded {rows} metric windows in {time.perf_counter() - t0:.1f} s", flush=True)
        slos = []
        for i in range(a.slos):
            m = i % a.models
            sli = Sli(kind="availability") if i % 2 == 0 else Sli(kind="latency", threshold_ms=250.0)
            slos.append(Slo(name=f"slo-{i:03d}-{sli.kind}", model=f"model-{m:03d}", objective=0.999,
                            window_s=30 * 86400, sli=sli))
        times = []
        for _ in range(a.repeat):
            t0 = time.perf_counter()
            res = evaluate(store, slos, now)
            times.append(time.perf_counter() - t0)
        assert len(res) == len(slos) and all(r.total > 0 for r in res)
        t0 = time.perf_counter()
        tick = evaluate_and_notify(store, slos, now, [])
        print(f"evaluate_and_notify (evaluate + alert state + silences + routing + state write, no notifiers): "
              f"{time.perf_counter() - t0:.3f} s, {len(tick.changed)} alert states written")
        print(f"evaluate: runs {', '.join(f'{t:.3f}' for t in times)} s (best of {a.repeat}); "
              f"{len(res)} statuses, {len(res[0].windows)} windows each")
        print(f"slo_eval slos={len(slos)} days={a.days} seconds={min(times):.3f}")
    finally:
        shutil.rmtree(path, ignore_errors=True)


if __name__ == "__main__":
    main()
