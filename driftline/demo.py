"""``driftline demo``: a server on a fresh embedded store, and a model's traffic with a drift in it.

Two processes, as in production: ``driftline serve`` owns the chDB store; this process plays a
model server that logs its calls through the serving shim (``serving_shim.Monitor`` with the HTTP
sink: metric windows, predictions, labels and a deploy marker), and reads back through the query
API what arrived and what drifted.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import random
import shutil
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
import uuid
from typing import Any

from serving_shim import BatchConfig, HttpSink, Monitor, Redaction

MODEL = "credit-risk"
VERSION = "v2"
REGIONS = ["eu", "us", "apac"]
PLANS = ["free", "pro", "enterprise"]


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.UTC)


def _get(base: str, path: str, **params: Any) -> Any:
    q = urllib.parse.urlencode({k: (v.isoformat() if isinstance(v, _dt.datetime) else v) for k, v in params.items()})
    with urllib.request.urlopen(f"{base}{path}?{q}", timeout=30) as r:
        return json.loads(r.read())


class Traffic:
    """A credit-risk model's calls, logged through the serving shim; after ``drift_at`` seconds,
    incomes shift and debt rises. Metric windows and redaction are the shim's; labels follow."""

    def __init__(self, monitor: Monitor, rate: float, drift_at: float, seed: int = 7,
                 outage: tuple[float, float] = (float("inf"), float("inf"))) -> None:
        self.monitor = monitor
        self.rate = rate
        self.drift_at = drift_at
        self.outage = outage
        self.rng = random.Random(seed)
        self.start = time.monotonic()
        self.sent = 0
        self.stop = threading.Event()

    @property
    def failed(self) -> int:
        return sum(self.monitor.metrics().dropped.values())

    def _call(self, drifted: bool, outage: bool = False) -> None:
        rng = self.rng
        income = rng.lognormvariate(10.8 + (0.5 if drifted else 0.0), 0.4)
        age = max(18.0, rng.gauss(41, 12))
        debt = min(1.0, max(0.0, rng.betavariate(2, 5) + (0.15 if drifted else 0.0)))
        accounts = float(rng.randint(0, 12))
        region = rng.choice(REGIONS)
        z = -2.0 + 3.0 * debt - 0.00001 * (income - 50000) + 0.1 * accounts
        score = 1 / (1 + math.exp(-z))
        err = rng.random() < (0.6 if outage else 0.002)
        rid = uuid.uuid4().hex
        features = {"income": round(income, 2), "age": round(age, 1), "debt_ratio": round(debt, 4),
                    "n_accounts": accounts, "region": region, "plan": rng.choice(PLANS)}
        self.monitor.log(rid, features, {"label": "default" if score > 0.5 else "repay", "score": round(score, 4)},
                         latency_ms=round(rng.lognormvariate(6.0 if outage else 2.5, 0.5), 2),
                         status="error" if err else "ok",
                         error_type=("unavailable" if outage else "timeout") if err else None,
                         slices={"region": region})
        self.sent += 1
        if rng.random() < 0.3:  # ground truth for 30% of requests
            self.monitor.log_label(rid, label="default" if rng.random() < score else "repay")

    def run(self) -> None:
        reported = 0
        while not self.stop.is_set():
            tick = time.monotonic()
            drifted = tick - self.start >= self.drift_at
            outage = self.outage[0] <= tick - self.start < self.outage[1]
            for _ in range(max(1, int(self.rate / 5))):
                self._call(drifted, outage)
            if self.failed > reported:
                print(f"  ! {self.failed - reported} events dropped by the shim: {self.monitor.metrics().dropped}",
                      flush=True)
                reported = self.failed
            self.stop.wait(max(0.0, 0.2 - (time.monotonic() - tick)))


def _bar(value: float, full: float = 1.0, width: int = 24) -> str:
    k = max(0, min(width, int(round(width * value / full))))
    return "█" * k + "·" * (width - k)


SLO_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "demo_slos.yaml")


def _post(base: str, path: str, body: dict[str, Any]) -> Any:
    req = urllib.request.Request(f"{base}{path}", data=json.dumps(body, default=str).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())


def _slo_lines(base: str) -> list[str]:
    out = []
    for st in _get(base, "/v1/slo/status"):
        if st.get("sli") is None:
            out.append(f"    {st['slo']:<26} no data yet")
            continue
        left = st.get("budget_remaining")
        burn = max((v for v in st.get("burn_rates", {}).values() if v is not None), default=0.0)
        firing = [r["tier"] for r in st.get("rules", []) if r.get("firing")]
        out.append(f"    {st['slo']:<26} SLI {100 * st['sli']:7.3f}%  budget left {100 * (left or 0):8.1f}%  "
                   f"max burn {burn:7.1f}x  {'FIRING ' + ','.join(firing) if firing else 'ok'}")
    return out


def _start_dashboard(base: str, port: int) -> subprocess.Popen[bytes] | None:
    try:
        import streamlit  # noqa: F401
    except ImportError:
        return None
    return subprocess.Popen([sys.executable, "-m", "driftline", "dashboard", "--api", base, "--port", str(port),
                             "--headless"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


def run_demo(*, duration_s: float = 0, port: int = 8765, store: str = ".driftline-demo", rate: float = 200,
             drift_at: float = 20.0, reference_s: float = 15.0, outage_at: float = 45.0, outage_s: float = 25.0,
             dashboard_port: int = 8501, dashboard: bool = True) -> int:
    marker = os.path.join(store, ".driftline-demo")
    if os.path.exists(store):
        if os.listdir(store) and not os.path.exists(marker):
            print(f"driftline demo: {store} exists and is not a demo store; choose another --store", file=sys.stderr)
            return 2
        shutil.rmtree(store)
    os.makedirs(store)
    open(marker, "w").close()  # the next demo may delete this folder, and only a folder with this file
    base = f"http://127.0.0.1:{port}"
    print(f"driftline demo: starting `driftline serve` on {base} with an embedded chDB store at {store}", flush=True)
    # the scheduler ticks every 5 s and runs the detectors on 15 s windows, so the demo shows alerts in
    # a minute; production defaults are 60 s ticks and 1 h windows every 5 min
    server = subprocess.Popen([sys.executable, "-m", "driftline", "serve", "--store", store, "--port", str(port),
                               "--open-localhost", "--slo", SLO_FILE],
                              env={**os.environ, "PYTHONUNBUFFERED": "1", "DRIFTLINE_SCHEDULER_INTERVAL_S": "5",
                                   "DRIFTLINE_DETECTOR_WINDOW_S": "15", "DRIFTLINE_DETECTOR_EVERY_S": "15"},
                              # its own session: a Ctrl-C in the terminal reaches this process only, which
                              # stops the traffic and flushes the shim before it stops the server
                              start_new_session=True)
    dash: subprocess.Popen[bytes] | None = None
    try:
        t0 = time.monotonic()
        while True:
            try:
                _get(base, "/healthz")
                break
            except OSError:
                if server.poll() is not None:
                    print("driftline demo: the server exited during start", file=sys.stderr)
                    return 1
                if time.monotonic() - t0 > 60:
                    print("driftline demo: the server did not answer within 60 s", file=sys.stderr)
                    return 1
                time.sleep(0.3)
        print(f"driftline demo: server up in {time.monotonic() - t0:.1f}s; sending {rate:.0f} predictions/s "
              f"of model {MODEL!r}, input drift injected after {drift_at:.0f}s, an outage "
              f"from {outage_at:.0f}s to {outage_at + outage_s:.0f}s", flush=True)
        if dashboard:
            dash = _start_dashboard(base, dashboard_port)
            if dash is not None:
                print(f"driftline demo: dashboard at http://127.0.0.1:{dashboard_port} "
                      "(On-call: burn rates and the outage; Debug: the drift heatmap)", flush=True)
        monitor = Monitor(model=MODEL, version=VERSION, sink=HttpSink(base), sample_rate=1.0, window_s=10,
                          source="demo-replica-1", batch=BatchConfig(schedule_delay_s=0.5),
                          redaction=Redaction(categories={"region": set(REGIONS), "plan": set(PLANS)}))
        monitor.log_deploy({"by": "demo"})
        traffic = Traffic(monitor, rate, drift_at, outage=(outage_at, outage_at + outage_s))
        ref_start = _now()
        th = threading.Thread(target=traffic.run, name="demo-traffic", daemon=True)
        th.start()
        last_summary = 0.0
        baseline = False
        try:
            while duration_s <= 0 or time.monotonic() - traffic.start < duration_s:
                time.sleep(3)
                c = _get(base, "/v1/counts")
                el = time.monotonic() - traffic.start
                print(f"[{el:5.0f}s] arrived: {c['prediction']:>7} predictions  {c['label']:>6} labels  "
                      f"{c['metric_window']:>3} metric windows  {c['deploy']} deploy  {c['dead_letter']} dead letters",
                      flush=True)
                if not baseline and el >= reference_s + 2:
                    ref = _post(base, "/v1/references/window", {
                        "model": MODEL, "name": "baseline", "start": ref_start.isoformat(),
                        "end": (ref_start + _dt.timedelta(seconds=reference_s)).isoformat()})
                    baseline = True
                    print(f"  reference 'baseline' stored: the first {reference_s:.0f} s ({ref['rows']} predictions, "
                          f"{len(ref['features'])} features); the scheduler's detectors compare every window with it",
                          flush=True)
                if el >= drift_at + 12 and el - last_summary >= 15:
                    last_summary = el
                    now = _now()
                    rows = _get(base, "/v1/drift/psi", model=MODEL, reference_start=ref_start,
                                reference_end=ref_start + _dt.timedelta(seconds=reference_s),
                                current_start=now - _dt.timedelta(seconds=10), current_end=now)
                    print(f"  drift summary ({MODEL}, last 10 s against the first {reference_s:.0f} s, PSI, "
                          "threshold 0.2):", flush=True)
                    for r in rows:
                        v = r["value"]
                        shown = "   n/a" if v is None else f"{v:6.3f}"
                        print(f"    {r['feature']:<12} {shown} {_bar(v or 0, 1.0)} {r['status'].upper()}", flush=True)
                    alerts = _get(base, "/v1/detectors/results", model=MODEL, status="alert", minutes=5, limit=200)
                    latest = max((a["window_end"] for a in alerts), default=None)
                    names = sorted({f"{a['subject']} ({a['test']})" for a in alerts if a["window_end"] == latest})
                    print(f"  detector alerts in the latest window: {', '.join(names) if names else 'none yet'}",
                          flush=True)
                    print("  SLOs (30-day budgets; the scheduler evaluates every 5 s):", flush=True)
                    for line in _slo_lines(base):
                        print(line, flush=True)
                    firing = [a for a in _get(base, "/v1/slo/alerts", active="true") if a["state"] == "firing"]
                    for a in firing:
                        print(f"  ALERT {a['severity'].upper()}: {a['slo']} ({a['tier']}) "
                              f"firing since {a['since'][11:19]}",
                              flush=True)
        except KeyboardInterrupt:  # Ctrl-C: the traffic stops, the shim sends what it holds, then the server stops
            print("\ndriftline demo: stopping (Ctrl-C): sending what the shim holds, then stopping the server",
                  flush=True)
        traffic.stop.set()
        th.join(timeout=5)
        monitor.shutdown(timeout=10)
        dropped = {k: v for k, v in monitor.metrics().dropped.items() if v}
        print(f"driftline demo: done, {traffic.sent} predictions sent, {traffic.failed} dropped by the shim"
              f"{' ' + str(dropped) if dropped else ''}", flush=True)
        return 0
    finally:
        if dash is not None:  # streamlit runs under `driftline dashboard`: end the whole group
            try:
                os.killpg(dash.pid, 15)
            except ProcessLookupError:
                pass
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
