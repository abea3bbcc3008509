"""How a collector takes part in its consumer group: membership settings, topics, committed-offset lag.

Takeover after a crash is bounded by the session timeout: the coordinator hands a dead member's
partitions on only when no heartbeat came for ``session_timeout_ms``. kafka-python's default (45 s)
stalled consumption for that long after every kill -9; :class:`GroupMembership` sets 6 s (the broker's
default ``group.min.session.timeout.ms``) with a heartbeat every second from kafka-python's background
thread, so a long store write or a GC pause does not count as a death. Static membership
(``group_instance_id``, KIP-345) lets a restarted collector take back its own partitions at once, with no
rebalance of the others; the cooperative-sticky assignor (KIP-429) lets the survivors keep consuming their
partitions while a rebalance moves the dead member's. A clean stop leaves the group at once, static
member or not (:func:`leave_group`).
"""

from __future__ import annotations

import logging
import os
import re
import socket
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

__all__ = ["GroupMembership", "auto_instance_id", "ensure_topics", "group_lag", "leave_group"]

log = logging.getLogger("driftline.collector")

_ID_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_slot_files: list[TextIO] = []   # held open for the life of the process: the slot lock


@dataclass(frozen=True, kw_only=True)
class GroupMembership:
    """Consumer-group settings of one collector; every field goes to the Kafka consumer.

    ``instance_id``: the static member id (None: a dynamic member). ``session_timeout_ms``: a member
    silent this long is dead and its partitions move (the broker accepts 6,000 to 1,800,000 by default).
    ``heartbeat_interval_ms``: a third of the session or less. ``request_timeout_ms`` must exceed the
    session timeout (a JoinGroup waits up to the session for the other members).
    """

    instance_id: str | None = None
    session_timeout_ms: int = 6000
    heartbeat_interval_ms: int = 1000
    request_timeout_ms: int = 30000
    max_poll_interval_ms: int = 300000
    cooperative: bool = True

    def __post_init__(self) -> None:
        if self.heartbeat_interval_ms * 3 > self.session_timeout_ms:
            raise ValueError(f"heartbeat_interval_ms: {self.heartbeat_interval_ms} is more than a third of "
                             f"session_timeout_ms ({self.session_timeout_ms}): "
                             "one lost heartbeat would end the session")
        if self.request_timeout_ms <= self.session_timeout_ms:
            raise ValueError(f"request_timeout_ms: {self.request_timeout_ms} must exceed session_timeout_ms "
                             f"({self.session_timeout_ms}), or a join times out before the group settles")
        if self.instance_id is not None and not re.fullmatch(r"[A-Za-z0-9._-]{1,249}", self.instance_id):
            raise ValueError(f"instance_id: {self.instance_id!r} must be 1 to 249 characters of A-Z a-z 0-9 . _ -")

    def consumer_config(self) -> dict[str, Any]:
        from kafka.coordinator.assignors.cooperative_sticky import CooperativeStickyAssignor
        from kafka.coordinator.assignors.range import RangePartitionAssignor

        return {
            "group_instance_id": self.instance_id,
            "session_timeout_ms": self.session_timeout_ms,
            "heartbeat_interval_ms": self.heartbeat_interval_ms,
            "request_timeout_ms": self.request_timeout_ms,
            "max_poll_interval_ms": self.max_poll_interval_ms,
            "partition_assignment_strategy": (CooperativeStickyAssignor,) if self.cooperative
            else (RangePartitionAssignor,),
        }


def auto_instance_id(group: str, *, lock_dir: str | None = None, max_slots: int = 256) -> str:
    """A static member id that is stable across restarts and unique on this host: ``<host>-<slot>``.

    The slot is the lowest number whose lock file (``<lock_dir>/driftline-<group>.<slot>.lock``) this process
    can lock; the kernel releases it when the process dies, however it dies, so a restarted collector takes
    the same slot (and its partitions back), while two collectors running side by side get different ids.
    Containers have their own host name and ``/tmp``: there, every collector is ``<container>-0``.
    """
    import fcntl

    host = _ID_UNSAFE.sub("-", socket.gethostname()).strip("-")[:200] or "host"
    folder = lock_dir or tempfile.gettempdir()
    safe_group = _ID_UNSAFE.sub("-", group)[:100]
    for slot in range(max_slots):
        fh = open(os.path.join(folder, f"driftline-{safe_group}.{slot}.lock"), "a")  # noqa: SIM115 - held open
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.close()
            continue
        _slot_files.append(fh)
        return f"{host}-{slot}"
    raise RuntimeError(f"instance id: all {max_slots} slots of group {group!r} in {folder} are taken")


def ensure_topics(bootstrap: str | Sequence[str], topics: Iterable[str], *,
                  timeout_ms: int = 15000) -> list[str] | None:
    """Create the topics that do not exist yet (broker defaults for partitions and replication) and wait
    until each has a leader for every partition, so that a consumer subscribing next sees them complete:
    no "topic not found", no rebalance a second later when they appear. Returns the topics created, or
    None when the broker could not be asked (logged; the caller tries again later). Another collector
    creating them at the same moment is fine."""
    from kafka.admin import KafkaAdminClient
    from kafka.errors import KafkaError

    wanted = list(dict.fromkeys(topics))
    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=timeout_ms,
                                 bootstrap_timeout_ms=timeout_ms)
    except KafkaError as exc:
        log.warning("could not check the topics (%s); trying again when the broker answers", type(exc).__name__)
        return None
    try:
        existing = set(admin.list_topics())
        missing = [t for t in wanted if t not in existing]
        if missing:
            admin.create_topics(missing, timeout_ms=timeout_ms, raise_errors=False, wait_for_metadata=True)
            log.info("created topics %s", ", ".join(missing))
        return missing
    except KafkaError as exc:
        log.warning("could not create the topics (%s); trying again when the broker answers", type(exc).__name__)
        return None
    finally:
        admin.close()


def await_topic_metadata(consumer: Any, topics: Iterable[str], *, timeout_ms: int = 5000) -> bool:
    """Wait until ``consumer``'s own metadata lists the partitions of every topic it subscribes to.

    A fresh consumer joins its group while its first metadata request is still in flight when the machine is
    busy; the group leader then assigns with "No partition metadata for topic", hands out nothing, and
    rebalances again a moment later when the metadata arrives (measured under CPU load: 1 fresh group in 6).
    Called after ``subscribe`` and before the first poll; returns False when the broker did not answer in
    time (the first poll then goes on as before). kafka-python 3.0 exposes no public wait with a timeout,
    so this uses its metadata cache and manager, and does nothing on a client without them."""
    from kafka.errors import KafkaError

    cluster, manager, net = (getattr(consumer, a, None) for a in ("_cluster", "_manager", "_net"))
    if cluster is None or manager is None or net is None or not hasattr(manager, "wait_for"):
        return False
    wanted = list(topics)
    deadline = time.monotonic() + timeout_ms / 1000
    while not all(cluster.partitions_for_topic(t) for t in wanted):
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        try:
            net.run(manager.wait_for, cluster.request_update(), int(left * 1000))
        except KafkaError:
            return False
        time.sleep(0.02)  # a topic the broker does not list yet: do not ask in a tight loop
    return True


def group_lag(consumer: Any, partitions: Iterable[Any], *, timeout_ms: int = 2000) -> dict[Any, int]:
    """Messages behind, per partition: the log end minus the group's committed offset, as
    ``kafka-consumer-groups --describe`` shows it (a partition never committed counts from the log start).
    Not the consumer's position: a stored batch whose commit failed is still lag."""
    tps = list(partitions)
    if not tps:
        return {}
    ends = consumer.end_offsets(tps, timeout_ms=timeout_ms)
    committed = consumer._coordinator.fetch_committed_offsets(tps, timeout_ms=timeout_ms)
    never = [tp for tp in tps if tp not in committed or committed[tp].offset < 0]
    starts = consumer.beginning_offsets(never, timeout_ms=timeout_ms) if never else {}
    return {tp: max(0, ends[tp] - (starts[tp] if tp in starts else committed[tp].offset)) for tp in tps if tp in ends}


def leave_group(consumer: Any) -> None:
    """Make :meth:`KafkaConsumer.close` send LeaveGroup for a static member too (kafka-python, like the
    Java client, lets a static member's partitions wait out the session timeout on a clean stop; a collector
    stopped on purpose should hand them on at once). The broker accepts a LeaveGroup naming the instance id."""
    coord = getattr(consumer, "_coordinator", None)
    if coord is not None and hasattr(coord, "is_dynamic_member"):
        coord.is_dynamic_member = lambda: True
