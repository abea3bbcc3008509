"""NannyML's CBPE on one of its bundled datasets, printed as JSON: run by bench/cbpe_quality.py in NannyML's own
venv (``scripts/bench_env.sh``; its pins clash with Driftline's), never imported by Driftline.

    .venv-nannyml/bin/python bench/_nannyml_cbpe.py car_loan 5000

Prints ``{"chunks": [{"start": i, "end": j, "accuracy": est, "accuracy_realized": r, "f1": ..., ...}],
"seconds": fit and estimate time}`` for the analysis chunks (complete chunks of ``chunk_size`` rows, in order).
"""

from __future__ import annotations

import json
import sys
import time
import warnings

import nannyml as nml  # type: ignore[import-not-found]  # only in NannyML's venv
import pandas as pd

DATASETS = {
    # name: (loader, target column, y_pred_proba (column or {class: column}), y_pred, problem type, id column)
    "car_loan": (nml.load_synthetic_car_loan_dataset, "repaid", "y_pred_proba", "y_pred", "classification_binary"),
    "employment_ma": (nml.load_us_census_ma_employment_data, "employed", "predicted_probability", "prediction",
                      "classification_binary"),
    "multiclass": (nml.load_synthetic_multiclass_classification_dataset, "y_true",
                   {"prepaid_card": "y_pred_proba_prepaid_card", "highstreet_card": "y_pred_proba_highstreet_card",
                    "upmarket_card": "y_pred_proba_upmarket_card"}, "y_pred", "classification_multiclass"),
}


def main(name: str, chunk_size: int) -> dict:
    load, target, proba, pred, problem = DATASETS[name]
    ref, ana, gt = load()
    ana = ana.merge(gt, on="id", how="left")
    metrics = ["accuracy", "f1", "roc_auc"]
    t0 = time.perf_counter()
    est = nml.CBPE(y_pred_proba=proba, y_pred=pred, y_true=target, problem_type=problem, metrics=metrics,
                   chunker=nml.chunk.SizeBasedChunker(chunk_size=chunk_size, incomplete="drop"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(ref)
        res = est.estimate(ana).filter(period="analysis").to_df()
    seconds = time.perf_counter() - t0
    chunks = []
    for _, row in res.iterrows():
        c: dict[str, float | None] = {"start": int(row[("chunk", "start_index")]),
                                      "end": int(row[("chunk", "end_index")])}
        for m in metrics:
            c[m] = float(row[(m, "value")])
            c[f"{m}_realized"] = None if pd.isna(row[(m, "realized")]) else float(row[(m, "realized")])
            c[f"{m}_low"] = float(row[(m, "lower_confidence_boundary")])
            c[f"{m}_high"] = float(row[(m, "upper_confidence_boundary")])
        chunks.append(c)
    return {"dataset": name, "chunk_size": chunk_size, "rows_reference": len(ref), "rows_analysis": len(ana),
            "seconds": seconds, "chunks": chunks}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], int(sys.argv[2]))))
