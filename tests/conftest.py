"""Shared fixtures: one chDB path per test process (a database per test), the real Kafka broker,
and a real ClickHouse server process where one is installed."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator

import pytest

from collector.migrations import migrate
from collector.store import ChdbStore
from driftline.server import all_migrations
from tests.processes import stop

_CHDB_PATH = tempfile.mkdtemp(prefix="driftline-test-chdb-")


@pytest.fixture
def store() -> Iterator[ChdbStore]:
    """A migrated chDB store in a fresh database of this process's test path."""
    s = ChdbStore(_CHDB_PATH, database=f"t_{uuid.uuid4().hex[:12]}")
    migrate(s, all_migrations())
    yield s
    s.drop_database()


def _port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    """The real broker started by scripts/kafka.sh. Missing broker = failure, never a skip."""
    boot = os.environ.get("DRIFTLINE_KAFKA", "127.0.0.1:9092")
    host, port = boot.split(",")[0].rsplit(":", 1)
    if not _port_open(host, int(port), timeout=3):
        pytest.fail(f"Kafka broker not reachable at {boot}: start it with `scripts/kafka.sh start` "
                    "(scripts/test.sh does this)", pytrace=False)
    return boot


@pytest.fixture
def topic_prefix() -> str:
    return f"dltest{uuid.uuid4().hex[:10]}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def clickhouse_server() -> Iterator[tuple[str, int]]:
    """A real ClickHouse server process (Debian's clickhouse-server package) on a free port."""
    binary = shutil.which("clickhouse-server") or (
        "/usr/sbin/clickhouse-server" if os.path.exists("/usr/sbin/clickhouse-server") else None)
    if binary is None:
        pytest.fail("clickhouse-server is not installed (scripts/setup.sh installs Debian's package as root)",
                    pytrace=False)
    work = tempfile.mkdtemp(prefix="driftline-chserver-")
    port, http, interserver = _free_port(), _free_port(), _free_port()
    config = "/etc/clickhouse-server/config.xml"
    cmd = [binary, f"--config-file={config}", "--", f"--tcp_port={port}", f"--http_port={http}",
           f"--interserver_http_port={interserver}",
           "--listen_host=127.0.0.1", f"--path={work}/data/", f"--tmp_path={work}/tmp/",
           f"--user_files_path={work}/uf/", f"--format_schema_path={work}/fs/",
           f"--logger.log={work}/server.log", f"--logger.errorlog={work}/err.log", "--logger.console=0"]
    proc = subprocess.Popen(cmd, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not _port_open("127.0.0.1", port, 0.5):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            err = ""
            if os.path.exists(f"{work}/err.log"):
                with open(f"{work}/err.log") as fh:
                    err = fh.read()[-2000:]
            pytest.fail(f"clickhouse-server did not start on {port}: {err}", pytrace=False)
        time.sleep(0.2)
    yield "127.0.0.1", port
    stop(proc)
    shutil.rmtree(work, ignore_errors=True)


# chDB 4.4 can crash in its own global shutdown at interpreter exit (after every test has run and the summary
# is printed; seen as "Exception in global_context->shutdown()" and, now and then, a segmentation fault).
# Leave the process with pytest's own exit status once pytest is completely done, skipping that teardown.
_EXIT_STATUS: list[int] = []


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _EXIT_STATUS.append(int(exitstatus))


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    if _EXIT_STATUS and os.environ.get("DRIFTLINE_TEST_HARD_EXIT", "1") == "1":
        import sys

        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_EXIT_STATUS[-1])
