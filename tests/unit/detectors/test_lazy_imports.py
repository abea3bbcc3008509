"""A detector run loads only what it uses: scipy, pandas and the web stack stay out until needed."""

from __future__ import annotations

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def test_detectors_and_store_import_neither_scipy_nor_pandas_nor_fastapi() -> None:
    code = ("import sys; import collector.store, detectors.runner, detectors.reference, driftline.migrations; "
            "print(sorted(m for m in ('scipy', 'pandas', 'fastapi') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True,
                         env={**os.environ, "PYTHONPATH": ROOT})
    assert out.stdout.strip() == "[]"
