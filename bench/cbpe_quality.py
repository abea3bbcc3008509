"""CBPE against NannyML's CBPE, on NannyML's own bundled datasets (the anchor of issue #16).

    scripts/bench_env.sh                       # once: NannyML 0.13.1 in .venv-nannyml
    python bench/cbpe_quality.py               # car loan (synthetic), US census employment (real, ACS), multiclass
    python bench/cbpe_quality.py --quick       # car loan and multiclass only

Per dataset, two processes run side by side on the same rows and the same chunks (complete chunks of
``--chunk-size`` analysis rows, in order):

- Driftline (a subprocess of this script, on a fresh chDB path): the reference and analysis rows are
  inserted as predictions (``pred_score``/``pred_probs``, ``pred_label``) with their labels, through the
  store's insert; :func:`detectors.cbpe.fit_calibration` calibrates on the reference window and
  :func:`detectors.cbpe.cbpe_results` estimates each chunk's window (it reads no label for the estimate;
  the labels give the ``realized`` value beside it);
- NannyML (``bench/_nannyml_cbpe.py`` in NannyML's venv): ``CBPE.fit(reference)`` and ``estimate(analysis)``.

Figures: ``cbpe_abs_err_pp`` the mean and ``cbpe_max_abs_err_pp`` the largest absolute difference, in
percentage points, between the two estimated accuracies over all chunks; ``band_coverage`` the share of
chunks whose Driftline 95 % band covers the realized accuracy (``nannyml_band_coverage``: the same for
NannyML's ±3 sigma band; ``band_coverage_no_concept_drift`` the share on the chunks where NannyML's own band
covers the realized accuracy, i.e. where CBPE's assumption, no concept drift, holds as the anchor judges it:
no estimator without labels can follow a change of P(y|x), which the realized metric beside it shows);
F1 and ROC AUC differences likewise; timings: ``driftline_fit_s`` (calibration),
``driftline_chunk_s`` (one chunk's estimate, mean), ``nannyml_s`` (fit + estimate of all chunks).
The last line is ``cbpe_quality key=value ...``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import glob
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV = os.environ.get("DRIFTLINE_NANNYML_VENV", os.path.join(ROOT, ".venv-nannyml"))

# name: (reference file, analysis file, target file, target column, score column or {class: column}, prediction)
DATASETS: dict[str, tuple[str, str, str, str, Any, str]] = {
    "car_loan": ("synthetic_car_loan_reference.csv", "synthetic_car_loan_analysis.csv",
                 "synthetic_car_loan_analysis_target.csv", "repaid", "y_pred_proba", "y_pred"),
    "employment_ma": ("employment_MA_reference.pq", "employment_MA_analysis.pq", "employment_MA_analysis_target.pq",
                      "employed", "predicted_probability", "prediction"),
    "multiclass": ("mc_reference.csv", "mc_analysis.csv", "mc_analysis_gt.csv", "y_true",
                   {"prepaid_card": "y_pred_proba_prepaid_card", "highstreet_card": "y_pred_proba_highstreet_card",
                    "upmarket_card": "y_pred_proba_upmarket_card"}, "y_pred"),
}
QUICK = ("car_loan", "multiclass")
METRICS = ("accuracy", "f1", "roc_auc")


def _venv_python() -> str:
    py = os.path.join(VENV, "bin", "python")
    if not os.access(py, os.X_OK):
        raise SystemExit(f"cbpe_quality: no NannyML venv at {VENV}: run scripts/bench_env.sh")
    return py


def _data_dir() -> str:
    found = glob.glob(os.path.join(VENV, "lib", "python3*", "site-packages", "nannyml", "datasets", "data"))
    if not found:
        raise SystemExit(f"cbpe_quality: NannyML's datasets not found under {VENV}: run scripts/bench_env.sh")
    return found[0]


def _read(path: str) -> Any:
    import pandas as pd

    return pd.read_parquet(path) if path.endswith(".pq") else pd.read_csv(path)


def _label(v: Any) -> str:
    return str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)


def driftline(name: str, chunks: list[tuple[int, int]]) -> dict[str, Any]:
    """Load ``name`` into a fresh chDB store and estimate every chunk (runs in its own process)."""
    sys.path.insert(0, ROOT)
    from collector.migrations import migrate
    from collector.schema import LABELS, PREDICTIONS
    from collector.store import ChdbStore
    from detectors.cbpe import CBPEConfig, cbpe_results, fit_calibration
    from driftline.migrations import all_migrations

    ref_f, ana_f, gt_f, target, proba, pred = DATASETS[name]
    d = _data_dir()
    ref, ana, gt = _read(os.path.join(d, ref_f)), _read(os.path.join(d, ana_f)), _read(os.path.join(d, gt_f))
    ana = ana.merge(gt, on="id", how="left")
    store = ChdbStore(tempfile.mkdtemp(prefix="cbpe-bench-"), database="bench")
    migrate(store, all_migrations())
    base = (_dt.datetime.now(_dt.UTC) - _dt.timedelta(days=2)).replace(microsecond=0)
    step = _dt.timedelta(milliseconds=10)
    rows = len(ref) + len(ana)
    ts = [base + i * step for i in range(rows + 1)]
    t0 = time.perf_counter()
    for off, df in ((0, ref), (len(ref), ana)):
        for lo in range(0, len(df), 50_000):
            part = df.iloc[lo:lo + 50_000]
            k = len(part)
            ids = [f"{name}-{i}" for i in part["id"]]
            probs = ([{c: float(v) for c, v in zip(proba, vals, strict=True)}
                      for vals in part[list(proba.values())].itertuples(index=False)]
                     if isinstance(proba, dict) else [{}] * k)
            store.insert(PREDICTIONS, {
                "event_id": ids, "ts": ts[off + lo:off + lo + k], "model": [name] * k, "model_version": ["v1"] * k,
                "request_id": ids, "features_num": [{}] * k, "features_cat": [{}] * k, "features_null": [[]] * k,
                "pred_value": [None] * k, "pred_label": [_label(v) for v in part[pred]],
                "pred_score": [float(v) for v in part[proba]] if isinstance(proba, str) else [None] * k,
                "pred_probs": probs, "slices": [{}] * k, "latency_ms": [1.0] * k, "status": ["ok"] * k,
                "error_type": [""] * k, "schema_version": [1] * k})
            lab = part[part[target].notna()]
            store.insert(LABELS, {
                "event_id": [f"l-{name}-{i}" for i in lab["id"]], "ts": [base] * len(lab), "model": [name] * len(lab),
                "request_id": [f"{name}-{i}" for i in lab["id"]], "label_value": [None] * len(lab),
                "label_class": [_label(v) for v in lab[target]], "schema_version": [1] * len(lab)})
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    cal = fit_calibration(store, name, ts[0], ts[len(ref)], positive_class="1" if isinstance(proba, str) else None)
    fit_s = time.perf_counter() - t0
    cfg = CBPEConfig(slices=False, min_samples=1)
    out, times = [], []
    for start, end in chunks:
        t0 = time.perf_counter()
        res = cbpe_results(store, name, ts[len(ref) + start], ts[len(ref) + end + 1], config=cfg)
        times.append(time.perf_counter() - t0)
        out.append({r.test: {"value": r.value, **r.detail} for r in res if r.subject == ""})
    store.drop_database()
    return {"load_s": load_s, "fit_s": fit_s, "chunk_s": sum(times) / max(len(times), 1), "chunks": out,
            "calibrated": [m.calibrated for m in cal.maps], "kind": cal.kind}


def _run_json(cmd: list[str]) -> dict[str, Any]:
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": ROOT})
    if p.returncode != 0:
        raise RuntimeError(f"{cmd[1]} failed ({p.returncode}): {p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def measure(quick: bool = False, *, chunk_size: int = 5000, datasets: tuple[str, ...] | None = None) -> dict[str, Any]:
    """Driftline's CBPE against NannyML's on NannyML's datasets: the figures of the module docstring."""
    names = datasets or (QUICK if quick else tuple(DATASETS))
    per: dict[str, Any] = {}
    errs: dict[str, list[float]] = {m: [] for m in METRICS}
    covered = n_cov = nml_covered = stable = stable_covered = 0
    fit_s = chunk_s = nml_s = 0.0
    for name in names:
        nml = _run_json([_venv_python(), os.path.join(ROOT, "bench", "_nannyml_cbpe.py"), name, str(chunk_size)])
        chunks = [(c["start"], c["end"]) for c in nml["chunks"]]
        dl = _run_json([sys.executable, os.path.abspath(__file__), "--worker", name, json.dumps(chunks)])
        d_err: dict[str, list[float]] = {m: [] for m in METRICS}
        for ours, theirs in zip(dl["chunks"], nml["chunks"], strict=True):
            for m in METRICS:
                if m in ours and ours[m]["value"] is not None:
                    d_err[m].append(abs(ours[m]["value"] - theirs[m]) * 100)
            acc = ours["accuracy"]
            if acc.get("realized") is not None:
                n_cov += 1
                covered += acc["low"] <= acc["realized"] <= acc["high"]
                anchor_holds = theirs["accuracy_low"] <= theirs["accuracy_realized"] <= theirs["accuracy_high"]
                nml_covered += anchor_holds
                stable += anchor_holds
                stable_covered += anchor_holds and acc["low"] <= acc["realized"] <= acc["high"]
        for m in METRICS:
            errs[m] += d_err[m]
        per[name] = {"chunks": len(chunks), "kind": dl["kind"], "calibrated": dl["calibrated"],
                     **{f"{m}_abs_err_pp_mean": _mean(d_err[m]) for m in METRICS},
                     "accuracy_abs_err_pp_max": max(d_err["accuracy"], default=float("nan")),
                     "fit_s": dl["fit_s"], "chunk_s": dl["chunk_s"], "load_s": dl["load_s"],
                     "nannyml_s": nml["seconds"]}
        fit_s += dl["fit_s"]
        chunk_s += dl["chunk_s"] / len(names)
        nml_s += nml["seconds"]
    return {"cbpe_abs_err_pp": _mean(errs["accuracy"]), "cbpe_max_abs_err_pp": max(errs["accuracy"]),
            "f1_abs_err_pp": _mean(errs["f1"]), "roc_auc_abs_err_pp": _mean(errs["roc_auc"]),
            "band_coverage": covered / n_cov if n_cov else float("nan"),
            "nannyml_band_coverage": nml_covered / n_cov if n_cov else float("nan"),
            "band_coverage_no_concept_drift": stable_covered / stable if stable else float("nan"),
            "chunks": n_cov, "concept_drift_chunks": n_cov - stable,
            "driftline_fit_s": fit_s, "driftline_chunk_s": chunk_s, "nannyml_s": nml_s, "datasets": per}


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else float("nan")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--chunk-size", type=int, default=5000)
    ap.add_argument("--worker", nargs=2, metavar=("DATASET", "CHUNKS_JSON"), help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.worker:
        print(json.dumps(driftline(a.worker[0], [tuple(c) for c in json.loads(a.worker[1])])))
        return 0
    r = measure(a.quick, chunk_size=a.chunk_size)
    for name, d in r.pop("datasets").items():
        print(f"dataset {name} " + " ".join(f"{k}={_fmt(v)}" for k, v in d.items()))
    print("cbpe_quality " + " ".join(f"{k}={_fmt(v)}" for k, v in r.items()))
    return 0


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v).replace(" ", "")


if __name__ == "__main__":
    sys.exit(main())
