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


def test_demo_ctrl_c_flushes_the_shim_before_the_server_stops() -> None:
    """Ctrl-C (SIGINT to the terminal's process group) while traffic flows: the shim sends what it holds while
    the server still answers, then the server stops; exit 0, no failed export, nothing dropped, no traceback."""
    import threading
    import time

    store = os.path.join(tempfile.mkdtemp(prefix="driftline-demo-"), "store")
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "driftline", "demo", "--no-dashboard", "--port", str(port), "--store", store],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    stream = proc.stdout
    assert stream is not None
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(stream.readline, "")), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 120
        while not any(re.match(r"\[\s*\d+s\] arrived:\s+[1-9]", line) for line in list(lines)):
            assert proc.poll() is None and time.monotonic() < deadline, "".join(lines)[-3000:]
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGINT)   # what a terminal's Ctrl-C does: the foreground process group
        rc = proc.wait(timeout=90)
        reader.join(timeout=10)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        stream.close()
        shutil.rmtree(os.path.dirname(store), ignore_errors=True)
    out = "".join(lines)
    assert rc == 0, out[-3000:]
    assert "stopping (Ctrl-C)" in out, out[-3000:]
    assert re.search(r"done, \d+ predictions sent, 0 dropped by the shim\n", out), out[-3000:]
    assert "failed" not in out and "Traceback" not in out and "raised" not in out, out[-3000:]
    with socket.socket() as s:   # the server is gone with the demo: its port is free again
        assert s.connect_ex(("127.0.0.1", port)) != 0
