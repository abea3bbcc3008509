"""What multivariate drift adds to one detector run, over ``--rows`` reference + ``--rows`` window rows.

    python bench/multivariate.py                         # 1M + 1M rows, 20 features, sample 5000
    python bench/multivariate.py --rows 200000 --sample 2000

Data generation and loading are bench/drift.py's (``generate``, its ``--part load`` subprocess): normal
features, the window's first ``--shifted`` shifted by ``--shift``; the reference in one hour, the window in
the next. Then, in a new process on the loaded store, against a stored reference of the first hour:

- ``run_s``: the median of ``--repeat`` detector runs with the default detectors (drift, quality,
  performance); ``run_mv_s``: the same with ``multivariate`` added; ``added_s`` their difference and
  ``added_pct`` it over ``run_s``;
- the multivariate parts (median of the repeats): ``sample_s`` (both SQL samples), ``fit_s`` (encoding,
  PCA fit, out-of-fold reference errors and the calibrated band), ``pca_score_s`` (the window's error),
  ``classifier_s`` (the domain classifier's cross-validated AUC), on one thread as the detector runs them.

Every figure is wall-clock seconds; ``*_cpu_s`` is the process's CPU time over the same span (chDB runs in
this process, so it counts the queries too): on a shared machine the CPU time is the steadier figure.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.drift import MODEL, _store, generate  # noqa: E402 - the bench's root on the path first


def _median(xs: list[float]) -> float:
    return sorted(xs)[len(xs) // 2]


def part_detect(store_path: str, t0: _dt.datetime, sample: int, repeat: int) -> dict:
    import numpy as np
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    from detectors.drift_sql import window_source
    from detectors.multivariate import (
        MultivariateConfig,
        auc_threshold,
        calibrate,
        domain_auc,
        encode,
        encoding_of,
        fit_pca,
        out_of_fold_errors,
        read_sample,
        reference_sample_source,
    )
    from detectors.reference import reference_from_window
    from detectors.runner import run_detectors

    s = _store(store_path)
    h = _dt.timedelta(hours=1)
    prof = reference_from_window(s, MODEL, t0, t0 + h, name="bench-ref", labels=False)
    cfg = MultivariateConfig(sample=sample)
    base = {"detectors": ["drift", "quality", "performance"]}
    mv = {"detectors": ["drift", "quality", "performance", "multivariate"], "multivariate": {"sample": sample}}
    names = ("run_s", "run_mv_s", "sample_s", "fit_s", "pca_score_s", "classifier_s")
    parts: dict[str, list[float]] = {k: [] for k in names + tuple(k[:-2] + "_cpu_s" for k in names)}
    statuses = {}
    clock: list[float] = []

    def lap(name: str | None = None) -> None:
        now = (time.perf_counter(), time.process_time())
        if name is not None:
            parts[name].append(now[0] - clock[0])
            parts[name[:-2] + "_cpu_s"].append(now[1] - clock[1])
        clock[:] = now

    for _ in range(repeat):
        lap()
        run_detectors(s, MODEL, t0 + 2 * h, h, reference="bench-ref", config=base, write=False)
        lap("run_s")
        rep = run_detectors(s, MODEL, t0 + 2 * h, h, reference="bench-ref", config=mv, write=False)
        lap("run_mv_s")
        statuses = {r.test: (r.status, r.value, r.threshold) for r in rep.results if r.detector == "multivariate"}

        feats = sorted(f for f in prof.features if not f.startswith("@"))
        ref_src = reference_sample_source(prof, None)
        assert ref_src is not None
        lap()
        ref = read_sample(s, ref_src, feats, [], sample)
        cur = read_sample(s, window_source(MODEL, t0 + h, t0 + 2 * h), feats, [], sample)
        lap("sample_s")
        with threadpool_limits(limits=1):
            enc = encoding_of(ref, cfg.max_categories)
            xr, xc = encode(ref, enc), encode(cur, enc)
            model = fit_pca(xr, cfg.variance)
            calibrate(out_of_fold_errors(xr, cfg.variance, cfg.folds), len(xc), k=cfg.k,
                      false_alert_rate=cfg.false_alert_rate)
            lap("fit_s")
            float(np.mean(model.row_errors(xc)))
            lap("pca_score_s")
            thr, _ = auc_threshold(len(xr), len(xc), false_alert_rate=cfg.false_alert_rate, min_auc=cfg.min_auc)
            domain_auc(xr, xc, folds=cfg.folds, seed=cfg.seed, columns=enc.columns, explain_above=thr)
            lap("classifier_s")
    out: dict[str, Any] = {k: _median(v) for k, v in parts.items()}
    out["runs"] = parts
    out["results"] = statuses
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=1_000_000, help="rows in the reference and in the window each")
    p.add_argument("--features", type=int, default=20)
    p.add_argument("--shifted", type=int, default=5)
    p.add_argument("--shift", type=float, default=0.5)
    p.add_argument("--sample", type=int, default=5000)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--part", choices=["detect"], help=argparse.SUPPRESS)
    p.add_argument("--store", help=argparse.SUPPRESS)
    p.add_argument("--t0", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.part == "detect":
        print(json.dumps(part_detect(a.store, _dt.datetime.fromisoformat(a.t0), a.sample, a.repeat)))
        return 0

    work = tempfile.mkdtemp(prefix="driftline-bench-mv-")
    t0 = (_dt.datetime.now(_dt.UTC) - _dt.timedelta(hours=6)).replace(minute=0, second=0, microsecond=0)
    t = time.perf_counter()
    generate(os.path.join(work, "ref.parquet"), a.rows, a.features, 0, 0.0, a.seed)
    generate(os.path.join(work, "cur.parquet"), a.rows, a.features, a.shifted, a.shift, a.seed + 1)
    print(f"generated {a.rows} + {a.rows} rows x {a.features} features in {time.perf_counter() - t:.1f}s", flush=True)
    store = os.path.join(work, "store")
    env = {**os.environ, "PYTHONPATH": ROOT}
    load = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "drift.py"), "--part", "load", "--rows",
                           str(a.rows), "--features", str(a.features), "--store", store, "--data", work, "--t0",
                           t0.isoformat()], capture_output=True, text=True, cwd=ROOT, env=env)
    if load.returncode != 0:
        raise SystemExit(f"load failed:\n{load.stderr[-4000:]}")
    print(f"load (not timed): {json.loads(load.stdout.strip().splitlines()[-1])['load_s']:.1f}s", flush=True)
    det = subprocess.run([sys.executable, os.path.abspath(__file__), "--part", "detect", "--store", store, "--t0",
                          t0.isoformat(), "--sample", str(a.sample), "--repeat", str(a.repeat)],
                         capture_output=True, text=True, cwd=ROOT, env=env)
    if det.returncode != 0:
        raise SystemExit(f"detect failed:\n{det.stderr[-4000:]}")
    d = json.loads(det.stdout.strip().splitlines()[-1])
    for k, v in d["runs"].items():
        print(f"{k:<13} " + " ".join(f"{x:.3f}" for x in v))
    for test, (status, value, thr) in sorted(d["results"].items()):
        print(f"{test:<19} status={status} value={value:.4f} threshold={thr:.4f}")
    added = d["run_mv_s"] - d["run_s"]
    added_cpu = d["run_mv_cpu_s"] - d["run_cpu_s"]
    print(f"multivariate_bench rows={a.rows} features={a.features} sample={a.sample} run_s={d['run_s']:.3f} "
          f"run_mv_s={d['run_mv_s']:.3f} added_s={added:.3f} added_pct={100 * added / d['run_s']:.0f} "
          f"run_cpu_s={d['run_cpu_s']:.3f} added_cpu_s={added_cpu:.3f} "
          f"added_cpu_pct={100 * added_cpu / d['run_cpu_s']:.0f} "
          + " ".join(f"{k}={d[k]:.3f}" for k in ("sample_s", "fit_s", "pca_score_s", "classifier_s", "sample_cpu_s",
                                                 "fit_cpu_s", "pca_score_cpu_s", "classifier_cpu_s")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
