"""No loss, no duplicates under faults: kill -9, broker restart, store outage, two collectors."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

import pytest
from kafka.admin import KafkaAdminClient

from collector.consumer import KafkaCollector
from collector.exceptions import StoreRejected, StoreUnavailable
from collector.store import ChdbStore
from collector.writer import EventWriter
from tests import factories as f
from tests.brokers import DedicatedBroker, produce_predictions
from tests.sizes import size

pytestmark = [
    pytest.mark.kafka,
    # kafka-python 3.0 leaves the socket of a refused connect attempt to the garbage collector while the
    # broker is down; that is the client's leak, not ours, and it must not turn a fault test red.
    pytest.mark.filterwarnings("ignore:Exception ignored in. <socket.socket:pytest.PytestUnraisableExceptionWarning"),
]


@pytest.fixture(autouse=True)
def _collect_leaked_sockets() -> Any:
    """Collect those sockets here, under the filter above, instead of in whichever test runs next."""
    yield
    import gc
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="unclosed <socket.socket", category=ResourceWarning)
        gc.collect()


def _proc(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "tests.integration.collector_proc", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _communicate(p: subprocess.Popen[str], timeout: float) -> tuple[str, str]:
    """Wait for a collector process; one that overruns is killed (never left running) and the test fails."""
    try:
        return p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        pytest.fail(f"collector process still running after {timeout}s\n{out[-1000:]}\n{err[-2000:]}")


def _count(store: Any) -> int:
    return int(store.scalar("SELECT count() FROM {db}.predictions FINAL"))


def test_kill_9_mid_batch_then_restart_stores_exactly_the_sent_set(kafka_bootstrap: str, topic_prefix: str) -> None:
    events = [f.prediction(i, model=f"m{i % 4}") for i in range(12_000)]
    produce_predictions(kafka_bootstrap, topic_prefix, events)
    path = tempfile.mkdtemp(prefix="driftline-kill9-")
    common = ["--path", path, "--kafka", kafka_bootstrap, "--prefix", topic_prefix, "--group", f"{topic_prefix}-g"]
    crashed = _proc("run", *common, "--crash-after-stores", "3")
    out, err = _communicate(crashed, 120)
    assert crashed.returncode == -9, err[-2000:]
    m = re.search(r"crashing after store #3 \((\d+) events\)", out)
    assert m, out
    committed_events = 100 * sum(_committed(kafka_bootstrap, f"{topic_prefix}-g").values())
    # stored but not committed: these events will be delivered again after the restart
    assert int(m.group(1)) > committed_events
    # a second crash at an arbitrary moment: SIGKILL from outside while it consumes
    p = _proc("run", *common, "--batch-events", "500")
    assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    time.sleep(1.5)
    p.kill()
    p.communicate(timeout=30)
    # restart, run until idle
    final = _proc("run", *common, "--idle-exit-s", "4")
    out, err = _communicate(final, 180)
    assert final.returncode == 0, err[-2000:]
    dump = _proc("dump", "--path", path)
    out, err = _communicate(dump, 60)
    assert dump.returncode == 0, err[-2000:]
    got = json.loads(out.strip().splitlines()[-1])
    assert len(got["ids"]) == len(set(got["ids"])), "a duplicate shows in query results"
    assert set(got["ids"]) == {e["event_id"] for e in events}


def test_broker_restart_during_a_run_loses_nothing(store: ChdbStore, dedicated_broker: DedicatedBroker,
                                                   topic_prefix: str) -> None:
    broker = dedicated_broker
    prefix = topic_prefix
    events = [f.prediction(i, model=f"m{i % 3}") for i in range(6000)]
    collector = KafkaCollector(EventWriter(store), bootstrap_servers=broker.bootstrap, group_id=f"{prefix}-g",
                               topic_prefix=prefix, batch_max_s=0.3)
    stop = threading.Event()
    th = threading.Thread(target=lambda: [collector.poll_once() for _ in iter(stop.is_set, True)], daemon=True)
    try:
        produce_predictions(broker.bootstrap, prefix, events[:3000])
        th.start()
        broker.stop()
        time.sleep(2)
        broker.start()
        # the producer retries until every batch is acknowledged by the restarted broker
        deadline = time.monotonic() + 90
        while True:
            try:
                produce_predictions(broker.bootstrap, prefix, events[3000:])
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)
        deadline = time.monotonic() + 180
        while _count(store) < len(events) and time.monotonic() < deadline and th.is_alive():
            time.sleep(0.5)
        time.sleep(1.5)
        assert th.is_alive(), "the collector loop died"
        ids = [r["event_id"] for r in store.rows("SELECT event_id FROM {db}.predictions FINAL")]
        assert len(ids) == len(set(ids)) and set(ids) == {e["event_id"] for e in events}
    finally:
        stop.set()
        th.join(timeout=30)
        collector.close()


class _OutageStore:
    """The real chDB store behind a switch: while ``down`` every write raises StoreUnavailable.

    chDB runs in-process and cannot be taken away like a server; this is the one place where the
    outage itself is simulated, the store and the broker stay real.
    """

    def __init__(self, store: Any) -> None:
        self._store = store
        self.down = False
        self.refused = 0

    def insert(self, *a: Any, **kw: Any) -> int:
        if self.down:
            self.refused += 1
            raise StoreUnavailable("store switched off by the test")
        return int(self._store.insert(*a, **kw))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def _committed(bootstrap: str, group: str) -> dict[Any, int]:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        return {tp: o.offset for tp, o in admin.list_group_offsets(group).get(group, {}).items()}
    finally:
        admin.close()


# longer than the group's session timeout (6 s): the collector's heartbeats keep its partitions while its poll
# loop retries the store; 30 s in the full run (scripts/test.sh --slow)
OUTAGE_S = size(ci=12, full=30)


def test_store_unavailable_for_a_while_commits_nothing_and_loses_nothing(store: ChdbStore, kafka_bootstrap: str,
                                                                         topic_prefix: str) -> None:
    flaky = _OutageStore(store)
    group = f"{topic_prefix}-g"
    collector = KafkaCollector(EventWriter(flaky), bootstrap_servers=kafka_bootstrap, group_id=group,  # type: ignore[arg-type]
                               topic_prefix=topic_prefix, batch_max_s=0.3, retry_initial_s=0.2, retry_max_s=2.0)
    first = [f.prediction(i) for i in range(2000)]
    second = [f.prediction(i) for i in range(2000, 5000)]
    stop = threading.Event()
    th = threading.Thread(target=lambda: [collector.poll_once() for _ in iter(stop.is_set, True)], daemon=True)
    try:
        produce_predictions(kafka_bootstrap, topic_prefix, first)
        th.start()
        deadline = time.monotonic() + 60
        while _count(store) < len(first) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _count(store) == len(first)
        time.sleep(1)
        before = _committed(kafka_bootstrap, group)
        flaky.down = True
        produce_predictions(kafka_bootstrap, topic_prefix, second)
        t_down = time.monotonic()
        while time.monotonic() - t_down < OUTAGE_S:
            time.sleep(2)
            assert _committed(kafka_bootstrap, group) == before, "an offset was committed while the store was down"
        assert flaky.refused >= 5, "the collector should keep retrying during the outage"
        assert _count(store) == len(first)
        flaky.down = False
        deadline = time.monotonic() + 60
        while _count(store) < len(first) + len(second) and time.monotonic() < deadline:
            time.sleep(0.2)
        ids = [r["event_id"] for r in store.rows("SELECT event_id FROM {db}.predictions FINAL")]
        assert len(ids) == len(set(ids)) and set(ids) == {e["event_id"] for e in first + second}
        assert collector.metrics.store_errors._value.get() >= 5
    finally:
        stop.set()
        th.join(timeout=30)
        collector.close()


def test_two_collectors_split_partitions_and_store_every_event_once(store: ChdbStore, kafka_bootstrap: str,
                                                                    topic_prefix: str) -> None:
    group = f"{topic_prefix}-g"
    events = [f.prediction(i, model=f"model-{i % 16}") for i in range(8000)]
    produce_predictions(kafka_bootstrap, topic_prefix, events[:100])  # creates the topic (4 partitions)
    a = KafkaCollector(EventWriter(store), bootstrap_servers=kafka_bootstrap, group_id=group, topic_prefix=topic_prefix,
                       kinds=["prediction"], batch_max_s=0.3)
    b = KafkaCollector(EventWriter(store), bootstrap_servers=kafka_bootstrap, group_id=group, topic_prefix=topic_prefix,
                       kinds=["prediction"], batch_max_s=0.3)
    stop = threading.Event()
    threads = [threading.Thread(target=lambda c=c: [c.poll_once() for _ in iter(stop.is_set, True)], daemon=True)
               for c in (a, b)]
    try:
        for t in threads:
            t.start()
        deadline = time.monotonic() + 60
        while (not a.assignment() or not b.assignment()) and time.monotonic() < deadline:
            time.sleep(0.2)
        produce_predictions(kafka_bootstrap, topic_prefix, events[100:])
        deadline = time.monotonic() + 90
        while _count(store) < len(events) and time.monotonic() < deadline:
            time.sleep(0.3)
        time.sleep(1)
        pa, pb = a.assignment(), b.assignment()
        assert pa and pb and not (pa & pb), f"partitions not split: {pa} / {pb}"
        assert len(pa | pb) == 4
        assert a.stats.stored_events > 0 and b.stats.stored_events > 0
        ids = [r["event_id"] for r in store.rows("SELECT event_id FROM {db}.predictions FINAL")]
        assert len(ids) == len(set(ids)) and set(ids) == {e["event_id"] for e in events}
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
        a.close()
        b.close()


def test_sigterm_finishes_the_batch_in_hand(kafka_bootstrap: str, topic_prefix: str) -> None:
    events = [f.prediction(i) for i in range(3000)]
    produce_predictions(kafka_bootstrap, topic_prefix, events)
    path = tempfile.mkdtemp(prefix="driftline-sigterm-")
    # a long batch window: when SIGTERM arrives the events are in hand, not yet stored
    p = subprocess.Popen([sys.executable, "-m", "driftline", "collect", "--store", path, "--kafka", kafka_bootstrap,
                          "--topic-prefix", topic_prefix, "--group", f"{topic_prefix}-g", "--batch-seconds", "60",
                          "--batch-events", "1000000"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.stdout is not None
    while "consuming" not in (line := p.stdout.readline()):  # the worker is up (signal handlers installed)
        assert line, p.stderr.read()[-2000:] if p.stderr else "collector exited"
    time.sleep(6)  # time to join the group and take the 30 messages in hand (the batch window is 60 s)
    p.terminate()
    out, err = _communicate(p, 60)
    assert p.returncode == 0, err[-2000:]
    assert "stopped after 3000 events stored" in out, out + err[-2000:]
    d = _proc("dump", "--path", path)
    dout, derr = _communicate(d, 60)
    assert set(json.loads(dout.strip().splitlines()[-1])["ids"]) == {e["event_id"] for e in events}, derr[-1000:]


class _RefusingStore(_OutageStore):
    """The real store, except that it rejects (StoreRejected: the rows, not an outage) every write of predictions."""

    def insert(self, table: Any, *a: Any, **kw: Any) -> int:
        if getattr(table, "name", table) == "predictions":
            self.refused += 1
            raise StoreRejected("Code: 27. DB::Exception: Cannot parse input (simulated refusal)")
        return int(self._store.insert(table, *a, **kw))


def test_events_the_store_keeps_rejecting_become_dead_letters_and_the_partitions_move_on(store: ChdbStore,
                                                                                         kafka_bootstrap: str,
                                                                                         topic_prefix: str) -> None:
    refusing = _RefusingStore(store)
    collector = KafkaCollector(EventWriter(refusing), bootstrap_servers=kafka_bootstrap, group_id=f"{topic_prefix}-g",  # type: ignore[arg-type]
                               topic_prefix=topic_prefix, batch_max_s=0.3, retry_initial_s=0.01, retry_max_s=0.02)
    events = [f.prediction(i) for i in range(300)]
    try:
        produce_predictions(kafka_bootstrap, topic_prefix, events)
        deadline = time.monotonic() + 60
        while collector.stats.dead_letters < len(events) and time.monotonic() < deadline:
            collector.poll_once()
        rows = store.rows("SELECT event_id, reason, payload FROM {db}.dead_letters WHERE field = '(store)'")
        assert all("the store refused the event: Code: 27" in r["reason"] for r in rows)
        assert {r["event_id"] for r in rows} == {e["event_id"] for e in events}   # nothing lost: one letter per event
        assert all(r["event_id"] in r["payload"] for r in rows)                     # with its message's bytes
        assert sum(_committed(kafka_bootstrap, f"{topic_prefix}-g").values()) == 3  # and the partitions moved on
    finally:
        collector.close()
