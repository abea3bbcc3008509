"""Schema fuzzing of the project's own OpenAPI with schemathesis: no input makes the server fail (5xx)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings

from collector.migrations import migrate
from collector.store import ChdbStore
from driftline.config import Settings
from driftline.server import all_migrations, create_app
from tests import factories
from tests.conftest import _CHDB_PATH


@schemathesis.serializer("application/x-ndjson")
def _ndjson(ctx: schemathesis.SerializationContext, value: Any) -> bytes:
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

# two tenants: a key for "alpha" must never receive a byte of "bravo"'s data, whatever it sends
WRITER_A = app.state.keys.create(scope="write", name="fuzz alpha", models=("alpha",))
_seed = TestClient(app)
for _m in ("alpha", "bravo"):
    _bad = factories.prediction(1, model=_m, event_id=f"{_m}-dead-letter")
    _bad["latency_ms"] = "slow"
    _seed.post("/v1/predictions", json=[*(factories.prediction(i, model=_m) for i in range(20)), _bad],
               headers={"X-API-Key": ADMIN})
    _seed.post("/v1/metric-windows", json=[factories.metric_window(model=_m)], headers={"X-API-Key": ADMIN})
    _seed.post("/v1/deploys", json=[factories.deploy(model=_m)], headers={"X-API-Key": ADMIN})
    _seed.post("/v1/slo/silences", json={"matchers": {"model": _m}, "duration": "1h"}, headers={"X-API-Key": ADMIN})


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_error(case: schemathesis.Case) -> None:
    response = case.call(headers={"X-API-Key": ADMIN})
    assert response.status_code < 500, \
        f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:500]}"
    ctype = response.headers.get("content-type", "")
    ctype = ctype[0] if isinstance(ctype, list) else ctype
    if response.status_code in (400, 413, 422) and ctype.startswith("application/json"):
        body = response.json()
        assert body.get("detail") or body.get("rejected"), "a 4xx must say which field and why"


@schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
def test_a_model_scoped_key_never_sees_another_model(case: schemathesis.Case) -> None:
    response = case.call(headers={"X-API-Key": WRITER_A})
    assert response.status_code < 500, \
        f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:500]}"
    assert "bravo" not in response.text, \
        f"{case.method} {case.formatted_path} showed model bravo: {response.text[:500]}"
