"""The README's demo command: events arrive within 60 s, the injected drift and the outage are reported, and
Ctrl-C stops it cleanly.

The suite runs the demo once: it watches the output until everything the demo promises has shown (about 70 s
into it: the outage's page alert), then presses Ctrl-C. The run that ends by itself (``--duration 80``) is
marked slow (``scripts/test.sh --slow``).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable

import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Demo:
    """``driftline demo`` in its own session, its output read line by line as it comes. ``kill()`` ends it and
    its server (which runs in a session of its own, so a kill of the demo's group does not reach it)."""

    def __init__(self, *args: str) -> None:
        self.store = os.path.join(tempfile.mkdtemp(prefix="driftline-demo-"), "store")
        self.port = _free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "driftline", "demo", "--no-dashboard", "--port", str(self.port),
             "--store", self.store, *args],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
            # as in a terminal: a run started in the background by a shell without job control ignores SIGINT,
            # the demo would inherit that (and Python then sets no KeyboardInterrupt handler): restore the default
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        stream = self.proc.stdout
        assert stream is not None
        self.lines: list[str] = []
        self.server_pids: set[int] = set()
        self._reader = threading.Thread(target=lambda: self.lines.extend(iter(stream.readline, "")), daemon=True)
        self._reader.start()

    @property
    def out(self) -> str:
        return "".join(self.lines)

    def _note_children(self) -> None:
        try:
            with open(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children") as fh:
                self.server_pids |= {int(p) for p in fh.read().split()}
        except OSError:
            pass

    def wait_for(self, unmet: Callable[[list[str]], list[str]], timeout: float) -> None:
        """Poll the output until ``unmet(lines)`` is empty; fail with what is missing if the demo exits first
        or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        while missing := unmet(list(self.lines)):
            self._note_children()
            assert self.proc.poll() is None, f"the demo exited ({self.proc.returncode}); missing {missing}\n" \
                                             + self.out[-3000:]
            assert time.monotonic() < deadline, f"after {timeout:.0f}s still missing {missing}\n{self.out[-3000:]}"
            time.sleep(0.2)
        self._note_children()

    def wait(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while (rc := self.proc.poll()) is None:
            self._note_children()
            if time.monotonic() > deadline:
                pytest.fail(f"the demo did not exit within {timeout:.0f}s\n{self.out[-3000:]}")
            time.sleep(0.2)
        return rc

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        for pid in self.server_pids:  # each leads its own process group; a pid taken since by another is left alone
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as fh:
                    if self.store.encode() in fh.read():
                        os.killpg(pid, signal.SIGKILL)
            except (OSError, ProcessLookupError):
                pass
        self.proc.wait(timeout=30)
        self._reader.join(timeout=30)   # the pipe's writers are gone: the reader has its end of file
        assert self.proc.stdout is not None
        if not self._reader.is_alive():  # closing the pipe under a blocked reader would wait for it
            self.proc.stdout.close()
        shutil.rmtree(os.path.dirname(self.store), ignore_errors=True)


def _arrivals(lines: list[str]) -> list[int]:
    return [int(m.group(2)) for line in lines if (m := re.match(r"\[\s*(\d+)s\] arrived:\s+(\d+) predictions", line))]


def _unmet(lines: list[str]) -> list[str]:
    """What the demo promises and ``lines`` does not show yet."""
    out = "".join(lines)
    arrivals = _arrivals(lines)
    drift = {m.group(1): m.group(2) for line in lines if (m := re.match(r"\s+(\w+)\s+[\d.]+ \S+ (OK|DRIFT)$", line))}
    checks = {
        "arrivals that grow": len(arrivals) > 1 and arrivals[0] > 0 and arrivals == sorted(arrivals)
        and arrivals[-1] > arrivals[0],
        "income and debt_ratio DRIFT, age OK": drift.get("income") == "DRIFT" and drift.get("debt_ratio") == "DRIFT"
        and drift.get("age") == "OK",
        # the scheduler inside the server: detectors against the stored baseline, and the outage burns the budget
        "the stored baseline": "reference 'baseline' stored" in out,
        # the scheduler's default drift test of a window this size (tests "auto": Wasserstein on 3,000 rows)
        "a detector drift alert on income": any(line.startswith("  detector alerts in the latest window:")
                                                and re.search(r"\bincome \((psi|wasserstein|ks|ks_p|js)\)", line)
                                                for line in lines),
        "the availability page": "ALERT PAGE: credit-risk-availability" in out,
        "the availability budget spent": re.search(r"credit-risk-availability\s+SLI\s+[\d.]+%\s+budget left\s+-",
                                                   out) is not None,
    }
    return [name for name, ok in checks.items() if not ok]


def test_demo_shows_arrivals_drift_and_the_outage_then_ctrl_c_stops_it_cleanly() -> None:
    """Ctrl-C (SIGINT to the terminal's process group) while traffic flows: the shim sends what it holds while
    the server still answers, then the server stops; exit 0, no failed export, nothing dropped, no traceback."""
    demo = _Demo("--duration", "300")   # a bound: the demo ends by itself even if this test cannot stop it
    try:
        demo.wait_for(lambda lines: [] if _arrivals(lines) and _arrivals(lines)[0] > 0 else ["arrivals"], 120)
        demo.wait_for(_unmet, 240)
        os.killpg(demo.proc.pid, signal.SIGINT)   # what a terminal's Ctrl-C does: the foreground process group
        rc = demo.wait(90)
    finally:
        demo.kill()
    out = demo.out
    assert rc == 0, out[-3000:]
    assert "stopping (Ctrl-C)" in out, out[-3000:]
    assert re.search(r"done, \d+ predictions sent, 0 dropped by the shim\n", out), out[-3000:]
    assert "failed" not in out and "Traceback" not in out and "raised" not in out, out[-3000:]
    with socket.socket() as s:   # the server is gone with the demo: its port is free again
        assert s.connect_ex(("127.0.0.1", demo.port)) != 0


@pytest.mark.slow
def test_demo_with_a_duration_ends_by_itself_having_shown_everything() -> None:
    demo = _Demo("--duration", "80")
    try:
        rc = demo.wait(240)
    finally:
        demo.kill()
    assert rc == 0, demo.out[-3000:]
    assert _unmet(demo.lines) == [], demo.out[-3000:]
    assert re.search(r"done, \d+ predictions sent, 0 dropped by the shim\n", demo.out), demo.out[-3000:]
