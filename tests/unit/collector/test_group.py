"""Group membership settings and the static member id a collector derives for itself."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from collector.group import GroupMembership, auto_instance_id


def test_settings_that_would_break_the_group_are_refused_naming_the_field() -> None:
    with pytest.raises(ValueError, match="request_timeout_ms"):
        GroupMembership(session_timeout_ms=45000, request_timeout_ms=30000)   # kafka-python's own defaults
    with pytest.raises(ValueError, match="heartbeat_interval_ms"):
        GroupMembership(session_timeout_ms=6000, heartbeat_interval_ms=3000)
    with pytest.raises(ValueError, match="instance_id"):
        GroupMembership(instance_id="has space")


def test_the_consumer_gets_every_setting() -> None:
    cfg = GroupMembership(instance_id="c-1").consumer_config()
    assert cfg["group_instance_id"] == "c-1" and cfg["session_timeout_ms"] == 6000
    assert cfg["heartbeat_interval_ms"] * 3 <= cfg["session_timeout_ms"] < cfg["request_timeout_ms"]
    assert [a.name for a in cfg["partition_assignment_strategy"]] == ["cooperative-sticky"]


def test_auto_ids_differ_side_by_side_and_come_back_after_the_process_dies(tmp_path: Path) -> None:
    first, second = auto_instance_id("g", lock_dir=str(tmp_path)), auto_instance_id("g", lock_dir=str(tmp_path))
    assert first != second and first.endswith("-0") and second.endswith("-1")
    assert auto_instance_id("other group", lock_dir=str(tmp_path)).endswith("-0")
    # a process that takes the next slot and is killed: the kernel frees its lock, a restart takes it again
    code = (f"import os, signal\nfrom collector.group import auto_instance_id\n"
            f"print(auto_instance_id('g', lock_dir={str(tmp_path)!r}), flush=True)\n"
            "os.kill(os.getpid(), signal.SIGKILL)")
    ids = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).resolve().parents[3]).stdout.strip()
           for _ in range(2)]
    assert ids[0] == ids[1] and ids[0].endswith("-2")
