"""Schema fuzzing of the project's own OpenAPI with schemathesis: no input makes the server fail (5xx)."""

from __future__ import annotations

import json
import uuid

import schemathesis
from hypothesis import HealthCheck, settings

from collector.migrations import migrate
from collector.store import ChdbStore
from driftline.config import Settings
from driftline.server import all_migrations, create_app
from tests.conftest import _CHDB_PATH


@schemathesis.serializer("application/x-ndjson")
def _ndjson(ctx, value):  # type: ignore[no-untyped-def]
    """NDJSON bodies: a generated string is sent as is, anything else one JSON value per line."""
    if isinstance(value, str | bytes):
        return value.encode() if isinstance(value, str) else value
    items = value if isinstance(value, list) else [value]
    return "\n".join(json.dumps(v) for v in items).encode()


_store = ChdbStore(_CHDB_PATH, database=f"fuzz_{uuid.uuid4().hex[:10]}")
migrate(_store, all_migrations())
app = create_app(Settings(scheduler=False), store=_store)
ADMIN = app.state.keys.create(scope="admin", name="fuzz")
schema = schemathesis.openapi.from_asgi("/openapi.json", app)


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_error(case) -> None:  # type: ignore[no-untyped-def]
    response = case.call(headers={"X-API-Key": ADMIN})
    assert response.status_code < 500, f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:500]}"
    ctype = response.headers.get("content-type", "")
    ctype = ctype[0] if isinstance(ctype, list) else ctype
    if response.status_code in (400, 413, 422) and ctype.startswith("application/json"):
        body = response.json()
        assert body.get("detail") or body.get("rejected"), "a 4xx must say which field and why"
