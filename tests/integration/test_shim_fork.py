"""A gunicorn-style fork after the Kafka producer exists: the child gets its own worker, producer
and replica id, exits promptly, and both processes' events reach the store."""

from __future__ import annotations

import os
import time

import pytest

from collector.store import ChdbStore
from serving_shim import KafkaSink, Monitor
from tests.collecting import collect_until

pytestmark = pytest.mark.kafka


def test_fork_with_a_live_kafka_producer(store: ChdbStore, kafka_bootstrap: str, topic_prefix: str) -> None:
    m = Monitor(model="forked", version="v1", sink=KafkaSink(kafka_bootstrap, topic_prefix=topic_prefix), source="web")
    for i in range(20):
        m.log(f"parent-{i}", {"x": float(i)}, 1.0, latency_ms=2.0)
    assert m.flush(30)  # the producer now exists, with its network thread
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            for i in range(30):
                m.log(f"child-{i}", {"x": float(i)}, 1.0, latency_ms=2.0)
            ok = m.flush(30)
            m.shutdown(5)
            code = 0 if ok and m.metrics().exported.get("prediction") == 30 else 2
        finally:
            os._exit(code)
    t0 = time.monotonic()
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0 and time.monotonic() - t0 < 60
    for i in range(20, 40):
        m.log(f"parent-{i}", {"x": float(i)}, 1.0, latency_ms=2.0)
    assert m.flush(30)
    m.shutdown()

    collect_until(store, kafka_bootstrap, topic_prefix, lambda: (
        int(store.scalar("SELECT count() FROM {db}.predictions FINAL")) >= 70
        and int(store.scalar("SELECT sum(requests) FROM {db}.metric_windows FINAL")) >= 70))
    assert int(store.scalar("SELECT countIf(request_id LIKE 'parent-%') FROM {db}.predictions FINAL")) == 40
    assert int(store.scalar("SELECT countIf(request_id LIKE 'child-%') FROM {db}.predictions FINAL")) == 30
    sources = {r["source"]: int(r["n"]) for r in store.rows(
        "SELECT source, sum(requests) AS n FROM {db}.metric_windows FINAL GROUP BY source")}
    assert sources == {"web": 40, f"web/{pid}": 30}
