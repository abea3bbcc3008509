"""A TestClient that calls from the loopback address, for apps built with ``open_localhost``."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient


def local_client(app: Any, **kw: Any) -> TestClient:
    return TestClient(app, client=("127.0.0.1", 50000), **kw)
