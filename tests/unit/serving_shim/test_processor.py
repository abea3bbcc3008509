"""The batch processor: never blocks the caller, bounded, drops counted by reason, retries
windows, drains on shutdown, and works again in a forked child."""

from __future__ import annotations

import os
import threading
import time

from serving_shim import BatchConfig, InMemorySink, Monitor

from .helpers import FlakySink, SlowSink, export_threads, registry


def test_a_slow_sink_never_blocks_the_caller_and_overflow_is_counted() -> None:
    sink = SlowSink(delay=0.5)
    exporting_threads = export_threads(sink)
    m = Monitor(model="m", version="v1", sink=sink, registry=registry(),
                batch=BatchConfig(max_queue_size=100, max_export_batch_size=10, schedule_delay_s=0.05,
                                  shutdown_timeout_s=0.2))
    for i in range(2000):
        m.log(f"r{i}", {"x": i}, 1.0, latency_ms=1.0)
    snap = m.metrics()
    assert snap.queue_depth <= 100
    # 2000 calls while one export takes 0.5 s: had the caller waited for the sink, nothing would overflow
    assert snap.dropped["queue_full"] >= 2000 - 100 - 20
    deadline = time.monotonic() + 10
    while not exporting_threads and time.monotonic() < deadline:  # the worker's first export (0.05 s schedule)
        time.sleep(0.01)
    assert exporting_threads and threading.get_ident() not in exporting_threads  # exports ran on the worker only
    m.shutdown()
    after = m.metrics()
    assert after.dropped["shutdown"] > 0  # what could not be drained within 0.2 s is counted
    assert m.log("late", {}, 1.0) is False
    assert m.metrics().dropped["shutdown"] == after.dropped["shutdown"] + 1


def test_while_the_sink_is_down_events_wait_bounded_and_flow_when_it_returns() -> None:
    sink = FlakySink()
    sink.down.set()
    m = Monitor(model="m", version="v1", sink=sink, window_s=1, registry=registry(),
                batch=BatchConfig(schedule_delay_s=0.05, export_timeout_s=0.1, max_queue_size=40,
                                  max_export_batch_size=10))
    for i in range(50):
        m.log(f"r{i}", {"x": i}, 1.0, latency_ms=1.0)
    assert not m.flush(1.0)
    deadline = time.monotonic() + 3
    while m.metrics().pending_windows == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    snap = m.metrics()
    assert snap.export_failures > 0 and snap.pending_windows >= 1 and sink.events() == []
    assert snap.queue_depth == 40 and snap.dropped["queue_full"] == 10  # bounded; the overflow counted
    sink.down.clear()
    assert m.flush(5)
    assert sum(w.requests for w in sink.events("metric_window")) == 50  # the window survived the outage
    assert len(sink.events("prediction")) == 40
    assert m.metrics().pending_windows == 0 and m.metrics().queue_depth == 0
    m.shutdown()


def test_a_failed_batch_is_dropped_and_counted_as_export_error() -> None:
    sink = FlakySink(kinds=("prediction",))
    sink.down.set()
    m = Monitor(model="m", version="v1", sink=sink, registry=registry(),
                batch=BatchConfig(schedule_delay_s=0.05, max_export_batch_size=25))
    for i in range(50):
        m.log(f"r{i}", {"x": i}, 1.0, latency_ms=1.0)
    m.flush(2)
    m.flush(2)
    snap = m.metrics()
    assert snap.dropped["export_error"] == 50 and snap.export_failures == 2
    assert sum(w.requests for w in sink.events("metric_window")) == 50
    m.shutdown()


def test_shutdown_drains_the_queue() -> None:
    sink = InMemorySink()
    m = Monitor(model="m", version="v1", sink=sink, registry=registry(),
                batch=BatchConfig(schedule_delay_s=30, max_export_batch_size=1000, max_queue_size=5000))
    for i in range(500):
        m.log(f"r{i}", {"x": i}, 1.0, latency_ms=1.0)
    m.shutdown()  # the worker sleeps for 30 s: only shutdown can have exported these
    assert len(sink.events("prediction")) == 500
    assert sum(w.requests for w in sink.events("metric_window")) == 500
    assert sink.is_shutdown


def test_batches_respect_the_size_limit() -> None:
    sink = InMemorySink()
    m = Monitor(model="m", version="v1", sink=sink, registry=registry(),
                batch=BatchConfig(max_export_batch_size=64, schedule_delay_s=0.05))
    for i in range(1000):
        m.log(f"r{i}", {"x": i}, 1.0)
    m.shutdown()
    sizes = [len(b.events) for b in sink.batches() if b.kind == "prediction"]
    assert sum(sizes) == 1000 and max(sizes) <= 64


def test_a_forked_child_gets_its_own_worker_and_replica_id() -> None:
    sink = InMemorySink()
    m = Monitor(model="m", version="v1", sink=sink, source="replica-1", registry=registry(),
                batch=BatchConfig(schedule_delay_s=0.05))
    m.log("parent-1", {"x": 1}, 1.0, latency_ms=1.0)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: the worker thread was not copied; the at-fork hook must have started a new one
        code = 1
        try:
            os.close(r)
            sink.clear()
            m.log("child-1", {"x": 2}, 1.0, latency_ms=1.0)
            ok = m.flush(5)
            preds = [e.request_id for e in sink.events("prediction")]
            windows = sink.events("metric_window")
            good = (ok and preds == ["child-1"] and len(windows) == 1 and windows[0].requests == 1
                    and windows[0].source == f"replica-1/{os.getpid()}")
            os.write(w, b"ok" if good else repr((ok, preds, [x.source for x in windows])).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    msg = os.read(r, 4096)
    os.waitpid(pid, 0)
    assert msg == b"ok", msg
    assert m.flush(5)
    assert [e.request_id for e in sink.events("prediction")] == ["parent-1"]
    assert all(x.source == "replica-1" for x in sink.events("metric_window"))
    m.shutdown()
