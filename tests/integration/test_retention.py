"""Retention per table on a real store: set by the API and the CLI, applied as the table's TTL (rows older than
it go, newer ones stay), shown, and audited."""

from __future__ import annotations

import datetime as _dt

import pytest
from fastapi.testclient import TestClient

from collector import audit
from collector.migrations import migrate
from collector.retention import retention, set_retention
from driftline.config import Settings
from driftline.migrations import all_migrations
from driftline.server import create_app
from tests.detector_data import insert_predictions


def _days(store, table: str):  # type: ignore[no-untyped-def]
    return {r["table"]: r["days"] for r in retention(store)}[table]


def test_a_shorter_retention_removes_older_rows_and_keeps_newer(store) -> None:  # type: ignore[no-untyped-def]
    now = _dt.datetime.now(_dt.UTC).replace(microsecond=0)
    insert_predictions(store, start=now - _dt.timedelta(days=20), seconds=60, features=[{"x": 1.0}] * 50)
    insert_predictions(store, start=now - _dt.timedelta(hours=2), seconds=60, features=[{"x": 2.0}] * 30)
    assert store.scalar("SELECT count() FROM {db}.predictions FINAL") == 80
    out = set_retention(store, "predictions", 10, actor="cli:test")
    assert out["days"] == 10 and _days(store, "predictions") == 10
    store.execute("OPTIMIZE TABLE {db}.predictions FINAL")
    assert store.scalar("SELECT count() FROM {db}.predictions FINAL") == 30
    # the change survives the migrations running again (they never touch a TTL)
    migrate(store, all_migrations())
    assert _days(store, "predictions") == 10
    (e,) = audit.query(store, action="retention.set")
    assert e["actor"] == "cli:test" and e["before"] == {"days": 90} and e["after"] == {"days": 10}


def test_zero_keeps_forever_and_the_dead_letters_name_is_understood(store) -> None:  # type: ignore[no-untyped-def]
    assert _days(store, "deploys") is None
    set_retention(store, "deploys", 365, actor="cli:test")
    assert _days(store, "deploys") == 365
    set_retention(store, "deploys", 0, actor="cli:test")
    assert _days(store, "deploys") is None
    set_retention(store, "dead_letters", 3, actor="cli:test")
    assert _days(store, "dead_letters") == 3
    with pytest.raises(ValueError, match="table: 'api_keys' has no configurable retention"):
        set_retention(store, "api_keys", 3, actor="cli:test")
    with pytest.raises(ValueError, match="days: must be a whole number"):
        set_retention(store, "labels", -1, actor="cli:test")
    # the audit log cannot be cut short (its trail would go); longer, or forever, is fine
    with pytest.raises(ValueError, match="days: audit_log keeps at least 365 days"):
        set_retention(store, "audit_log", 1, actor="cli:test")
    assert _days(store, "audit_log") == 730
    assert [e["after"]["days"] for e in audit.query(store, action="retention.set")] == [3, None, 365]


def test_the_api_shows_and_sets_retention_for_admins_only(store) -> None:  # type: ignore[no-untyped-def]
    app = create_app(Settings(scheduler=False), store=store)
    k = app.state.keys
    root = {"X-API-Key": k.create(scope="admin")}
    scoped = {"X-API-Key": k.create(scope="admin", models=("m1",))}
    writer = {"X-API-Key": k.create(scope="write")}
    with TestClient(app) as c:
        shown = {r["table"]: r["days"] for r in c.get("/v1/retention", headers=root).json()}
        assert shown["predictions"] == 90 and shown["audit_log"] == 730 and shown["deploys"] is None
        assert c.get("/v1/retention", headers=writer).status_code == 403
        assert c.put("/v1/retention", json={"table": "labels", "days": 5}, headers=scoped).status_code == 403
        r = c.put("/v1/retention", json={"table": "labels", "days": 99999}, headers=root)
        assert r.status_code == 422 and "days" in r.text
        r = c.put("/v1/retention", json={"table": "labels; DROP TABLE x", "days": 5}, headers=root)
        assert r.status_code == 422 and "table" in r.text
        r = c.put("/v1/retention", json={"table": "labels", "days": 5}, headers=root)
        assert r.status_code == 200 and r.json()["days"] == 5
    assert _days(store, "labels") == 5
