"""The Kafka broker stopped mid-stream: the caller stays fast, memory stays bounded, drops are
counted, and events flow again after the broker restarts (a dedicated real broker, stopped and
started again on its kept data). The model server runs in its own process
(:mod:`tests.integration.shim_outage_server`); this test owns the broker, then reads the store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from collector.consumer import KafkaCollector
from collector.store import ChdbStore
from collector.writer import EventWriter
from tests.brokers import DedicatedBroker

pytestmark = pytest.mark.kafka
ROOT = Path(__file__).resolve().parents[2]


def test_broker_stopped_mid_stream(store: ChdbStore, dedicated_broker: DedicatedBroker, topic_prefix: str) -> None:
    broker = dedicated_broker
    proc = subprocess.run([sys.executable, "-m", "tests.integration.shim_outage_server", str(broker.port),
                           topic_prefix],
                          cwd=ROOT, env={**os.environ, **broker.env}, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"broker down: {r['calls_down']} calls, caller p50={r['p50_ms'] * 1000:.1f} us "
          f"p99={r['p99_ms'] * 1000:.1f} us max={r['max_ms']:.2f} ms; RSS grew {r['rss_grown'] / 2**20:.1f} MB; "
          f"dropped {r['dropped_down']}")

    # 1. broker up: everything flowed
    assert r["phase1_flushed"] and r["phase1_exported"] == 1000
    # 2. broker stopping, then down: fast caller, bounded queue and memory, drops counted
    assert r["p99_ms"] < 1.0, f"caller p99 {r['p99_ms']:.3f} ms with the broker down"
    assert r["depth_max"] <= 2000
    assert r["n_stopping"] > 0 and r["dropped_down"]["queue_full"] > 20_000
    assert r["export_failures"] > 0 and not r["flush_while_down"]
    # 30,000+ payloads of 2 KB were logged; a queue without a bound would hold 60 MB or more of them
    assert r["rss_grown"] < 40 * 1024 * 1024
    # 3. broker back: the backlog drained by itself and new events flowed
    assert r["resumed"] and r["phase3_flushed"]
    assert r["pending_windows"] == 0 and r["queue_depth"] == 0
    d = r["dropped"]  # every sampled event was exported or dropped with a reason
    assert r["sampled"] == r["exported"] + d["queue_full"] + d["export_error"] + d["shutdown"]

    collector = KafkaCollector(EventWriter(store), bootstrap_servers=broker.bootstrap, group_id=f"{topic_prefix}-g",
                               topic_prefix=topic_prefix, batch_max_s=0.5)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            collector.poll_batch()
            n_after = int(store.scalar("SELECT count() FROM {db}.predictions FINAL "
                                       "WHERE request_id LIKE 'after-%'"))
            if n_after >= 500:
                collector.poll_batch()
                break
    finally:
        collector.close()
    assert int(store.scalar("SELECT count() FROM {db}.predictions FINAL WHERE request_id LIKE 'after-%'")) == 500
    assert int(store.scalar("SELECT count() FROM {db}.predictions FINAL WHERE request_id LIKE 'before-%'")) == 1000
    assert int(store.scalar("SELECT count() FROM {db}.predictions FINAL")) >= r["exported"]
    # every request was counted into a window, and the windows of the outage were kept and sent later
    n = r["n_stopping"]
    assert int(store.scalar("SELECT sum(requests) FROM {db}.metric_windows FINAL")) == 1000 + 500 * n + 30_000 + 500
    assert int(store.scalar("SELECT sum(errors['Timeout']) FROM {db}.metric_windows FINAL")) == 10 + 5 * n + 300 + 5
