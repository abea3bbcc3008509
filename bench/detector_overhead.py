"""What calibrated thresholds add to a detector run: 1M rows x 20 features, fixed vs calibrated thresholds.

    python bench/detector_overhead.py                  # 1M reference + 1M current rows, 20 features
    python bench/detector_overhead.py --rows 200000    # smaller

The data and its loading are bench/drift.py's (reference in one hour, current window in the next). In one
process on that store, with the reference stored (``reference_from_window``), ``run_detectors`` (drift only, the
scheduler's default tests) is timed:

- ``fixed``: fixed thresholds (the median of ``--repeat`` runs);
- ``calibrated cold``: ``{"threshold": "calibrated"}``, the first run (the reference's chunks counted, when it has
  enough of them, and cached);
- ``calibrated warm``: the same again (the cached chunks; the median of ``--repeat`` runs, interleaved with the
  fixed ones).

Wall seconds and CPU seconds of this process (chDB's threads included) are both printed: on a shared machine
the CPU ratio is the steadier one.

Two windows: the whole current hour (as many rows as the reference: one chunk, so the calibration is the sampling
floor and the history query) and its first tenth (the reference makes 10 chunks of that size: the chunk scan).
The ratios are calibrated / fixed.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import sys
import tempfile
import time
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.drift import MODEL, _store, _sub, generate  # noqa: E402 - after the path

H = _dt.timedelta(hours=1)


def _timed(fn) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """Wall and CPU seconds (this process, chDB's threads included: less disturbed by a busy machine)."""
    t, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t, time.process_time() - c


def _median(xs: list[tuple[float, float]]) -> tuple[float, float]:
    return sorted(x[0] for x in xs)[len(xs) // 2], sorted(x[1] for x in xs)[len(xs) // 2]


def measure(store_path: str, t0: _dt.datetime, repeat: int) -> list[tuple[str, tuple, tuple, tuple, str]]:
    from detectors import calibration
    from detectors.reference import reference_from_window
    from detectors.runner import run_detectors

    s = _store(store_path)
    reference_from_window(s, MODEL, t0, t0 + H, name="ref", labels=False)
    out = []
    for label, window in (("whole hour", H), ("tenth of the hour", H / 10)):
        end = t0 + H + window

        def run(cfg: dict, s: Any = s, end: _dt.datetime = end, window: _dt.timedelta = window) -> list:
            return run_detectors(s, MODEL, end, window, reference="ref", write=False,
                                 config={"detectors": ["drift"], "drift": cfg}).results

        run({})                                                  # warm the engine's caches on this window
        calibration._CACHE.clear()
        res: list = []
        cold = _timed(lambda res=res: res.extend(run({"threshold": "calibrated"})))
        fixed, warm = [], []
        for _ in range(repeat):                                  # interleaved: the machine's load hits both
            fixed.append(_timed(lambda: run({})))
            warm.append(_timed(lambda: run({"threshold": "calibrated"})))
        methods = sorted({r.detail.get("threshold_method", "") for r in res if r.value is not None})
        out.append((label, _median(fixed), cold, _median(warm), ",".join(methods)))
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--features", type=int, default=20)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--seed", type=int, default=42)
    a = p.parse_args()
    work = tempfile.mkdtemp(prefix="driftline-overhead-")
    t0 = (_dt.datetime.now(_dt.UTC) - _dt.timedelta(hours=6)).replace(minute=0, second=0, microsecond=0)
    generate(os.path.join(work, "ref.parquet"), a.rows, a.features, 0, 0.0, a.seed)
    generate(os.path.join(work, "cur.parquet"), a.rows, a.features, 0, 0.0, a.seed + 1)
    load = _sub("--part", "load", "--rows", str(a.rows), "--features", str(a.features), "--store",
                os.path.join(work, "store"), "--data", work, "--t0", t0.isoformat())
    print(f"loaded {load['stored_rows']} rows ({a.features} features) in {load['load_s']:.1f}s", flush=True)
    rows = measure(os.path.join(work, "store"), t0, a.repeat)
    for label, fixed, cold, warm, methods in rows:
        print(f"{label}: fixed {fixed[0]:.3f}s wall / {fixed[1]:.3f}s CPU; calibrated cold {cold[0]:.3f}s / "
              f"{cold[1]:.3f}s ({cold[0] / fixed[0]:.2f}x wall, {cold[1] / fixed[1]:.2f}x CPU), warm {warm[0]:.3f}s / "
              f"{warm[1]:.3f}s ({warm[0] / fixed[0]:.2f}x wall, {warm[1] / fixed[1]:.2f}x CPU); methods {methods}",
              flush=True)
    (_, f1, c1, w1, _), (_, f2, c2, w2, _) = rows
    print(f"detector_overhead rows={a.rows} features={a.features} fixed_s={f1[0]:.3f} calibrated_cold_s={c1[0]:.3f} "
          f"calibrated_warm_s={w1[0]:.3f} warm_ratio={w1[0] / f1[0]:.3f} cold_ratio={c1[0] / f1[0]:.3f} "
          f"warm_cpu_ratio={w1[1] / f1[1]:.3f} cold_cpu_ratio={c1[1] / f1[1]:.3f} chunked_fixed_s={f2[0]:.3f} "
          f"chunked_cold_ratio={c2[0] / f2[0]:.3f} chunked_warm_ratio={w2[0] / f2[0]:.3f} "
          f"chunked_cold_cpu_ratio={c2[1] / f2[1]:.3f} chunked_warm_cpu_ratio={w2[1] / f2[1]:.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
