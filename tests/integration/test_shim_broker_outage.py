"""The Kafka broker stopped mid-stream: the caller stays fast, memory stays bounded, drops are
counted, and events flow again after the broker restarts (a dedicated real broker, stopped and
started again on its kept data)."""

from __future__ import annotations

import os
import threading
import time

import pytest

from collector.consumer import KafkaCollector
from collector.writer import EventWriter
from serving_shim import BatchConfig, KafkaSink, Monitor
from tests.brokers import DedicatedBroker

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

_LETTERS = bytes(range(256)).translate(None).maketrans(bytes(range(256)), bytes(97 + i % 26 for i in range(256)))
PAGE = os.sysconf("SC_PAGE_SIZE")


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def _blob() -> str:
    """2 KB of letters, new for every call (what an unbounded queue would pile up)."""
    return os.urandom(2000).translate(_LETTERS).decode()


def _log(m: Monitor, rid: str, i: int) -> None:
    m.log(rid, {"x": float(i), "region": "eu", "blob": _blob()}, {"score": 0.5}, latency_ms=3.0,
          status="error" if i % 100 == 0 else "ok", error_type="Timeout" if i % 100 == 0 else None)


def _paced(m: Monitor, prefix: str, n: int, per_s: float, timings: list[float] | None = None) -> None:
    start = time.perf_counter()
    for i in range(n):
        rid = f"{prefix}-{i}"
        t0 = time.perf_counter_ns()
        _log(m, rid, i)
        if timings is not None:
            timings.append((time.perf_counter_ns() - t0) / 1e6)
        ahead = start + (i + 1) / per_s - time.perf_counter()
        if ahead > 0.002:
            time.sleep(ahead)


def test_broker_stopped_mid_stream(store, topic_prefix) -> None:  # type: ignore[no-untyped-def]
    broker = DedicatedBroker()
    broker.start()
    m = Monitor(model="outage", version="v1", sink=KafkaSink(broker.bootstrap, topic_prefix=topic_prefix), window_s=1,
                batch=BatchConfig(max_queue_size=2000, max_export_batch_size=200, schedule_delay_s=0.2,
                                  export_timeout_s=1.0))
    try:
        # 1. broker up: everything flows
        _paced(m, "before", 1000, per_s=2000)
        assert m.flush(30)
        assert m.metrics().exported["prediction"] == 1000

        # 2. the broker stops while the model server keeps logging (the stop takes seconds), then
        # stays down: the caller keeps its speed, the queue its bound, drops are counted
        rss0 = _rss()
        timings: list[float] = []
        stopper = threading.Thread(target=broker.stop)
        stopper.start()
        n_stopping = 0
        while stopper.is_alive():
            _paced(m, f"stopping{n_stopping}", 500, per_s=5000, timings=timings)
            n_stopping += 1
        stopper.join()
        depth_max = 0
        for chunk in range(6):
            _paced(m, f"during{chunk}", 5000, per_s=5000, timings=timings)
            depth_max = max(depth_max, m.metrics().queue_depth)
        grown = _rss() - rss0
        timings.sort()
        p99 = timings[int(0.99 * len(timings))]
        snap = m.metrics()
        print(f"broker down: {len(timings)} calls, caller p50={timings[len(timings) // 2] * 1000:.1f} us "
              f"p99={p99 * 1000:.1f} us max={timings[-1]:.2f} ms; RSS grew {grown / 2**20:.1f} MB; {snap.dropped}")
        assert p99 < 1.0, f"caller p99 {p99:.3f} ms with the broker down"
        assert depth_max <= 2000 and snap.queue_depth <= 2000
        assert n_stopping > 0 and snap.dropped["queue_full"] > 20_000, snap.dropped
        assert snap.export_failures > 0
        # 30,000+ payloads of 2 KB were logged; a queue without a bound would hold 60 MB or more of them
        assert grown < 40 * 1024 * 1024, f"RSS grew by {grown / 2**20:.0f} MB"
        assert not m.flush(0.5)

        # 3. broker back: export resumes by itself (the backlog drains), and new events flow
        broker.start()
        deadline = time.monotonic() + 90
        while m.metrics().queue_depth > 0 or m.metrics().pending_windows > 0:
            assert time.monotonic() < deadline, f"export did not resume: {m.metrics()}"
            time.sleep(0.5)
        _paced(m, "after", 500, per_s=2000)
        assert m.flush(30)
        m.shutdown()
        final = m.metrics()
        assert final.pending_windows == 0 and final.queue_depth == 0
        d = final.dropped
        # every sampled event was exported or dropped with a reason
        assert final.sampled == final.exported["prediction"] + d["queue_full"] + d["export_error"] + d["shutdown"]

        collector = KafkaCollector(EventWriter(store), bootstrap_servers=broker.bootstrap, group_id=f"{topic_prefix}-g",
                                   topic_prefix=topic_prefix, batch_max_s=0.5)
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                collector.poll_batch()
                n_after = int(store.scalar("SELECT count() FROM {db}.predictions FINAL WHERE request_id LIKE 'after-%'"))
                if n_after >= 500:
                    collector.poll_batch()
                    break
        finally:
            collector.close()
        assert int(store.scalar("SELECT count() FROM {db}.predictions FINAL WHERE request_id LIKE 'after-%'")) == 500
        assert int(store.scalar("SELECT count() FROM {db}.predictions FINAL WHERE request_id LIKE 'before-%'")) == 1000
        assert int(store.scalar("SELECT count() FROM {db}.predictions FINAL")) >= final.exported["prediction"]
        # every request was counted into a window, and the windows of the outage were kept and sent later
        assert int(store.scalar("SELECT sum(requests) FROM {db}.metric_windows FINAL")) == \
            1000 + 500 * n_stopping + 30_000 + 500
        assert int(store.scalar("SELECT sum(errors['Timeout']) FROM {db}.metric_windows FINAL")) == \
            10 + 5 * n_stopping + 300 + 5
    finally:
        m.shutdown()
        try:
            broker.stop()
        except RuntimeError:
            pass
