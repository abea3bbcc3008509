"""Alert quality: false alerts on stationary data and detection of an injected shift, through the real store.

    python bench/alert_quality.py            # the full run (a few minutes)
    python bench/alert_quality.py --quick    # fewer windows

Drift half (this file's :func:`drift_quality`), every window a real detector run (``run_detectors`` on chDB
against a stored time-window reference, so calibrated thresholds come from the reference's chunks):

1. synthetic: a reference of 20 hours and stationary windows resampled from the same distributions (8 numeric
   features of several shapes, 4 categorical ones of 2 to 12 values), windows of 500 rows (p-value tests under
   ``tests="auto"``) and of 5000 rows (effect-size tests);
2. real: NannyML's bundled US census data (``employment_MA``: reference 2015, analysis 2016-2018, which NannyML
   uses as its stable example), the reference as 14 hours, the analysis in windows of 5000 rows in year order
   (rows shuffled within their year: the files order a year's rows by household, not by time).

``false_alert_rate``: share of stationary feature-windows whose primary result alerts with calibrated thresholds
(``{"tests": "auto", "threshold": "calibrated"}``); ``fixed_false_alert_rate``: share of feature-windows where
any test of the scheduler's default tests with fixed thresholds alerts (no multiple-testing adjustment, no
minimum effect: the behaviour before calibration). ``detection_rate``: share of windows with one feature shifted
(its PSI on the reference deciles >= 0.2) whose shifted feature's primary result alerts, in that window.

The last line gathers the figures of every part (``FIGURES``): the drift half, then the CBPE half
(:func:`cbpe_figures`, :mod:`bench.cbpe_quality`; NannyML runs in its own venv, made by ``scripts/bench_env.sh``).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.drift import _store  # noqa: E402 - after the path
from tests.detector_data import insert_predictions  # noqa: E402

H = _dt.timedelta(hours=1)
NANNYML_DATA = os.environ.get(
    "NANNYML_DATA", "/work/main/.venv-nannyml/lib/python3.11/site-packages/nannyml/datasets/data")
CALIBRATED = {"drift": {"tests": "auto", "threshold": "calibrated"}, "detectors": ["drift"]}
FIXED = {"drift": {"multiple_testing": "none", "tests": {
    "psi": None, "ks": None, "wasserstein": None, "js": None, "chisquare": {"min_effect": 0},
    "new_categories": None, "vanished_categories": None}}, "detectors": ["drift"]}
MIN_PSI = 0.2


def synthetic(rng: np.random.Generator, n: int) -> pd.DataFrame:
    cols: dict[str, Any] = {
        "normal": rng.normal(0, 1, n), "lognormal": rng.lognormal(0, 1, n), "uniform": rng.uniform(-5, 5, n),
        "exponential": rng.exponential(3, n), "bimodal": np.where(rng.random(n) < 0.3, rng.normal(-2, 0.5, n),
                                                                  rng.normal(2, 1, n)),
        "counts": rng.poisson(4, n).astype(float), "student_t": rng.standard_t(3, n),
        "rounded": np.round(rng.normal(50, 10, n)),
        "binary": rng.choice(["yes", "no"], n, p=[0.3, 0.7]),
        "plan": rng.choice(["free", "pro", "team"], n, p=[0.6, 0.3, 0.1]),
        "region": rng.choice([f"r{i}" for i in range(6)], n, p=[0.3, 0.25, 0.2, 0.1, 0.1, 0.05]),
        "device": rng.choice([f"d{i}" for i in range(12)], n, p=np.arange(12, 0, -1) / 78),
    }
    return pd.DataFrame(cols)


def census() -> tuple[pd.DataFrame, pd.DataFrame]:
    paths = [os.path.join(NANNYML_DATA, f"employment_MA_{p}.pq") for p in ("reference", "analysis")]
    missing = [p for p in paths if not os.path.exists(p)]
    if missing:
        raise SystemExit(f"alert_quality: {missing[0]} is missing: install NannyML 0.13.1 into its own venv at "
                         "/work/main/.venv-nannyml (pip install nannyml==0.13.1), or set NANNYML_DATA to the "
                         "directory holding employment_MA_reference.pq and employment_MA_analysis.pq")
    feats = ["AGEP", "SCHL", "MAR", "RELP", "DIS", "ESP", "CIT", "MIG", "MIL", "ANC", "NATIVITY", "DEAR", "DEYE",
             "DREM", "SEX", "RAC1P"]
    out = []
    for p in paths:
        d = pd.read_parquet(p, columns=[*feats, "year"])
        # a year is the data's unit of time; the rows of one year are ordered by household and group quarters
        # (contiguous runs of one kind of person), not by time: shuffled within the year, seeded
        d = d.sample(frac=1.0, random_state=7).sort_values("year", kind="stable")
        out.append(d[feats].astype({c: str for c in feats if c != "AGEP"}).astype({"AGEP": float}))
    return out[0], out[1]


def _psi(ref: pd.Series, cur: pd.Series) -> float:
    """PSI on the reference deciles (numeric) or categories: what the injection aims at."""
    r: np.ndarray
    c: np.ndarray
    if ref.dtype.kind == "f":
        edges = np.unique(np.quantile(ref, np.linspace(0.1, 0.9, 9)))
        r = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=edges.size + 1)
        c = np.bincount(np.searchsorted(edges, cur, side="right"), minlength=edges.size + 1)
    else:
        cats = sorted(set(ref) | set(cur))
        r = ref.value_counts().reindex(cats, fill_value=0).to_numpy()
        c = cur.value_counts().reindex(cats, fill_value=0).to_numpy()
    rp, cp = r / r.sum() + 1e-4, c / c.sum() + 1e-4
    return float(np.sum((cp - rp) * np.log(cp / rp)))


def inject(rng: np.random.Generator, ref: pd.DataFrame, win: pd.DataFrame, feature: str) -> tuple[pd.DataFrame, float]:
    """``win`` with ``feature`` shifted until its PSI against the reference is at least :data:`MIN_PSI`: numbers
    moved by a growing share of the reference's spread, categories a growing share of rows moved to the
    reference's rarest category."""
    out = win.copy()
    col = win[feature]
    for step in range(1, 200):
        if col.dtype.kind == "f":
            shifted = col + 0.05 * step * float(ref[feature].std())
        else:
            rare = ref[feature].value_counts().index[-1]
            shifted = col.where(rng.random(len(col)) >= 0.03 * step, rare)
        v = _psi(ref[feature], shifted)
        if v >= MIN_PSI:
            out[feature] = shifted
            return out, v
    raise RuntimeError(f"could not shift {feature} to PSI {MIN_PSI}")


def _load(store: Any, model: str, start: _dt.datetime, frame: pd.DataFrame) -> None:
    rows: list[dict[str, Any]] = [{str(k): v for k, v in r.items()} for r in frame.to_dict("records")]
    for i in range(0, len(rows), 20_000):
        part = rows[i:i + 20_000]
        insert_predictions(store, start=start + H * i / len(rows), seconds=3599 * len(part) / len(rows),
                           features=part, model=model)


def _primary(results: list, feature: str) -> Any:
    return next((r for r in results if r.subject == feature and r.detail.get("primary")), None)


def _scenario(store: Any, model: str, ref: pd.DataFrame, ref_hours: int, windows: list[pd.DataFrame],
              shifted: list[tuple[pd.DataFrame, str, float]], t0: _dt.datetime, label: str) -> dict[str, int]:
    """Load a reference and windows under ``model``, run the detectors on each window; the counts."""
    from detectors.reference import reference_from_window
    from detectors.runner import run_detectors

    t = time.perf_counter()
    for h in range(ref_hours):
        _load(store, model, t0 + h * H, ref.iloc[h * len(ref) // ref_hours:(h + 1) * len(ref) // ref_hours])
    first = t0 + (ref_hours + 1) * H
    for i, w in enumerate([*windows, *(w for w, _, _ in shifted)]):
        _load(store, model, first + i * H, w)
    reference_from_window(store, model, t0, t0 + ref_hours * H, name="ref", labels=False)
    print(f"[{label}] loaded {len(ref)} reference rows and {len(windows) + len(shifted)} windows "
          f"in {time.perf_counter() - t:.1f}s", flush=True)
    c = {"feature_windows": 0, "false": 0, "fixed_false": 0, "shifted": 0, "detected": 0, "fixed_detected": 0}
    feats = list(ref.columns)
    t = time.perf_counter()
    for i in range(len(windows) + len(shifted)):
        end = first + (i + 1) * H
        cal = run_detectors(store, model, end, H, reference="ref", config=CALIBRATED).results
        fix = run_detectors(store, model, end, H, reference="ref", config=FIXED, write=False).results
        if i < len(windows):
            for f in feats:
                c["feature_windows"] += 1
                p = _primary(cal, f)
                if p is None:
                    raise RuntimeError(f"no primary result for {f}: {[r.as_dict() for r in cal if r.subject == f]}")
                if p.status == "alert":
                    c["false"] += 1
                    print(f"[{label}] false alert: window {i} {f} {p.test}={p.value:.4g} "
                          f"threshold {p.threshold:.4g} ({p.detail.get('threshold_method')})", flush=True)
                c["fixed_false"] += any(r.subject == f and r.status == "alert" for r in fix)
        else:
            _, f, psi = shifted[i - len(windows)]
            p, q = _primary(cal, f), _primary(fix, f)
            c["shifted"] += 1
            c["detected"] += p is not None and p.status == "alert"
            c["fixed_detected"] += q is not None and q.status == "alert"
            if p is None or p.status != "alert":
                print(f"[{label}] missed: {f} PSI {psi:.3f}: {p.as_dict() if p else None}", flush=True)
    print(f"[{label}] {len(windows) + len(shifted)} windows x 2 configs in {time.perf_counter() - t:.1f}s: "
          f"{c['false']}/{c['feature_windows']} calibrated false alerts, {c['fixed_false']} fixed; "
          f"detected {c['detected']}/{c['shifted']} (fixed {c['fixed_detected']})", flush=True)
    return c


def drift_quality(a: argparse.Namespace) -> dict[str, str]:
    """The drift half: synthetic stationary windows (small and large) and the census data, through chDB."""
    rng = np.random.default_rng(a.seed)
    store = _store(os.path.join(tempfile.mkdtemp(prefix="driftline-alertq-"), "store"))
    t0 = (_dt.datetime.now(_dt.UTC) - _dt.timedelta(days=5)).replace(minute=0, second=0, microsecond=0)
    totals: dict[str, int] = {}
    parts: list[tuple[str, Callable[[], tuple[pd.DataFrame, int, list[pd.DataFrame]]]]] = [
        ("synthetic-500", lambda: (synthetic(rng, 100_000), 20,
                                   [synthetic(rng, 500) for _ in range(a.windows)])),
        ("synthetic-5000", lambda: (synthetic(rng, 100_000), 20,
                                    [synthetic(rng, 5000) for _ in range(a.windows)])),
        ("census", lambda: _census_windows(a.windows)),
    ]
    for k, (label, make) in enumerate(parts):
        ref, hours, wins = make()
        stationary, to_shift = wins[: len(wins) - a.shifted], wins[len(wins) - a.shifted:]
        shifted = []
        for j, w in enumerate(to_shift):
            f = ref.columns[(j * 5 + k) % len(ref.columns)]
            sw, v = inject(rng, ref, w, f)
            shifted.append((sw, f, v))
        c = _scenario(store, f"aq-{label}", ref, hours, stationary, shifted,
                      t0 + k * _dt.timedelta(days=1), label)
        for key, v in c.items():
            totals[key] = totals.get(key, 0) + v
    far = totals["false"] / totals["feature_windows"]
    ffar = totals["fixed_false"] / totals["feature_windows"]
    det = totals["detected"] / totals["shifted"]
    print(f"drift: {totals['feature_windows']} stationary feature-windows: calibrated false alerts "
          f"{totals['false']} ({far:.2%}), fixed {totals['fixed_false']} ({ffar:.2%}); injected PSI >= {MIN_PSI}: "
          f"detected {totals['detected']}/{totals['shifted']} ({det:.0%}), fixed {totals['fixed_detected']}",
          flush=True)
    return {"false_alert_rate": f"{far:.4f}", "detection_rate": f"{det:.3f}", "fixed_false_alert_rate": f"{ffar:.4f}"}


def _census_windows(count: int) -> tuple[pd.DataFrame, int, list[pd.DataFrame]]:
    ref, ana = census()
    size = 5000
    wins = [ana.iloc[i * size:(i + 1) * size] for i in range(min(count, len(ana) // size))]
    return ref, 14, wins


def cbpe_figures(a: argparse.Namespace) -> dict[str, str]:
    """CBPE half: Driftline's estimated accuracy against NannyML's CBPE on the same chunks of NannyML's datasets
    (:mod:`bench.cbpe_quality`, NannyML in its own venv: ``scripts/bench_env.sh``), and the share of chunks whose
    95% band covers the realized accuracy."""
    from bench.cbpe_quality import measure

    m = measure(quick=a.quick)
    print(f"cbpe: {m['chunks']} chunks: |estimated - NannyML| mean {m['cbpe_abs_err_pp']:.4f} pp, max "
          f"{m['cbpe_max_abs_err_pp']:.4f} pp; band covers the realized accuracy in {m['band_coverage']:.1%} of "
          f"chunks (NannyML's band {m['nannyml_band_coverage']:.1%}; {m['band_coverage_no_concept_drift']:.1%} of "
          f"the {m['chunks'] - m['concept_drift_chunks']} chunks where NannyML's band holds, i.e. without concept "
          "drift)", flush=True)
    return {"cbpe_abs_err_pp": f"{m['cbpe_abs_err_pp']:.4f}", "band_coverage": f"{m['band_coverage']:.4f}"}


#: The parts whose figures make the last line, in order (each returns ``{key: printed value}``).
FIGURES: list[Callable[[argparse.Namespace], dict[str, str]]] = [drift_quality, cbpe_figures]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="fewer windows per scenario")
    p.add_argument("--windows", type=int, default=None, help="windows per scenario (default 40, quick 12)")
    p.add_argument("--shifted", type=int, default=None, help="of them, windows with one shifted feature "
                                                              "(default 10, quick 4)")
    p.add_argument("--seed", type=int, default=20)
    a = p.parse_args()
    a.windows = a.windows or (12 if a.quick else 40)
    a.shifted = a.shifted or (4 if a.quick else 10)
    figures: dict[str, str] = {}
    for part in FIGURES:
        figures.update(part(a))
    print("alert_quality " + " ".join(f"{k}={v}" for k, v in figures.items()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
