"""First render of the dashboard's On-call page over a store holding 10M events.

A fresh chDB store gets ``--events`` predictions (spread over the last 6 hours, two versions, generated
in ClickHouse with ``numbers()``), the metric windows that counted them (two replicas, one-minute windows),
two deploys and two SLOs. The real server runs in a thread; the On-call page is run with Streamlit's
AppTest, caches cleared before each run, so every run is a first render (all its API calls, all its SQL).

    python -m bench.dashboard_render [--events 10000000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import tempfile
import threading
import time
from pathlib import Path

from collector.migrations import migrate
from collector.sql import sql
from collector.store import ChdbStore
from driftline.server import all_migrations

PAGE = str(Path(__file__).resolve().parents[1] / "dashboard" / "views" / "oncall.py")
SPEC = """
version: driftline/v1
slos:
  - {name: availability, model: churn, objective: 99.5, window: 30d, sli: {availability: {}}}
  - {name: latency, model: churn, objective: 99, window: 30d, sli: {latency: {threshold_ms: 250}}}
"""


def _fill(store: ChdbStore, events: int) -> None:
    span_s = 6 * 3600
    store.execute(sql("""
        INSERT INTO {db}.predictions (event_id, ts, model, model_version, request_id, features_num, features_cat,
                                        pred_label, pred_score, slices, latency_ms, status, error_type, schema_version)
        SELECT concat('e', toString(number)),
               now64(3) - toIntervalMillisecond(intDiv(number * %(span_ms)s, %(events)s)),
               'churn', if(number % 10 < 8, 'v2', 'v1'), concat('r', toString(number)),
               map('tenure', toFloat64(number % 60), 'spend', (number % 1000) / 10.0),
               map('plan', ['free', 'pro', 'team'][number % 3 + 1]),
               if(number % 4 = 0, 'churn', 'stay'), (number % 100) / 100.0,
               map('region', ['eu', 'us', 'apac'][number % 3 + 1]),
               5 + (number % 200), if(number % 200 = 0, 'error', 'ok'), if(number % 200 = 0, 'timeout', ''), 1
        FROM numbers(%(events)s)""", span_ms=span_s * 1000, events=events))
    minutes = span_s // 60
    per = events // (minutes * 2)
    store.execute(sql("""
        INSERT INTO {db}.metric_windows (event_id, window_start, window_s, model, model_version, source, requests,
                                           errors, latency_buckets, latency_sum_ms, schema_version)
        SELECT concat('w', toString(number)), toStartOfMinute(now64(3)) - toIntervalMinute(intDiv(number, 2) + 1), 60,
               'churn', 'v2', concat('replica-', toString(number % 2)), %(per)s, map('timeout', %(errors)s),
               %(buckets)s, %(per)s * 20.0, 1
        FROM numbers(%(windows)s)""",
        per=per, errors=per // 200, windows=minutes * 2,
        buckets=[0, 0, 0, per // 2, per // 4, per // 8, per - per // 2 - per // 4 - per // 8, 0, 0, 0, 0, 0, 0, 0]))
    store.execute("""
        INSERT INTO {db}.deploys (event_id, ts, model, model_version, annotations, schema_version)
        VALUES ('d1', now64(3) - toIntervalHour(5), 'churn', 'v1', map(), 1),
               ('d2', now64(3) - toIntervalHour(2), 'churn', 'v2', map(), 1)""")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    import uvicorn

    from driftline.config import Settings
    from driftline.server import create_app
    from slo_engine.spec import parse_specs

    store = ChdbStore(tempfile.mkdtemp(prefix="driftline-render-"), database="render")
    migrate(store, all_migrations())
    t0 = time.perf_counter()
    _fill(store, a.events)
    store.execute("OPTIMIZE TABLE {db}.predictions FINAL")
    n = int(store.scalar("SELECT count() FROM {db}.predictions FINAL"))
    print(f"stored {n:,} predictions and {int(store.scalar('SELECT sum(requests) FROM {db}.metric_windows FINAL')):,} "
          f"counted requests in {time.perf_counter() - t0:.1f}s (not timed below)", flush=True)

    app = create_app(Settings(open_localhost=True, scheduler=False), store=store)
    app.state.slo_specs = parse_specs(SPEC)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", ws="none",
                                           access_log=False))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    os.environ["DRIFTLINE_API"] = f"http://127.0.0.1:{port}"

    import streamlit as st
    from streamlit.testing.v1 import AppTest

    times = []
    for i in range(a.repeat):
        st.cache_data.clear()
        t = time.perf_counter()
        at = AppTest.from_file(PAGE, default_timeout=120).run()
        times.append(time.perf_counter() - t)
        assert not at.exception, [e.value for e in at.exception]
        charts = len(at.get("plotly_chart"))
        print(f"run {i + 1}: first render {times[-1]:.2f}s ({charts} charts, {len(at.metric)} metrics)", flush=True)
    server.should_exit = True
    print(f"dashboard_render events={n} oncall_first_render_s={statistics.median(times):.2f} "
          f"best_s={min(times):.2f}")


if __name__ == "__main__":
    main()
