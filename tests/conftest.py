"""Shared fixtures: one chDB path per test process (a database per test), the real Kafka broker,
and a real ClickHouse server process where one is installed."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator

import pytest

from collector.migrations import migrate
from collector.store import ChdbStore
from driftline.server import all_migrations
from tests.brokers import DedicatedBroker
from tests.clickhouse import ClickHouseServer, port_open, server_binary

_CHDB_PATH = tempfile.mkdtemp(prefix="driftline-test-chdb-")


@pytest.fixture
def store() -> Iterator[ChdbStore]:
    """A migrated chDB store in a fresh database of this process's test path."""
    s = ChdbStore(_CHDB_PATH, database=f"t_{uuid.uuid4().hex[:12]}")
    migrate(s, all_migrations())
    yield s
    s.drop_database()


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    """The real broker started by scripts/kafka.sh. Missing broker = failure, never a skip."""
    boot = os.environ.get("DRIFTLINE_KAFKA", "127.0.0.1:9092")
    host, port = boot.split(",")[0].rsplit(":", 1)
    if not port_open(host, int(port), timeout=3):
        pytest.fail(f"Kafka broker not reachable at {boot}: start it with `scripts/kafka.sh start` "
                    "(scripts/test.sh does this)", pytrace=False)
    return boot


@pytest.fixture(scope="session")
def _dedicated_broker_of_the_session() -> Iterator[DedicatedBroker]:
    broker = DedicatedBroker()
    yield broker
    if broker.is_up():
        broker.stop()


@pytest.fixture
def dedicated_broker(_dedicated_broker_of_the_session: DedicatedBroker) -> DedicatedBroker:
    """A real broker of the tests' own (never the shared one) that a test may stop and start again: up when the
    test starts. One per session (formatting and starting a broker takes seconds): topics and groups of earlier
    tests remain on it, so each test uses names of its own."""
    broker = _dedicated_broker_of_the_session
    if not broker.is_up():
        broker.start()
    return broker


@pytest.fixture
def topic_prefix() -> str:
    return f"dltest{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
def clickhouse_server() -> Iterator[tuple[str, int]]:
    """A real ClickHouse server process (Debian's clickhouse-server package) on a free port."""
    binary = server_binary()
    if binary is None:
        pytest.fail("clickhouse-server is not installed (scripts/setup.sh installs Debian's package as root)",
                    pytrace=False)
    server = ClickHouseServer(binary)
    try:
        server.start()
    except RuntimeError as exc:
        server.remove()
        pytest.fail(str(exc), pytrace=False)
    yield server.host, server.port
    server.remove()


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
