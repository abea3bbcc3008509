"""Fault injection against real ``driftline collect`` processes on a private Kafka broker.

Scenarios (each on its own topics and group, the broker of tests/brokers.py, never the shared one):
  kill9       kill -9 at random moments, one of them right after an insert and before its commit, while
              a producer streams; the collector is restarted at once (same static member id)
  broker      the broker is stopped and started again under load
  poison      a tombstone, an empty message, not JSON, invalid UTF-8, bad gzip, 900 KB of noise, among good
              messages; a collector that dies on one is restarted (as a supervisor would) and counted
  two         two collectors, one killed with kill -9 (each has its own chDB store: one process per chDB
              path; a shared server store would hold a redelivered event once, under FINAL)
Each prints: events produced, stored distinct, lost, duplicates in FINAL, partitions left behind
(committed offset < log end at the end), restarts, and its recovery times.

    python -m bench.faults [--events 30000] [--only kill9,broker,poison,two] [--seed 1]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests import factories as f  # noqa: E402
from tests.brokers import DedicatedBroker, group_offsets, partition_owners  # noqa: E402

PER_MSG = 100


class Producer:
    """Streams prediction batches (PER_MSG events each, keyed over 16 models) until stopped; a batch is
    re-sent until the broker acknowledges it, so ``ids`` is exactly what the topic holds."""

    def __init__(self, bootstrap: str, prefix: str, total: int, rate: float) -> None:
        from serving_shim.transport import KafkaTransport

        self.t = KafkaTransport(bootstrap, topic_prefix=prefix, max_block_ms=2000, request_timeout_ms=5000)
        self.total, self.rate = total, rate
        self.ids: list[str] = []
        self.done = threading.Event()
        self._th = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Producer:
        self._th.start()
        return self

    def _run(self) -> None:
        i = 0
        while i < self.total:
            chunk = [f.prediction(i + j, model=f"model-{(i // PER_MSG) % 16}") for j in range(PER_MSG)]
            while True:
                try:
                    self.t.send("prediction", chunk).get(timeout=10)
                    break
                except Exception:  # noqa: BLE001 - broker away: the same batch again (same event ids)
                    time.sleep(0.5)
            self.ids.extend(e["event_id"] for e in chunk)
            i += PER_MSG
            time.sleep(PER_MSG / self.rate)
        self.done.set()

    def join(self) -> None:
        self._th.join()
        self.t.close()


def group_state(bootstrap: str, group: str, topic: str, tries: int = 30) -> tuple[dict[int, int], dict[int, int]]:
    """(committed, log end) per partition; retried while the broker or the group coordinator is not ready."""
    for _ in range(tries - 1):
        try:
            return group_offsets(bootstrap, group, topic)
        except Exception:  # noqa: BLE001
            time.sleep(1)
    return group_offsets(bootstrap, group, topic)


def wait_committed(bootstrap: str, group: str, topic: str, target: dict[int, int] | None, timeout_s: float) -> float:
    """Seconds until the committed offsets reach ``target`` (default: the log end at each check)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        try:
            committed, ends = group_offsets(bootstrap, group, topic)
        except Exception:  # noqa: BLE001 - broker restarting
            time.sleep(0.5)
            continue
        goal = target if target is not None else ends
        if goal and all(committed.get(p, 0) >= o for p, o in goal.items()):
            return time.monotonic() - t0
        time.sleep(0.2)
    return float("inf")


class Collector:
    """A ``driftline collect`` process (or tests.integration.collector_proc for a crash between insert and commit)."""

    def __init__(self, path: str, bootstrap: str, prefix: str, instance: str, crash_after_stores: int = 0) -> None:
        if crash_after_stores:
            cmd = [sys.executable, "-m", "tests.integration.collector_proc", "run", "--path", path,
                   "--kafka", bootstrap, "--prefix", prefix, "--group", f"{prefix}-g",
                   "--crash-after-stores", str(crash_after_stores), "--batch-events", "2000"]
        else:
            cmd = [sys.executable, "-m", "driftline", "collect", "--store", path, "--kafka", bootstrap,
                   "--topic-prefix", prefix, "--group", f"{prefix}-g", "--batch-seconds", "0.5",
                   "--instance-id", instance]
        self.log = tempfile.NamedTemporaryFile(prefix="driftline-faults-", suffix=".log", delete=False)  # noqa: SIM115
        self.p = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)

    def kill9(self) -> None:
        self.p.kill()
        self.p.wait(timeout=30)

    def term(self) -> int:
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        return int(self.p.returncode)

    def alive(self) -> bool:
        return self.p.poll() is None


def dump(path: str) -> dict[str, Any]:
    code = ("import json,sys\nfrom collector.store import ChdbStore\ns=ChdbStore(sys.argv[1], database='driftline')\n"
            "ids=[r['event_id'] for r in s.rows('SELECT event_id FROM {db}.predictions FINAL')]\n"
            "dl=int(s.scalar('SELECT count() FROM {db}.dead_letters'))\nprint(json.dumps({'ids': ids, 'dead': dl}))")
    out = subprocess.run([sys.executable, "-c", code, path], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": os.getcwd()})
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def verdict(name: str, produced: list[str], paths: list[str], bootstrap: str, prefix: str, **figures: Any) -> bool:
    dumps = [dump(p) for p in paths]
    stored = [i for d in dumps for i in d["ids"]]
    dups = sum(len(d["ids"]) - len(set(d["ids"])) for d in dumps)
    distinct = set(stored)
    committed, ends = group_state(bootstrap, f"{prefix}-g", f"{prefix}.prediction")
    behind = sum(1 for p, e in ends.items() if committed.get(p, 0) < e)
    lost = len(set(produced) - distinct)
    extra = len(distinct - set(produced))
    ok = lost == 0 and dups == 0 and behind == 0 and extra == 0
    figs = " ".join(f"{k}={v:.1f}s" if isinstance(v, float) else f"{k}={v}" for k, v in figures.items())
    print(f"{name:<7} {'PASS' if ok else 'FAIL'}  produced={len(produced)} stored_distinct={len(distinct)} lost={lost} "
          f"unknown={extra} duplicates_in_FINAL={dups} partitions_left_behind={behind} "
          f"dead_letters={sum(d['dead'] for d in dumps)} {figs}", flush=True)
    return ok


def wait_consuming(bootstrap: str, group: str, topic: str, timeout_s: float = 120) -> None:
    """Until the group has committed something on every partition with messages (its collectors are in)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        committed, ends = group_state(bootstrap, group, topic)
        if ends and all(committed.get(p, 0) > 0 for p, e in ends.items() if e > 0) and any(ends.values()):
            return
        time.sleep(0.3)
    raise RuntimeError(f"group {group} consumed nothing in {timeout_s}s")


def wait_members(bootstrap: str, group: str, n: int, timeout_s: float = 120) -> None:
    from kafka.admin import KafkaAdminClient

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap)
        try:
            g = admin.describe_groups([group]).get(group, {})
        finally:
            admin.close()
        if g.get("group_state") == "Stable" and len(g.get("members", [])) == n:
            return
        time.sleep(0.5)
    raise RuntimeError(f"group {group} did not reach {n} members in {timeout_s}s")


def _final(bootstrap: str, prefix: str, c: Collector, timeout_s: float = 120) -> float:
    took = wait_committed(bootstrap, f"{prefix}-g", f"{prefix}.prediction", None, timeout_s)
    c.term()
    return took


def scenario_kill9(broker: DedicatedBroker, events: int, rng: random.Random) -> bool:
    prefix, path = f"fk{uuid.uuid4().hex[:8]}", tempfile.mkdtemp(prefix="driftline-faults-")
    boot, group, topic = broker.bootstrap, f"{prefix}-g", f"{prefix}.prediction"
    prod = Producer(boot, prefix, events, rate=events / 30).start()
    recoveries: list[float] = []
    for round_ in range(3):
        if round_ == 1:   # SIGKILL from inside, right after an insert and before its commit
            c = Collector(path, boot, prefix, "k", crash_after_stores=2)
            c.p.wait(timeout=120)
        else:
            c = Collector(path, boot, prefix, "k")
            wait_consuming(boot, group, topic)
            time.sleep(rng.uniform(0.5, 4.0))
            c.kill9()
        _, at_kill = group_state(boot, group, topic)
        t0 = time.monotonic()
        c = Collector(path, boot, prefix, "k")
        recoveries.append(time.monotonic() - t0 + wait_committed(boot, group, topic, at_kill, 120))
        c.term()
    c = Collector(path, boot, prefix, "k")
    prod.join()
    _final(boot, prefix, c)
    return verdict("kill9", prod.ids, [path], boot, prefix,
                   **{f"recover_after_kill{i + 1}": r for i, r in enumerate(recoveries)})


def scenario_broker(broker: DedicatedBroker, events: int, rng: random.Random) -> bool:
    prefix, path = f"fb{uuid.uuid4().hex[:8]}", tempfile.mkdtemp(prefix="driftline-faults-")
    boot, group, topic = broker.bootstrap, f"{prefix}-g", f"{prefix}.prediction"
    prod = Producer(boot, prefix, events, rate=events / 30).start()
    c = Collector(path, boot, prefix, "b")
    wait_consuming(boot, group, topic)
    time.sleep(rng.uniform(1.0, 4.0))
    t_stop = time.monotonic()
    broker.stop()
    time.sleep(3)
    broker.start()
    down = time.monotonic() - t_stop
    # recovered: messages produced after the broker came back are consumed and committed
    _, at_up = group_state(boot, group, topic)
    t_up = time.monotonic()
    while sum(o for o in group_state(boot, group, topic)[1].values()) <= sum(at_up.values()):
        time.sleep(0.1)   # the producer's first batch after the restart
    produced_again = time.monotonic() - t_up   # the producer's own reconnect, not the collector's
    _, after_up = group_state(boot, group, topic)
    recover = wait_committed(boot, group, topic, after_up, 180)
    prod.join()
    _final(boot, prefix, c)
    return verdict("broker", prod.ids, [path], boot, prefix, broker_down=down, producer_back_after=produced_again,
                   collector_recover_after_first_new_message=recover,
                   collector_alive=c.alive() or c.p.returncode == 0)


def scenario_poison(broker: DedicatedBroker, events: int, rng: random.Random) -> bool:
    import gzip

    from serving_shim.transport import KafkaTransport

    prefix, path = f"fp{uuid.uuid4().hex[:8]}", tempfile.mkdtemp(prefix="driftline-faults-")
    boot, group, topic = broker.bootstrap, f"{prefix}-g", f"{prefix}.prediction"
    poison = [None, b"", b"not json at all", b'\xff\xfe{"events": [\xc3\x28]}', b"\x1f\x8b\x08\x00garbage",
              gzip.compress(b"{not json"), os.urandom(900_000)]
    t = KafkaTransport(boot, topic_prefix=prefix)
    prod = Producer(boot, prefix, events, rate=events / 20).start()
    for value in poison:
        time.sleep(rng.uniform(0.2, 1.0))
        for key in (b"model-0", b"model-5", b"model-10", b"model-15"):
            t.send_raw("prediction", value, key=key).get(timeout=30)
    t.close()
    restarts = 0
    c = Collector(path, boot, prefix, "p")
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if not c.alive():   # a supervisor (docker's restart policy) would start it again
            restarts += 1
            c = Collector(path, boot, prefix, "p")
        if prod.done.is_set() and wait_committed(boot, group, topic, None, 1) < 1:
            break
        time.sleep(1)
    prod.join()
    _final(boot, prefix, c, 10)
    return verdict("poison", prod.ids, [path], boot, prefix, poison_messages=4 * len(poison),
                   collector_restarts=restarts)


def scenario_two(broker: DedicatedBroker, events: int, rng: random.Random) -> bool:
    prefix = f"ft{uuid.uuid4().hex[:8]}"
    paths = [tempfile.mkdtemp(prefix="driftline-faults-") for _ in range(2)]
    boot, group, topic = broker.bootstrap, f"{prefix}-g", f"{prefix}.prediction"
    prod = Producer(boot, prefix, events, rate=events / 30).start()
    a = Collector(paths[0], boot, prefix, "a")
    b = Collector(paths[1], boot, prefix, "b")
    wait_members(boot, group, 2)
    wait_consuming(boot, group, topic)
    time.sleep(rng.uniform(1.0, 4.0))
    # kill the member holding prediction partitions (the sticky assignor balances the count over all topics)
    owners = partition_owners(boot, group)
    while sum(t == topic for m in owners.values() for t, _ in m) < len(group_state(boot, group, topic)[1]):
        time.sleep(0.3)   # a rebalance in between: wait for the stable assignment
        owners = partition_owners(boot, group)
    victim_id = max(owners, key=lambda m: sum(t == topic for t, _ in owners[m]))
    victim, survivor = (a, b) if victim_id == "a" else (b, a)
    held = sorted(p for t, p in owners[victim_id] if t == topic)
    victim.kill9()
    _, at_kill = group_state(boot, group, topic)
    takeover = wait_committed(boot, group, topic, at_kill, 120)
    prod.join()
    _final(boot, prefix, survivor)
    ids = [set(dump(p)["ids"]) for p in paths]
    return verdict("two", prod.ids, paths, boot, prefix, killed_held=",".join(map(str, held)),
                   takeover_after_kill=takeover, stored_by_both=len(ids[0] & ids[1]))


SCENARIOS = {"kill9": scenario_kill9, "broker": scenario_broker, "poison": scenario_poison, "two": scenario_two}


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--events", type=int, default=30_000, help="events produced per scenario")
    p.add_argument("--only", default=",".join(SCENARIOS))
    p.add_argument("--seed", type=int, default=None)
    a = p.parse_args()
    seed = a.seed if a.seed is not None else random.randrange(1 << 30)
    print(f"fault suite: seed {seed}, {a.events} events per scenario", flush=True)
    broker = DedicatedBroker()
    broker.start()
    ok = True
    try:
        for name in a.only.split(","):
            ok = SCENARIOS[name.strip()](broker, a.events, random.Random(seed)) and ok
    finally:
        broker.stop()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
