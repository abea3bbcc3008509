"""A dedicated real Kafka broker for tests that stop and restart it (scripts/kafka.sh on its own port).

The shared broker of the suite (127.0.0.1:9092, started by scripts/test.sh) is never stopped by a
test; fault tests take one of these instead.
"""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "kafka.sh"


def _free_port_pair() -> int:
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port < 65000:
            with socket.socket() as s2:
                try:
                    s2.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
            return port
    raise RuntimeError("no free port pair for a dedicated Kafka broker")


class DedicatedBroker:
    """``start()``, ``stop()`` (clean, SIGTERM) and ``start()`` again keeps its data (same log dirs)."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or _free_port_pair()
        self.bootstrap = f"127.0.0.1:{self.port}"
        home = os.environ.get("KAFKA_HOME", str(ROOT / ".cache" / "kafka"))
        self.env = {**os.environ, "KAFKA_PORT": str(self.port), "KAFKA_HOME": home}
        self._formatted = False

    def _run(self, *args: str) -> None:
        out = subprocess.run(["bash", str(SCRIPT), *args], env=self.env, capture_output=True, text=True, timeout=180)
        if out.returncode != 0:
            raise RuntimeError(f"scripts/kafka.sh {' '.join(args)} failed: {out.stderr[-2000:]}{out.stdout[-1000:]}")

    def start(self) -> None:
        """First start formats fresh storage; later starts resume the same data."""
        if self._formatted:
            self.env["KAFKA_KEEP_DATA"] = "1"
        self._run("start")
        self._formatted = True

    def stop(self) -> None:
        self._run("stop")

    def is_up(self) -> bool:
        return subprocess.run(["bash", str(SCRIPT), "status"], env=self.env, capture_output=True,
                              timeout=60).returncode == 0


def produce_predictions(bootstrap: str, prefix: str, events: list[dict[str, Any]], per_msg: int = 100, *,
                        kind: str = "prediction") -> None:
    """Send events of ``kind`` (predictions by default) to ``<prefix>.<kind>``, ``per_msg`` a message keyed by its
    first model, and wait for every acknowledgement."""
    from serving_shim.transport import KafkaTransport

    t = KafkaTransport(bootstrap, topic_prefix=prefix)
    try:
        for i in range(0, len(events), per_msg):
            chunk = events[i:i + per_msg]
            t.send(kind, chunk, key=chunk[0]["model"]).get(timeout=30)
    finally:
        t.close()


def group_offsets(bootstrap: str, group: str, topic: str) -> tuple[dict[int, int], dict[int, int]]:
    """(committed offset, log end) per partition of ``topic``, as ``kafka-consumer-groups --describe`` reads them."""
    from kafka import KafkaConsumer, TopicPartition
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    c = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        committed = {tp.partition: o.offset for tp, o in admin.list_group_offsets(group).get(group, {}).items()
                     if tp.topic == topic}
        parts = c.partitions_for_topic(topic) or set()
        ends = {tp.partition: o for tp, o in c.end_offsets([TopicPartition(topic, p) for p in parts]).items()}
        return committed, ends
    finally:
        c.close()
        admin.close()


def partition_owners(bootstrap: str, group: str) -> dict[str, set[tuple[str, int]]]:
    """Who holds which partitions now: static member id (or member id) to its (topic, partition) pairs."""
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        g = admin.describe_groups([group]).get(group, {})
    finally:
        admin.close()
    out: dict[str, set[tuple[str, int]]] = {}
    for m in g.get("members", []):
        assignment = m.get("member_assignment") or {}
        held = {(t["topic"], p) for t in assignment.get("assigned_partitions", []) for p in t["partitions"]}
        out[m.get("group_instance_id") or m["member_id"]] = held
    return out
