"""Benchmark: one canary verdict (detectors.canary.compare) over sampled predictions of two versions.

Loads ``--predictions`` sampled predictions per version (10 numeric features, a score and a label, 80% of
them labelled) and one hour of one-minute metric windows per version into a fresh chDB store, then times
``compare`` in canary mode and in shadow mode (the same request ids for both versions): every count and
histogram is a query in ClickHouse; Python gets a few rows. Best of ``--repeat`` runs. Last line:
``canary predictions=… canary_s=… shadow_s=…``. The candidate is equivalent (same scores, error rate and
latency; other features): both modes should say ``promote``.
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
from detectors.canary import compare  # noqa: E402
from driftline.server import all_migrations  # noqa: E402
from serving_shim.contract import LATENCY_BUCKETS_MS  # noqa: E402


def load(store: ChdbStore, version: str, n: int, start: _dt.datetime, seed: int) -> None:
    rng = np.random.default_rng(seed)
    start_ms = int(start.timestamp() * 1000)
    ts = start_ms + np.sort(rng.integers(0, 3_600_000, n))
    score = np.random.default_rng(99).random(n)   # the same scores for both versions: an equivalent candidate
    labels = np.where(score >= 0.5, "yes", "no")
    feats = rng.normal(0, 1, (n, 10))
    names = [f"f{i}" for i in range(10)]
    status = np.where(rng.random(n) < 0.01, "error", "ok")
    store.insert("predictions", {
        "event_id": [f"{version}-{i}" for i in range(n)], "ts": ts.tolist(), "model": ["m"] * n,
        "model_version": [version] * n, "request_id": [f"r{i}" for i in range(n)],
        "features_num": [dict(zip(names, row.tolist(), strict=True)) for row in feats], "features_cat": [{}] * n,
        "features_null": [[]] * n, "pred_value": [None] * n, "pred_label": labels.tolist(),
        "pred_score": score.tolist(), "pred_probs": [{}] * n, "slices": [{}] * n, "latency_ms": [20.0] * n,
        "status": status.tolist(), "error_type": ["" if s == "ok" else "timeout" for s in status],
        "schema_version": [1] * n})
    if version == "v1":
        k = int(n * 0.8)
        truth = np.where(rng.random(k) < 0.9, labels[:k], np.where(labels[:k] == "yes", "no", "yes"))
        store.insert("labels", {"event_id": [f"l{i}" for i in range(k)], "ts": ts[:k].tolist(), "model": ["m"] * k,
                                "request_id": [f"r{i}" for i in range(k)], "label_value": [None] * k,
                                "label_class": truth.tolist(), "schema_version": [1] * k})
    nb = len(LATENCY_BUCKETS_MS) + 1
    b = [0] * nb
    b[5] = 1000
    store.insert("metric_windows", {
        "event_id": [f"w{version}{i}" for i in range(60)], "window_start": [start_ms + i * 60_000 for i in range(60)],
        "window_s": [60] * 60, "model": ["m"] * 60, "model_version": [version] * 60, "source": ["r1"] * 60,
        "requests": [1000] * 60, "errors": [{"timeout": 10}] * 60, "latency_buckets": [b] * 60,
        "latency_sum_ms": [20000.0] * 60, "schema_version": [1] * 60})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--predictions", type=int, default=200_000, help="sampled predictions per version")
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    path = tempfile.mkdtemp(prefix="driftline-bench-canary-")
    try:
        store = ChdbStore(path, database="bench")
        migrate(store, all_migrations())
        start = _dt.datetime.now(_dt.UTC).replace(second=0, microsecond=0) - _dt.timedelta(hours=2)
        t0 = time.perf_counter()
        for i, version in enumerate(("v1", "v2")):
            load(store, version, a.predictions, start, seed=i)
        print(f"loaded {2 * a.predictions:,} predictions in {time.perf_counter() - t0:.1f} s", flush=True)
        out = {}
        for mode in ("canary", "shadow"):
            best = float("inf")
            for _ in range(a.repeat):
                t = time.perf_counter()
                v = compare(store, "m", "v1", "v2", start=start, end=start + _dt.timedelta(hours=1), mode=mode)
                best = min(best, time.perf_counter() - t)
            out[mode] = best
            print(f"{mode}: {v.verdict} ({len(v.checks)} checks) best of {a.repeat}: {best:.2f} s", flush=True)
        print(f"canary predictions={a.predictions} canary_s={out['canary']:.2f} shadow_s={out['shadow']:.2f}")
    finally:
        shutil.rmtree(path, ignore_errors=True)


if __name__ == "__main__":
    main()
