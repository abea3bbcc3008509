"""The clickhouse-driver engine over the native protocol against a real server.

Debian's clickhouse-server is 18.16: it proves the connection plumbing and the clear refusal of a
server older than 24.1 (the SQL is designed for 24.x and newer, and runs on chDB in the suite).
"""

from __future__ import annotations

import pytest
from clickhouse_driver import Client

from collector.exceptions import StoreUnavailable, StoreVersionError
from collector.store import ClickHouseStore, open_store


def test_old_server_is_refused_naming_both_versions(clickhouse_server: tuple[str, int]) -> None:
    host, port = clickhouse_server
    client = Client(host=host, port=port)
    server_version = client.execute("SELECT version()")[0][0]
    client.disconnect()
    with pytest.raises(StoreVersionError) as exc:
        ClickHouseStore(host=host, port=port)
    msg = str(exc.value)
    assert server_version in msg and "24.1" in msg and f"{host}:{port}" in msg


def test_url_opens_the_native_engine(clickhouse_server: tuple[str, int]) -> None:
    host, port = clickhouse_server
    with pytest.raises(StoreVersionError):
        open_store(f"clickhouse://default:@{host}:{port}/driftline")


def test_unreachable_server_is_store_unavailable() -> None:
    with pytest.raises(StoreUnavailable, match="unavailable"):
        ClickHouseStore(host="127.0.0.1", port=1, connect_timeout=1)
