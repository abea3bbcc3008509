"""The SLO routes on the real app and store, and the ``driftline slo`` / ``driftline silence`` commands."""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from collector.store import ChdbStore
from driftline.cli import main
from driftline.config import Settings
from driftline.server import create_app
from slo_engine.spec import parse_specs
from tests.apiclient import local_client
from tests.slo_data import T0, minutes

SPEC = """version: driftline/v1
slos:
  - {name: avail, model: m1, objective: 99.9, window: 30d, sli: {availability: {}}}
  - {name: acc, model: m1, objective: 90, window: 30d, sli: {accuracy: {}}}
"""


@pytest.fixture
def client(store: ChdbStore) -> Iterator[TestClient]:
    app = create_app(Settings(open_localhost=True), store=store)
    app.state.slo_specs = parse_specs(SPEC)
    with local_client(app) as c:
        yield c


def test_status_budgets_and_burn_rates_over_any_window(client: TestClient, store: ChdbStore) -> None:
    minutes(store, T0 - _dt.timedelta(hours=3), 180, lambda i: 0.01 if i >= 120 else 0.0, requests=2000)
    r = client.get("/v1/slo/status", params={"slo": "avail", "at": T0.isoformat(), "window": ["2h", "90m"]})
    assert r.status_code == 200, r.text
    (st,) = r.json()
    assert st["total"] == 360_000 and st["good"] == 360_000 - 60 * 20
    assert st["burn_rates"]["7200"] == pytest.approx(5.0) and st["burn_rates"]["5400"] == pytest.approx(60 / 90 * 10)
    assert st["budget_remaining"] == pytest.approx(1 - 1200 / 360_000 / 0.001)
    assert [(x["tier"], x["firing"]) for x in st["rules"]] == [("page-fast", False), ("page-slow", False),
                                                               ("ticket", True)]
    assert client.get("/v1/slo/status", params={"slo": "nope"}).status_code == 404
    assert client.get("/v1/slo/status", params={"window": "soon"}).status_code == 422


def test_specs_and_validate(client: TestClient) -> None:
    doc = client.get("/v1/slo/specs").json()
    acc = doc["slos"][1]
    assert acc["rules"][0]["burn_rate"] == 9.0 and "can never fire" in acc["rules"][0]["note"]
    r = client.post("/v1/slo/validate", content=SPEC.replace("99.9", "100"),
                    headers={"Content-Type": "application/yaml"})
    assert r.status_code == 422
    assert r.json()["detail"] == [{"line": 3, "path": ".slos[0].objective",
                                   "message": "100.0 is not a percentage strictly between 0 and 100"}]


def test_silences_create_list_expire_and_alerts(client: TestClient) -> None:
    r = client.post("/v1/slo/silences", json={"matchers": {"model": "m1", "severity": "page"}, "duration": "2h",
                                               "created_by": "ana", "comment": "retraining"})
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    assert [s["id"] for s in client.get("/v1/slo/silences").json()] == [sid]
    assert client.post("/v1/slo/silences", json={"matchers": {}, "duration": "1h"}).status_code == 422
    assert client.post("/v1/slo/silences", json={"matchers": {"team": "x"}, "duration": "1h"}).status_code == 422
    assert client.delete(f"/v1/slo/silences/{sid}").status_code == 200
    assert client.get("/v1/slo/silences").json() == []
    assert [s["id"] for s in client.get("/v1/slo/silences", params={"include_expired": True}).json()] == [sid]
    assert client.delete("/v1/slo/silences/nope").status_code == 404
    assert client.get("/v1/slo/alerts").json() == []
    assert client.get("/v1/slo/deliveries").json() == []


def test_cli_validate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(SPEC)
    assert main(["slo", "validate", str(good)]) == 0
    out = capsys.readouterr().out
    assert f"{good}: avail: availability of m1 99.9% over 30d ok" in out
    assert "note: 14.4x can never fire at objective 90% (max burn 10x); scaled to 9x" in out
    bad = tmp_path / "bad.yaml"
    bad.write_text(SPEC.replace("window: 30d, sli: {accuracy", "window: 29d, sli: {accuracy"))
    assert main(["slo", "validate", str(good), str(bad)]) == 1
    assert capsys.readouterr().err.strip() == f"{bad}:4: .slos[1].window: must be 28d or 30d"


def test_cli_silences_on_the_store(store: ChdbStore, capsys: pytest.CaptureFixture[str],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRIFTLINE_DATABASE", store.database)
    assert main(["silence", "add", "--model", "m1", "--duration", "30m", "--by", "ana", "--store", store.path]) == 0
    sid = json.loads(capsys.readouterr().out)["id"]
    assert main(["silence", "list", "--store", store.path]) == 0
    assert json.loads(capsys.readouterr().out)["matchers"] == {"model": "m1"}
    assert main(["silence", "expire", sid, "--store", store.path]) == 0
    capsys.readouterr()
    assert main(["silence", "list", "--store", store.path]) == 0
    assert capsys.readouterr().out == ""
    assert main(["silence", "add", "--duration", "30m", "--store", store.path]) == 1
    assert "at least one matcher" in capsys.readouterr().err


def test_cli_status(store: ChdbStore, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRIFTLINE_DATABASE", store.database)
    spec = tmp_path / "s.yaml"
    spec.write_text(SPEC)
    assert main(["slo", "status", str(spec), "--store", store.path]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["slo"], r["sli"], r["total"]) for r in rows] == [("avail", None, 0.0), ("acc", None, 0.0)]


def test_cli_silences_through_the_api_of_a_server_with_keys(store: ChdbStore, capsys: pytest.CaptureFixture[str],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.servers import running

    monkeypatch.delenv("DRIFTLINE_API_KEY", raising=False)
    app = create_app(Settings(scheduler=False), store=store)
    key = app.state.keys.create(scope="write", name="cli")
    with running(app, log_level="warning") as url:
        add = ["silence", "add", "--model", "m1", "--duration", "30m", "--by", "ana", "--api", url]
        assert main(add) == 1                                       # no key: refused, and said so
        err = capsys.readouterr().err
        assert err.startswith("driftline silence: POST /v1/slo/silences: HTTP 401"), err
        assert main([*add, "--api-key", key]) == 0
        sid = json.loads(capsys.readouterr().out)["id"]
        monkeypatch.setenv("DRIFTLINE_API_KEY", key)                # the default of --api-key
        assert main(["silence", "list", "--api", url]) == 0
        assert [json.loads(line)["id"] for line in capsys.readouterr().out.splitlines()] == [sid]
        assert main(["silence", "expire", sid, "--api", url]) == 0
        assert main(["silence", "list", "--all", "--api", url]) == 0
        (row,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()[1:]]
        assert row["id"] == sid and row["created_by"] == "ana"
    (entry,) = [e for e in store.rows("SELECT actor, action FROM {db}.audit_log") if e["action"] == "silence.create"]
    assert entry["actor"] == "key:" + key.split("_")[1]
