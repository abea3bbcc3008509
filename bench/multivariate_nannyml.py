"""PCA reconstruction error against NannyML's DataReconstructionDriftCalculator on real data (US census ACS,
``employment_MA``, bundled with NannyML), and Driftline's calibrated band on it.

    python bench/multivariate_nannyml.py [--nannyml-python /work/main/.venv-nannyml/bin/python]

NannyML (its own environment: its pins clash with ours) fits on the whole reference and scores the analysis
set in chunks of 5000 rows; Driftline fits on the same reference and scores the same chunks: ``max_abs_diff``
is the largest difference of the chunk values. Then Driftline's detector as it runs (a 5000-row reference
sample, frequency-encoded categories, the calibrated band): how many reference chunks fall outside its
band (stationary data) and which analysis chunks alert, beside NannyML's alerts. Last, both tests as the
detector runs them (``score_samples``) with a 5000-row sample of the reference's first half: alerts among the
chunks of its second half (stationary) and among the analysis chunks.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
NANNYML_PYTHON = "/work/main/.venv-nannyml/bin/python"
COLUMNS = ["AGEP", "SCHL", "MAR", "RELP", "DIS", "ESP", "CIT", "MIG", "MIL", "ANC", "NATIVITY", "DEAR", "DEYE",
           "DREM", "SEX", "RAC1P"]
CHUNK = 5000

_NANNYML = """
import json, sys, warnings
warnings.filterwarnings("ignore")
import pandas as pd, nannyml as nml
d = sys.argv[1]
r, a = pd.read_parquet(d + "/employment_MA_reference.pq"), pd.read_parquet(d + "/employment_MA_analysis.pq")
c = nml.DataReconstructionDriftCalculator(column_names=json.loads(sys.argv[2]), chunk_size=int(sys.argv[3])).fit(r)
res = c.calculate(a).filter(period="analysis").to_df()
print(json.dumps({"values": [float(x) for x in res[("reconstruction_error", "value")]],
                  "alerts": [bool(x) for x in res[("reconstruction_error", "alert")]]}))
"""


def run_nannyml(python: str) -> tuple[dict, str]:
    data = subprocess.run([python, "-c", "import nannyml.datasets, os; print(os.path.dirname("
                           "nannyml.datasets.__file__) + '/data')"], capture_output=True, text=True,
                          env=_env())
    d = data.stdout.strip().splitlines()[-1] if data.returncode == 0 else ""
    out = subprocess.run([python, "-c", _NANNYML, d, json.dumps(COLUMNS), str(CHUNK)], capture_output=True,
                         text=True, env=_env())
    if out.returncode != 0:
        raise SystemExit(f"NannyML failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1]), d


def _env() -> dict[str, str]:
    # NannyML's plots import statsmodels at import time (not used here; not in its environment): an empty stand-in,
    # and no usage telemetry
    stub = os.path.join(tempfile.gettempdir(), "driftline-nannyml-stub", "statsmodels")
    os.makedirs(stub, exist_ok=True)
    for f in ("__init__.py", "api.py"):
        open(os.path.join(stub, f), "a").close()
    return {**os.environ, "PYTHONPATH": os.path.dirname(stub), "NML_DISABLE_USAGE_LOGGING": "1"}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nannyml-python", default=NANNYML_PYTHON)
    a = p.parse_args()
    import numpy as np
    import pandas as pd

    from detectors.multivariate import (
        MultivariateConfig,
        Sample,
        encode,
        encoding_of,
        fit_pca,
        reference_band,
        score_samples,
    )

    nml, data = run_nannyml(a.nannyml_python)
    ref = pd.read_parquet(os.path.join(data, "employment_MA_reference.pq"))
    ana = pd.read_parquet(os.path.join(data, "employment_MA_analysis.pq"))

    def sample(df: pd.DataFrame) -> Sample:
        return Sample(len(df), {"AGEP": df["AGEP"].to_numpy(float)},
                      {c: [None if pd.isna(v) else str(v) for v in df[c]] for c in COLUMNS[1:]})

    chunks = [ana.iloc[i * CHUNK:(i + 1) * CHUNK] for i in range(len(ana) // CHUNK)]
    enc = encoding_of(sample(ref), 1000)                 # every category, as NannyML's CountEncoder
    full = fit_pca(encode(sample(ref), enc), 0.65)
    ours = [float(full.row_errors(encode(sample(c), enc)).mean()) for c in chunks]
    diff = float(np.max(np.abs(np.asarray(ours) - np.asarray(nml["values"][:len(ours)]))))

    cfg = MultivariateConfig()                           # the detector: a 5000-row reference sample
    rs = sample(ref.sample(cfg.sample, random_state=0))
    enc = encoding_of(rs, cfg.max_categories)
    xs = encode(rs, enc)
    model = fit_pca(xs, cfg.variance)
    band = reference_band(xs, model, CHUNK, cfg)
    ref_chunks = [ref.iloc[i * CHUNK:(i + 1) * CHUNK] for i in range(len(ref) // CHUNK)]
    outside_ref = sum(not band.lower <= model.row_errors(encode(sample(c), enc)).mean() <= band.upper
                      for c in ref_chunks)
    alerts = [i for i, c in enumerate(chunks) if not band.lower <= model.row_errors(encode(sample(c), enc)).mean()
              <= band.upper]
    nml_alerts = [i for i, x in enumerate(nml["alerts"][:len(chunks)]) if x]
    print(f"chunks: {len(chunks)} analysis, {len(ref_chunks)} reference; band {band.lower:.4f}..{band.upper:.4f} "
          f"({band.method}); Driftline alerts {alerts}; NannyML alerts {nml_alerts}")
    half = len(ref) // 2
    first = sample(ref.iloc[:half].sample(cfg.sample, random_state=1))
    second = [ref.iloc[half + i * CHUNK:half + (i + 1) * CHUNK] for i in range((len(ref) - half) // CHUNK)]
    stationary = [{r.test: r for r in score_samples(first, sample(c), cfg)} for c in second]
    analysis = [{r.test: r for r in score_samples(first, sample(c), cfg)} for c in chunks]
    both = {}
    for test in ("pca_reconstruction", "domain_classifier"):
        st = [i for i, r in enumerate(stationary) if r[test].status == "alert"]
        an = [i for i, r in enumerate(analysis) if r[test].status == "alert"]
        both[test] = (st, an)
        vals = [float(v) for r in stationary if (v := r[test].value) is not None]
        print(f"{test}: second-half reference chunks alerting {st} of {len(second)} (values "
              f"{min(vals):.4f}..{max(vals):.4f}, "
              f"threshold {stationary[0][test].threshold:.4f}); analysis chunks alerting {an}")
    print(f"multivariate_nannyml max_abs_diff={diff:.2e} reference_chunks_outside={outside_ref}/{len(ref_chunks)} "
          f"analysis_alerts={len(alerts)} nannyml_alerts={len(nml_alerts)} same_alerts={alerts == nml_alerts} "
          f"pca_stationary_alerts={len(both['pca_reconstruction'][0])}/{len(second)} "
          f"classifier_stationary_alerts={len(both['domain_classifier'][0])}/{len(second)} "
          f"classifier_analysis_alerts={len(both['domain_classifier'][1])}/{len(chunks)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
