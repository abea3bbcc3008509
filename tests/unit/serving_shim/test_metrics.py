"""The shim's own metrics, from code and in Prometheus text format, on a registry passed in."""

from __future__ import annotations

from prometheus_client import generate_latest

from serving_shim import BatchConfig, InMemorySink, Monitor

from .helpers import SlowSink, registry


def test_metrics_from_code_and_prometheus_text() -> None:
    reg = registry()
    sink = InMemorySink()
    m = Monitor(model="m1", version="v7", sink=sink, sample_rate=1.0, registry=reg)
    for i in range(30):
        m.log(f"r{i}", {"x": i}, 1.0, latency_ms=1.0)
    assert m.flush(10)
    snap = m.metrics()
    assert snap.requests == 30 and snap.sampled == 30 and snap.exported["prediction"] == 30
    assert snap.export_latency_s_count >= 2 and snap.queue_depth == 0
    text = generate_latest(reg).decode()
    assert 'driftline_shim_requests_total{model="m1",model_version="v7"} 30.0' in text
    assert 'driftline_shim_exported_total{kind="prediction",model="m1",model_version="v7"} 30.0' in text
    assert 'driftline_shim_dropped_total{model="m1",model_version="v7",reason="queue_full"} 0.0' in text
    assert "driftline_shim_export_latency_seconds_count" in text and "driftline_shim_queue_depth" in text
    m.shutdown()


def test_queue_depth_and_drops_show_up_and_two_monitors_share_a_registry() -> None:
    reg = registry()
    slow = Monitor(model="a", version="v1", sink=SlowSink(delay=1.0), registry=reg,
                   batch=BatchConfig(max_queue_size=20, max_export_batch_size=5, shutdown_timeout_s=0.1))
    other = Monitor(model="b", version="v1", sink=InMemorySink(), registry=reg)
    for i in range(100):
        slow.log(f"r{i}", {}, 1.0)
    other.log("x", {}, 1.0)
    text = generate_latest(reg).decode()
    depth = [line for line in text.splitlines() if line.startswith('driftline_shim_queue_depth{model="a"')]
    assert depth and float(depth[0].split()[-1]) > 0
    dropped = [line for line in text.splitlines()
               if line.startswith('driftline_shim_dropped_total{model="a",model_version="v1",reason="queue_full"}')]
    assert float(dropped[0].split()[-1]) >= 100 - 20 - 5
    assert 'driftline_shim_requests_total{model="b",model_version="v1"} 1.0' in text
    slow.shutdown()
    other.shutdown()
