"""A collector in its own process, for crash tests (python -m tests.integration.collector_proc ...).

``run`` consumes into a chDB path; ``--crash-after-stores N`` kills the process with SIGKILL right
after its N-th insert and before that batch's offsets are committed (the worst moment).
``dump`` prints what the store holds, as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import time
from typing import Any

from collector.consumer import KafkaCollector
from collector.migrations import migrate
from collector.store import ChdbStore
from collector.writer import EventWriter
from driftline.server import all_migrations


def _caught_up(c: KafkaCollector, prefix: str) -> bool:
    """Every partition of the prediction topic has its offsets committed up to the end."""
    from kafka import TopicPartition

    consumer = c._consumer
    topic = f"{prefix}.prediction"
    parts = consumer.partitions_for_topic(topic) or set()
    tps = [TopicPartition(topic, p) for p in parts]
    ends = consumer.end_offsets(tps)
    return bool(tps) and all((consumer.committed(tp) or 0) >= ends[tp] for tp in tps)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["run", "dump"])
    p.add_argument("--path", required=True)
    p.add_argument("--kafka")
    p.add_argument("--prefix")
    p.add_argument("--group")
    p.add_argument("--crash-after-stores", type=int, default=0)
    p.add_argument("--idle-exit-s", type=float, default=0)
    p.add_argument("--batch-events", type=int, default=2000)
    a = p.parse_args()
    store = ChdbStore(a.path, database="driftline")
    migrate(store, all_migrations())
    if a.mode == "dump":
        ids = [r["event_id"] for r in store.rows("SELECT event_id FROM {db}.predictions FINAL")]
        raw = int(store.scalar("SELECT count() FROM {db}.predictions"))
        print(json.dumps({"ids": ids, "raw": raw}))
        return
    writer = EventWriter(store)
    stores = 0
    stored_events = 0
    if a.crash_after_stores:
        real_write = writer.write_columns  # what the collector stores its batch in hand with

        def write(kind: str, cols: dict[str, Any]) -> int:
            nonlocal stores, stored_events
            n = real_write(kind, cols)
            stores += 1
            stored_events += n
            if stores >= a.crash_after_stores:
                print(f"crashing after store #{stores} ({stored_events} events), before the commit", flush=True)
                os.kill(os.getpid(), signal.SIGKILL)
            return n

        writer.write_columns = write  # type: ignore[method-assign]
    c = KafkaCollector(writer, bootstrap_servers=a.kafka, group_id=a.group, topic_prefix=a.prefix,
                       batch_max_events=a.batch_events, batch_max_s=0.5)
    print("ready", flush=True)
    last = time.monotonic()
    before = 0
    while True:
        c.poll_once()
        if not c.assignment():  # the dead members of the group must time out before we get partitions
            last = time.monotonic()
        if c.stats.consumed_messages != before:
            before, last = c.stats.consumed_messages, time.monotonic()
        if a.idle_exit_s and time.monotonic() - last > a.idle_exit_s:
            c.flush()
            if _caught_up(c, a.prefix):
                break
            last = time.monotonic()  # partitions still held by a dead member: wait for the rebalance
    c.close()
    print(json.dumps({"stored": c.stats.stored_events}), flush=True)


if __name__ == "__main__":
    main()
    # leave without chDB's C++ global shutdown, which can crash at interpreter exit under load (as the
    # driftline command does, driftline.cli.run): the output is flushed, the store closed by then
    os._exit(0)
