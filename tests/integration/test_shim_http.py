"""The HTTP sink against a real ingest API that is down at first: nothing blocks, the windows wait,
and everything queued is stored once the server is up."""

from __future__ import annotations

import socket
import threading
import time

import uvicorn

from collector.store import ChdbStore
from driftline.config import Settings
from driftline.server import create_app
from serving_shim import BatchConfig, HttpSink, Monitor
from tests.unit.serving_shim.helpers import export_threads


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_http_sink_waits_for_the_server_and_then_delivers(store: ChdbStore) -> None:
    port = _free_port()
    sink = HttpSink(f"http://127.0.0.1:{port}")
    exporting_threads = export_threads(sink)
    m = Monitor(model="http-late", version="v1", sink=sink, window_s=1,
                batch=BatchConfig(schedule_delay_s=0.1, export_timeout_s=0.5, max_queue_size=500,
                                  max_export_batch_size=100))
    try:
        for i in range(300):
            assert m.log(f"r{i}", {"x": float(i), "plan": "pro"}, {"score": 0.3}, latency_ms=5.0) is not None
        assert not m.flush(1)
        assert m.metrics().export_failures > 0
        # connection refused costs the worker, never the caller: no export ran on the caller's thread
        assert exporting_threads and threading.get_ident() not in exporting_threads
    except BaseException:
        m.shutdown()  # no worker left retrying into later tests
        raise

    server = uvicorn.Server(uvicorn.Config(create_app(Settings(open_localhost=True, scheduler=False), store=store),
                                           host="127.0.0.1", port=port, log_level="warning"))
    th = threading.Thread(target=server.run, daemon=True)
    th.start()
    try:
        deadline = time.monotonic() + 30
        while not m.flush(2):
            assert time.monotonic() < deadline, m.metrics()
        m.shutdown()
        snap = m.metrics()
        assert snap.exported["prediction"] + snap.dropped["export_error"] == 300
        stored = int(store.scalar("SELECT count() FROM {db}.predictions FINAL"))
        assert stored == snap.exported["prediction"] and stored >= 200
        assert int(store.scalar("SELECT sum(requests) FROM {db}.metric_windows FINAL")) == 300
    finally:
        server.should_exit = True
        th.join(10)
