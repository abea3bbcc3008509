"""Collector throughput: events/s from Kafka into the store on one core, and produce→queryable p99.

Needs the Kafka broker (scripts/kafka.sh start). Two phases, in one run:
1. backlog: N prediction events (batches of --batch events per Kafka message, as the shim sends them)
   are produced first; one collector pinned to one core drains them into a fresh chDB store.
   events_per_s = N / time to drain (decode + validate + columnar insert + commit).
2. steady stream: a producer sends --rate events/s for --seconds while the collector runs; for every
   event, ingested_at (set by the store at insert) minus ts (set at produce time) is the time from
   produce to queryable; e2e_p99_s is its 99th percentile, computed in ClickHouse.

    python bench/collector_throughput.py [--events 200000] [--batch 500] [--rate 20000] [--seconds 20]
                                         [--redaction SPEC]

The collector runs as ``driftline collect`` does by default, server-side redaction included (pattern
recognizers on every string, collector.redaction); ``--redaction off`` measures it without.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
import threading
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from collector.consumer import KafkaCollector  # noqa: E402
from collector.migrations import migrate  # noqa: E402
from collector.store import ChdbStore  # noqa: E402
from collector.writer import EventWriter  # noqa: E402
from driftline.config import Settings  # noqa: E402
from driftline.migrations import all_migrations  # noqa: E402
from serving_shim.codec import encode_batch  # noqa: E402
from serving_shim.transport import KafkaTransport  # noqa: E402


def _events(n: int, start: int, ts: dt.datetime | None = None) -> list[dict]:
    t = (ts or dt.datetime.now(dt.UTC)).isoformat()
    out = []
    for i in range(start, start + n):
        out.append({
            "schema_version": 1, "event_id": f"e{i}-{uuid.uuid4().hex[:8]}", "ts": t, "model": f"model-{i % 8}",
            "model_version": "v1", "request_id": f"r{i}",
            "features": {f"f{k}": (i * 7 + k) % 1000 / 10.0 for k in range(10)} | {"region": "eu", "plan": "pro"},
            "prediction": {"label": "yes", "score": (i % 100) / 100}, "slices": {"region": "eu"},
            "latency_ms": 3.5, "status": "ok",
        })
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kafka", default=os.environ.get("DRIFTLINE_KAFKA", "127.0.0.1:9092"))
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--rate", type=int, default=20_000)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--cores", default="0", help="CPU cores the collector may use (taskset-like), '' for all")
    ap.add_argument("--redaction", default="", help="server-side redaction spec as for driftline collect ('off': none)")
    a = ap.parse_args()
    if a.cores:
        os.sched_setaffinity(0, {int(c) for c in a.cores.split(",")})
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    store = ChdbStore(tempfile.mkdtemp(prefix="driftline-bench-"), database="bench")
    migrate(store, all_migrations())
    producer = KafkaTransport(a.kafka, topic_prefix=prefix, linger_ms=5)

    # phase 1: backlog
    print(f"producing {a.events} events in messages of {a.batch} ...", flush=True)
    for i in range(0, a.events, a.batch):
        evs = _events(min(a.batch, a.events - i), i)
        producer.send_raw("prediction", encode_batch("prediction", evs), key=evs[0]["model"].encode())
    producer.flush()
    redaction = Settings(redaction=a.redaction).ingest_redaction()
    collector = KafkaCollector(EventWriter(store), bootstrap_servers=a.kafka, group_id=f"{prefix}-g",
                               topic_prefix=prefix, kinds=["prediction"],
                               redaction=redaction)  # the defaults of `driftline collect`
    while not collector.assignment():  # join the group before the clock starts
        collector.poll_once(0.1)
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    while collector.stats.stored_events < a.events:
        collector.poll_once(0.1)
    elapsed = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    stored = int(store.scalar("SELECT count() FROM {db}.predictions FINAL"))
    eps = a.events / elapsed
    print(f"backlog: {a.events} events stored in {elapsed:.2f}s = {eps:,.0f} events/s "
          f"(process CPU {cpu:.2f}s, {a.events / cpu:,.0f} events per CPU-second); stored={stored}", flush=True)

    # phase 2: steady stream
    store.execute("TRUNCATE TABLE {db}.predictions")
    stop = threading.Event()
    sent = [0]

    def produce() -> None:
        per_tick = max(1, a.rate // 10)
        n = a.events
        while not stop.is_set():
            tick = time.monotonic()
            for j in range(0, per_tick, a.batch):
                evs = _events(min(a.batch, per_tick - j), n)
                n += len(evs)
                producer.send_raw("prediction", encode_batch("prediction", evs), key=evs[0]["model"].encode())
            sent[0] = n - a.events
            stop.wait(max(0.0, 0.1 - (time.monotonic() - tick)))

    th = threading.Thread(target=produce, daemon=True)
    th.start()
    t_end = time.monotonic() + a.seconds
    while time.monotonic() < t_end:
        collector.poll_once(0.05)
    stop.set()
    th.join()
    producer.flush()
    deadline = time.monotonic() + 30
    while collector.stats.stored_events < a.events + sent[0] and time.monotonic() < deadline:
        collector.poll_once(0.05)
    q = store.rows("SELECT count() AS n, quantile(0.5)(d) AS p50, quantile(0.99)(d) AS p99, max(d) AS mx FROM "
                   "(SELECT dateDiff('millisecond', ts, ingested_at) / 1000.0 AS d FROM {db}.predictions FINAL)")[0]
    print(f"steady: {sent[0]} events at ~{a.rate}/s for {a.seconds:.0f}s; stored {q['n']}; produce→queryable "
          f"p50={q['p50']:.3f}s p99={q['p99']:.3f}s max={q['mx']:.3f}s", flush=True)
    collector.close()
    producer.close()
    print(f"collector_throughput events_per_s={eps:.0f} e2e_p99_s={q['p99']:.3f} redaction={a.redaction or 'default'}")


if __name__ == "__main__":
    main()
