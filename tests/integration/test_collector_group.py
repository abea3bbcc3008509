"""The collector in its consumer group: takeover after kill -9, quiet start, commit retries, honest lag,
and what a collector on a server store loads."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

import pytest
from kafka.admin import KafkaAdminClient
from kafka.structs import OffsetAndMetadata

from collector.consumer import KafkaCollector
from collector.store import ChdbStore
from collector.writer import EventWriter
from tests import factories as f
from tests.brokers import DedicatedBroker, group_offsets, partition_owners, produce_predictions
from tests.processes import stop

pytestmark = [
    pytest.mark.kafka,
    pytest.mark.filterwarnings("ignore:Exception ignored in. <socket.socket:pytest.PytestUnraisableExceptionWarning"),
]


@pytest.fixture(autouse=True)
def _collect_leaked_sockets() -> Any:
    """kafka-python leaves the sockets of refused connects (broker down) to the garbage collector:
    collect them here, under the filter above, instead of in whichever test runs next."""
    yield
    import gc
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="unclosed <socket.socket", category=ResourceWarning)
        gc.collect()


def _collect_proc(path: str, bootstrap: str, prefix: str, instance_id: str) -> subprocess.Popen[str]:
    p = subprocess.Popen([sys.executable, "-m", "driftline", "collect", "--store", path, "--kafka", bootstrap,
                          "--topic-prefix", prefix, "--group", f"{prefix}-g", "--batch-seconds", "0.3",
                          "--instance-id", instance_id], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.stdout is not None
    while "consuming" not in (line := p.stdout.readline()):
        assert line, p.stderr.read()[-3000:] if p.stderr else "collector exited"
    return p


def _caught_up_after(bootstrap: str, group: str, topic: str, t0: float, timeout_s: float) -> float:
    """Seconds from ``t0`` until the group's committed offsets reach the log end on every partition."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        committed, ends = group_offsets(bootstrap, group, topic)
        if ends and all(committed.get(p, 0) >= e for p, e in ends.items()):
            return time.monotonic() - t0
        time.sleep(0.2)
    committed, ends = group_offsets(bootstrap, group, topic)
    pytest.fail(f"not caught up {timeout_s}s after the kill: committed {committed}, log end {ends}")


def _dump(path: str) -> list[str]:
    out = subprocess.run([sys.executable, "-m", "tests.integration.collector_proc", "dump", "--path", path],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    ids: list[str] = json.loads(out.stdout.strip().splitlines()[-1])["ids"]
    assert len(ids) == len(set(ids)), "a duplicate shows in FINAL"
    return ids


def _stop(p: subprocess.Popen[str]) -> None:
    stop(p, timeout=60)


def test_kill_9_of_one_of_two_collectors_moves_its_partitions_within_10s(kafka_bootstrap: str,
                                                                         topic_prefix: str) -> None:
    topic, group = f"{topic_prefix}.prediction", f"{topic_prefix}-g"
    first = [f.prediction(i, model=f"model-{i % 16}") for i in range(2000)]
    later = [f.prediction(i, model=f"model-{i % 16}") for i in range(2000, 4000)]
    paths = [tempfile.mkdtemp(prefix="driftline-takeover-") for _ in range(2)]
    a = _collect_proc(paths[0], kafka_bootstrap, topic_prefix, "a")
    b = _collect_proc(paths[1], kafka_bootstrap, topic_prefix, "b")
    try:
        produce_predictions(kafka_bootstrap, topic_prefix, first)
        _caught_up_after(kafka_bootstrap, group, topic, time.monotonic(), 90)
        # kill the member that holds prediction partitions (the sticky assignor balances the count over
        # all four topics, so one member may hold none of them)
        deadline = time.monotonic() + 30
        while True:   # a stable assignment, every prediction partition held (not a rebalance in between)
            owners = partition_owners(kafka_bootstrap, group)
            held_all = {p for m in owners.values() for t, p in m if t == topic}
            if set(owners) == {"a", "b"} and held_all == set(group_offsets(kafka_bootstrap, group, topic)[1]):
                break
            assert time.monotonic() < deadline, owners
            time.sleep(0.3)
        victim_id = max(owners, key=lambda m: sum(t == topic for t, _ in owners[m]))
        victim, survivor = (a, b) if victim_id == "a" else (b, a)
        held = sorted(p for t, p in owners[victim_id] if t == topic)
        victim.kill()
        victim.communicate(timeout=30)
        t0 = time.monotonic()
        produce_predictions(kafka_bootstrap, topic_prefix, later)   # on every partition, the dead member's included
        took = _caught_up_after(kafka_bootstrap, group, topic, t0, 60)
        print(f"\nkill -9 of one of two collectors (it held prediction partitions {held}): every partition "
              f"consumed and committed {took:.1f}s after the kill")
        assert held, "the killed member held no prediction partition: nothing to take over"
        # kafka-python's defaults (45 s session, eager rebalance) took about 45 s here
        assert took < 10.0, f"the survivor took over after {took:.1f}s"
        now = partition_owners(kafka_bootstrap, group)
        assert set(now) == {"b" if victim_id == "a" else "a"}, now   # the survivor alone, holding everything
        survivor_holds = {p for t, p in next(iter(now.values())) if t == topic}
        assert survivor_holds == set(group_offsets(kafka_bootstrap, group, topic)[1])
    finally:
        _stop(survivor)
        if victim.poll() is None:
            victim.kill()
    ids = set(_dump(paths[0])) | set(_dump(paths[1]))
    assert ids == {e["event_id"] for e in first + later}


def test_kill_9_of_the_only_collector_then_a_restart_resumes_at_once(kafka_bootstrap: str, topic_prefix: str) -> None:
    topic, group = f"{topic_prefix}.prediction", f"{topic_prefix}-g"
    events = [f.prediction(i, model=f"model-{i % 16}") for i in range(3000)]
    path = tempfile.mkdtemp(prefix="driftline-restart-")
    p = _collect_proc(path, kafka_bootstrap, topic_prefix, "only")
    try:
        produce_predictions(kafka_bootstrap, topic_prefix, events[:1000])
        _caught_up_after(kafka_bootstrap, group, topic, time.monotonic(), 90)
        p.kill()
        p.communicate(timeout=30)
        t0 = time.monotonic()
        produce_predictions(kafka_bootstrap, topic_prefix, events[1000:])
        p = _collect_proc(path, kafka_bootstrap, topic_prefix, "only")   # the same static member
        started = time.monotonic() - t0
        took = _caught_up_after(kafka_bootstrap, group, topic, t0, 60)
        print(f"\nkill -9 and restart of the only collector: caught up {took:.1f}s after the kill "
              f"(the new process was consuming {started:.1f}s after it)")
        assert took < 10.0
    finally:
        _stop(p)
    assert set(_dump(path)) == {e["event_id"] for e in events}


def test_start_creates_the_topics_first_and_joins_once(store: ChdbStore, kafka_bootstrap: str, topic_prefix: str,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    events = [f.prediction(i, model=f"model-{i % 8}") for i in range(1000)]
    c = KafkaCollector(EventWriter(store), bootstrap_servers=kafka_bootstrap, group_id=f"{topic_prefix}-g",
                       topic_prefix=topic_prefix, batch_max_s=0.3)
    try:
        admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
        try:
            assert set(c.topics) <= set(admin.list_topics()), "the topics must exist before the subscription"
        finally:
            admin.close()
        produce_predictions(kafka_bootstrap, topic_prefix, events)
        deadline = time.monotonic() + 30
        while c.stats.stored_events < len(events) and time.monotonic() < deadline:
            c.poll_once()
        end = time.monotonic() + 3
        while time.monotonic() < end:
            c.poll_once()
        assert c._consumer._coordinator._generation.generation_id == 1, "a second rebalance after start"
        assert c.stats.consumed_messages == len(events) // 100, "messages were read twice"
        noisy = [r.getMessage() for r in caplog.records if "not found" in r.getMessage().lower()
                 or "UnknownTopic" in r.getMessage()]
        assert not noisy, noisy
    finally:
        c.close()


def test_lag_is_the_committed_offset_against_the_log_end_not_the_position(store: ChdbStore, kafka_bootstrap: str,
                                                                          topic_prefix: str) -> None:
    events = [f.prediction(i, model=f"model-{i % 8}") for i in range(2000)]
    produce_predictions(kafka_bootstrap, topic_prefix, events)
    c = KafkaCollector(EventWriter(store), bootstrap_servers=kafka_bootstrap, group_id=f"{topic_prefix}-g",
                       topic_prefix=topic_prefix, kinds=["prediction"], batch_max_s=0.3, lag_interval_s=0.0)
    try:
        deadline = time.monotonic() + 30
        while c.stats.stored_events < len(events) and time.monotonic() < deadline:
            c.poll_once()
        c.poll_once()
        assert c.lag() and all(n == 0 for n in c.lag().values())
        tp = max(c.assignment(), key=lambda t: c._consumer.position(t))
        behind = c._consumer.position(tp)
        # the group's committed offset goes back (as after a failed commit): the position stays at the end
        c._consumer.commit({tp: OffsetAndMetadata(0, "", -1)})
        assert c.lag()[tp] == behind
        c.poll_once()
        assert c.metrics.lag.labels(tp.topic, str(tp.partition))._value.get() == behind
    finally:
        c.close()


class _StopsTheBrokerAfterTheFirstStore:
    """The real store; right after its first insert the (dedicated) broker is stopped, so that batch's
    commit fails, and restarted a few seconds later by a thread."""

    def __init__(self, store: Any, broker: DedicatedBroker) -> None:
        self._store, self._broker = store, broker
        self.restarted = threading.Event()
        self.inserts = 0

    def _restart_broker(self) -> None:
        time.sleep(4)
        self._broker.start()
        self.restarted.set()

    def insert(self, *a: Any, **kw: Any) -> int:
        n = int(self._store.insert(*a, **kw))
        self.inserts += 1
        if self.inserts == 1:
            self._broker.stop()
            threading.Thread(target=self._restart_broker, daemon=True).start()
        return n

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def test_a_failed_commit_is_retried_until_the_partition_is_committed(store: ChdbStore,
                                                                     dedicated_broker: DedicatedBroker,
                                                                     topic_prefix: str) -> None:
    broker = dedicated_broker
    prefix, group = topic_prefix, f"{topic_prefix}-g"
    events = [f.prediction(i, model=f"m{(i // 100) % 4}") for i in range(1000)]   # 10 messages over the partitions
    flaky = _StopsTheBrokerAfterTheFirstStore(store, broker)
    try:
        produce_predictions(broker.bootstrap, prefix, events)
        c = KafkaCollector(EventWriter(flaky), bootstrap_servers=broker.bootstrap, group_id=group,  # type: ignore[arg-type]
                           topic_prefix=prefix, kinds=["prediction"], batch_max_s=0.5, batch_max_events=100_000,
                           retry_initial_s=0.2, retry_max_s=2.0)
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                c.poll_once()
                if flaky.restarted.is_set() and not c.uncommitted:
                    break
            assert flaky.inserts >= 1 and c.metrics.commit_failures._value.get() >= 1, "the commit never failed"
            assert not c.uncommitted, "stored offsets were never committed"
            committed, ends = group_offsets(broker.bootstrap, group, f"{prefix}.prediction")
            assert {p: committed.get(p, 0) for p in ends} == ends, "a partition was left behind"
            assert int(store.scalar("SELECT count() FROM {db}.predictions FINAL")) == len(events)
        finally:
            c.close()
    finally:  # the next test finds the broker up, and no restart still to come
        if flaky.inserts:
            flaky.restarted.wait(timeout=120)


def test_collect_on_a_server_store_loads_neither_chdb_nor_the_analytics_stack(clickhouse_server: tuple[str, int],
                                                                              kafka_bootstrap: str) -> None:
    host, port = clickhouse_server
    out = subprocess.run([sys.executable, "-m", "bench.collector_memory", "--child", f"clickhouse://{host}:{port}/driftline",
                          "--kafka", kafka_bootstrap, "--idle", "4", "--old-server-ok"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(next(line[7:] for line in out.stdout.splitlines() if line.startswith("RESULT ")))
    print(f"\nidle collector on a ClickHouse server store: {result}")
    loaded = set(result["modules"])
    assert "clickhouse_driver" in loaded and "kafka" in loaded   # it did run as a collector on that store
    assert not loaded & {"chdb", "pandas", "evidently", "scipy", "sklearn", "fastapi", "uvicorn", "streamlit"}, loaded
