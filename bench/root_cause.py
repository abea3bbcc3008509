"""Benchmark: what the root cause of one alert costs (:func:`detectors.rootcause.root_cause`).

Loads ``--rows`` labelled predictions of one model over one hour (3 slice keys: region with 8 values, plan 3,
device 4; 10 numeric features), with an accuracy drop confined to region=eu (10% of traffic, accuracy 0.5
against 0.9), runs the detectors once (drift, with the model-level verdict, and per-slice performance; not
timed), then times the root cause as an alert computes it: the stored results of the latest window, plus
one ``GROUP BY`` per slice over the window for the budget burn (accuracy: joined to the latest labels;
errors: with the metric windows' exact counts). Best of ``--repeat`` runs. Last line:
``root_cause rows=… accuracy_burn_s=… errors_burn_s=… no_burn_s=… first_slice=…``.
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
from collector.schema import LABELS, PREDICTIONS  # noqa: E402
from collector.store import ChdbStore  # noqa: E402
from detectors.rootcause import root_cause  # noqa: E402
from detectors.runner import run_detectors  # noqa: E402
from driftline.server import all_migrations  # noqa: E402

REGIONS = ["us", "eu", "apac", "latam", "ca", "uk", "in", "br"]
SHARE = [0.40, 0.10, 0.15, 0.10, 0.08, 0.07, 0.05, 0.05]


def load(store: ChdbStore, rows: int, start: _dt.datetime, *, shift: float, eu_acc: float, seed: int,
         chunk: int = 200_000) -> None:
    rng = np.random.default_rng(seed)
    t0 = int(start.timestamp() * 1000)
    for lo in range(0, rows, chunk):
        n = min(chunk, rows - lo)
        region = rng.choice(REGIONS, n, p=SHARE)
        truth = rng.choice(["a", "b"], n)
        right = rng.random(n) < np.where(region == "eu", eu_acc, 0.9)
        pred = np.where(right, truth, np.where(truth == "a", "b", "a"))
        x = rng.normal(0, 1, (n, 10))
        x[:, 0] += shift
        rid = [f"{seed}-{lo + i}" for i in range(n)]
        plan = rng.choice(["free", "pro", "team"], n)
        device = rng.choice(["ios", "android", "web", "api"], n)
        store.insert(PREDICTIONS, {
            "event_id": [f"p{r}" for r in rid], "ts": (t0 + (lo + np.arange(n)) * 3_500_000 // rows).tolist(),
            "model": ["m"] * n, "model_version": ["v1"] * n, "request_id": rid,
            "features_num": [{f"f{j}": float(v) for j, v in enumerate(row)} for row in x],
            "features_cat": [{}] * n, "features_null": [[]] * n, "pred_value": [None] * n,
            "pred_label": pred.tolist(), "pred_score": [None] * n, "pred_probs": [{}] * n,
            "slices": [{"region": str(a), "plan": str(b), "device": str(c)} for a, b, c in zip(region, plan, device,
                                                                                              strict=True)],
            "latency_ms": [1.0] * n, "status": ["ok"] * n, "error_type": [""] * n, "schema_version": [1] * n})
        store.insert(LABELS, {"event_id": [f"l{r}" for r in rid], "ts": [t0] * n, "model": ["m"] * n,
                              "request_id": rid, "label_value": [None] * n, "label_class": truth.tolist(),
                              "schema_version": [1] * n})


def best(fn, repeat: int) -> tuple[float, object]:  # type: ignore[no-untyped-def]
    out, times = None, []
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rows", type=int, default=500_000, help="labelled predictions in the alert's window")
    p.add_argument("--repeat", type=int, default=3)
    a = p.parse_args()
    path = tempfile.mkdtemp(prefix="driftline-bench-rootcause-")
    try:
        store = ChdbStore(path, database="bench")
        migrate(store, all_migrations())
        end = (_dt.datetime.now(_dt.UTC) - _dt.timedelta(hours=1)).replace(minute=0, second=0, microsecond=0)
        h = _dt.timedelta(hours=1)
        load(store, a.rows // 5, end - 2 * h, shift=0.0, eu_acc=0.9, seed=1)   # the previous window: reference
        load(store, a.rows, end - h, shift=0.5, eu_acc=0.5, seed=2)
        t = time.perf_counter()
        rep = run_detectors(store, "m", end, h, config={"drift": {"tests": {"psi": None}}})
        print(f"detectors (not timed below): {time.perf_counter() - t:.2f} s, {len(rep.results)} results")
        s_acc, rc = best(lambda: root_cause(store, "m", end - h, end, burn={"kind": "accuracy", "objective": 0.99}),
                         a.repeat)
        s_err, _ = best(lambda: root_cause(store, "m", end - h, end, burn={"kind": "errors", "objective": 0.99}),
                        a.repeat)
        s_none, _ = best(lambda: root_cause(store, "m", end - h, end), a.repeat)
        assert isinstance(rc, dict)
        for k in ("slices", "features", "burn"):
            print(k, [(x.get("slice") or x.get("feature"), round(x.get("contribution", x.get("burn_rate", 0)), 4))
                      for x in rc[k]])
        print(f"root_cause rows={a.rows} accuracy_burn_s={s_acc:.3f} errors_burn_s={s_err:.3f} "
              f"no_burn_s={s_none:.3f} first_slice={rc['slices'][0]['slice'] if rc['slices'] else '-'}")
    finally:
        shutil.rmtree(path, ignore_errors=True)


if __name__ == "__main__":
    main()
