"""The README's demo command: events arrive within 60 s and the injected drift is reported."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_demo_shows_arrivals_and_drift() -> None:
    store = os.path.join(tempfile.mkdtemp(prefix="driftline-demo-"), "store")
    proc = subprocess.Popen(
        [sys.executable, "-m", "driftline", "demo", "--duration", "80", "--no-dashboard", "--port", str(_free_port()),
         "--store", store], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=240)
    finally:  # the demo's server is its child: never leave it holding a port
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        shutil.rmtree(os.path.dirname(store), ignore_errors=True)
    out = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.splitlines()
    arrivals = [int(m.group(2)) for line in lines
                if (m := re.match(r"\[\s*(\d+)s\] arrived:\s+(\d+) predictions", line))]
    assert arrivals and arrivals[0] > 0, out.stdout
    assert arrivals == sorted(arrivals) and arrivals[-1] > arrivals[0]
    drift = {m.group(1): m.group(2) for line in lines if (m := re.match(r"\s+(\w+)\s+[\d.]+ \S+ (OK|DRIFT)$", line))}
    assert drift.get("income") == "DRIFT" and drift.get("debt_ratio") == "DRIFT", out.stdout
    assert drift.get("age") == "OK", out.stdout
    # the scheduler inside the server: detectors against the stored baseline, and the outage burns the budget
    assert "reference 'baseline' stored" in out.stdout
    assert any(line.startswith("  detector alerts in the latest window:") and "income (psi)" in line for line in lines)
    assert "ALERT PAGE: credit-risk-availability" in out.stdout, out.stdout[-3000:]
    assert re.search(r"credit-risk-availability\s+SLI\s+[\d.]+%\s+budget left\s+-", out.stdout), out.stdout[-3000:]
