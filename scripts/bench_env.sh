#!/usr/bin/env bash
# The environment of bench/cbpe_quality.py's anchor: NannyML in its own venv, .venv-nannyml (its pins clash
# with Driftline's: plotly<6, lightgbm<4.6, ...). Idempotent.
#   scripts/bench_env.sh            create or complete .venv-nannyml
#   DRIFTLINE_NANNYML_VENV=DIR      put it elsewhere (bench/cbpe_quality.py reads the same variable)
# NannyML 0.13.1 imports statsmodels without declaring it; pandas is pinned to the version Driftline uses.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${DRIFTLINE_NANNYML_VENV:-$ROOT/.venv-nannyml}"
PY="${PYTHON:-python3}"
"$PY" -c 'import sys; sys.exit(0 if (3, 9) <= sys.version_info[:2] < (3, 13) else 1)' \
  || { echo "bench_env: NannyML 0.13.1 needs Python 3.9 to 3.12, $("$PY" --version) found" >&2; exit 1; }
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q nannyml==0.13.1 statsmodels==0.15.0 pandas==2.3.3 numpy==2.4.6 \
  scikit-learn==1.9.1 scipy==1.17.1 pyarrow==26.0.1
"$VENV/bin/python" -c 'import nannyml, statsmodels; print("bench_env: nannyml", nannyml.__version__, "in", "'"$VENV"'")'
