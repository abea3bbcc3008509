"""Hostile names through every route and detector path: values never become SQL (real chDB).

Model, feature, slice key and value, category, reference and CSV column names hold quotes, backslashes,
placeholders (``%(model)s``, ``%(x)s``, ``{db}``), comment openers, SQL keywords, unicode and spaces. The
tests check results under the exact names (counts, drift verdicts, values), not just status codes,
and that nothing of another model shows in any answer.
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from collector.auth import KeyStore
from collector.store import ChdbStore
from detectors.reference import load_profile
from driftline.config import Settings
from driftline.server import create_app
from tests import factories as f
from tests.apiclient import local_client
from tests.detector_data import T0, insert_labels, insert_predictions

H = _dt.timedelta(hours=1)
N = 600
#: numeric features; the first is shifted in the current window
NUM = ["%(model)s", "%(x)s", "{db}", "it's", "back\\slash", "'; DROP TABLE predictions; --", "SELECT", "ünï cødé 模型",
       "a b /* c", "%(model)s{db}'\\-- #"]
CAT = "cat %(model)s {db} it's"
CATS = ["%(x)s", "{db}", "o'k \\"]
TSF = "ts %(model)s {db}'"                      # a timestamp feature (epoch seconds), 10 s before its event
SK, SV = "re'gion %(model)s", "{db} 'eu' \\"
MODEL = "m %(model)s {db} it's \\ '; DROP TABLE x; -- ü"
REF = "ref %(x)s {db} '"
VICTIM = "victim"
SECRET = "victim_secret_feature"


def _hostile_rows(rng: np.random.Generator, shift: float, t0: _dt.datetime) -> list[dict]:
    rows = []
    for i in range(N):
        row: dict = {name: float(rng.normal(shift if k == 0 else 0.0, 1.0)) for k, name in enumerate(NUM)}
        row[CAT] = CATS[i % 3]
        row[TSF] = (t0 + _dt.timedelta(seconds=i * 3000 / N)).timestamp() - 10.0
        rows.append(row)
    return rows


@pytest.fixture
def data(store: ChdbStore) -> ChdbStore:
    rng = np.random.default_rng(3)
    for h, shift in ((0, 0.0), (1, 3.0)):
        t0 = T0 + h * H
        truth = ["yes" if i % 4 else "no" for i in range(N)]
        preds = [{"label": truth[i] if i % 5 else ("no" if truth[i] == "yes" else "yes")} for i in range(N)]
        rids = insert_predictions(store, start=t0, seconds=3000, features=_hostile_rows(rng, shift, t0), model=MODEL,
                                  preds=preds, slices=[{SK: SV}] * N)
        insert_labels(store, rids, classes=truth, model=MODEL, ts=t0)
        vr = insert_predictions(store, start=t0, seconds=3000, model=VICTIM,
                                features=[{SECRET: float(v), "%(model)s": 1e6} for v in rng.normal(0, 1, 50)])
        insert_labels(store, vr, classes=["victim_label"] * 50, model=VICTIM, ts=t0)
    return store


@pytest.fixture
def client(data: ChdbStore) -> Iterator[TestClient]:
    with local_client(create_app(Settings(open_localhost=True, scheduler=False), store=data)) as c:
        yield c


def _clean(text: str) -> None:
    """Nothing of the other model reaches an answer."""
    assert SECRET not in text and "victim_label" not in text and "1000000.0" not in text and VICTIM not in text


def test_detectors_and_references_on_hostile_names(client: TestClient, store: ChdbStore) -> None:
    r = client.post("/v1/references/window", json={"model": MODEL, "name": REF, "start": T0.isoformat(),
                                                   "end": (T0 + H).isoformat()})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["rows"] == N and set(NUM) | {CAT, TSF} <= set(body["features"]) and body["name"] == REF
    _clean(r.text)
    prof = load_profile(store, MODEL, REF)
    assert prof is not None and all(prof.features[n].n == N for n in NUM)
    assert dict(zip(prof.features[CAT].categories, prof.features[CAT].category_counts, strict=True)) == \
        {c: N // 3 for c in CATS}
    assert [x["name"] for x in client.get("/v1/references", params={"model": MODEL}).json()] == [REF]

    config = {"drift": {"tests": {"psi": 0.2, "ks": 0.1}}, "quality": {"timestamp_features": [TSF]},
              "performance": {"min_samples": 10, "positive_class": "yes"}}
    r = client.post("/v1/detectors/run", json={"model": MODEL, "window_end": (T0 + 2 * H).isoformat(),
                                               "window_s": 3600, "reference": REF, "config": config})
    assert r.status_code == 200, r.text
    _clean(r.text)
    res = r.json()["results"]
    assert not [x for x in res if x["status"] == "error"], [x for x in res if x["status"] == "error"]
    psi = {x["subject"]: x for x in res if x["detector"] == "drift" and x["test"] == "psi"}
    assert set(NUM) | {CAT} <= set(psi)
    assert psi[NUM[0]]["status"] == "alert" and psi[NUM[0]]["value"] > 2
    for name in NUM[1:]:
        assert psi[name]["status"] == "ok" and psi[name]["value"] < 0.2 and psi[name]["sample_size"] == N, name
    assert psi[CAT]["value"] < 0.01 and psi[CAT]["sample_size"] == N
    ks = {x["subject"]: x for x in res if x["test"] == "ks"}
    assert ks[NUM[0]]["status"] == "alert" and all(ks[n]["status"] == "ok" for n in NUM[1:])
    missing = {x["subject"]: x["value"] for x in res if x["test"] == "missing_rate"}
    assert all(missing[n] == 0.0 for n in [*NUM, CAT, TSF])
    (age,) = [x for x in res if x["test"] == "feature_age_p95_s"]
    assert age["subject"] == TSF and age["value"] == pytest.approx(10.0, abs=0.01) and age["sample_size"] == N
    acc = {x["subject"]: x for x in res if x["detector"] == "performance" and x["test"] == "accuracy"}
    assert set(acc) == {"", f"{SK}={SV}"}
    for x in acc.values():
        assert x["sample_size"] == N and x["value"] == pytest.approx(1 - (N // 5) / N)

    rows = client.get("/v1/detectors/results", params={"model": MODEL, "test": "psi", "subject": NUM[0]}).json()
    assert len(rows) == 1 and rows[0]["value"] == pytest.approx(psi[NUM[0]]["value"]) and rows[0]["subject"] == NUM[0]
    rows = client.get("/v1/detectors/results", params={"model": MODEL, "subject": f"{SK}={SV}"}).json()
    assert {x["test"] for x in rows} >= {"accuracy", "precision", "recall", "f1"}

    r = client.get("/v1/drift/psi", params={"model": MODEL, "reference_start": T0.isoformat(),
                                            "reference_end": (T0 + H).isoformat(),
                                            "current_start": (T0 + H).isoformat(),
                                            "current_end": (T0 + 2 * H).isoformat()})
    assert r.status_code == 200, r.text
    got = {x["feature"]: x for x in r.json()}
    assert set(NUM) <= set(got) and got[NUM[0]]["status"] == "drift"
    assert all(got[n]["status"] == "ok" and got[n]["current_n"] == N for n in NUM[1:])
    _clean(r.text)


def test_reference_upload_with_hostile_column_names(client: TestClient, store: ChdbStore, tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    df = pd.DataFrame({name: rng.normal(0, 1, 500) for name in NUM})
    df[CAT] = [CATS[i % 3] for i in range(500)]
    df.loc[::10, NUM[1]] = np.nan
    path = tmp_path / "baseline.csv"
    df.to_csv(path, index=False)
    with open(path, "rb") as fh:
        r = client.post("/v1/references/upload", params={"model": MODEL, "name": REF},
                        files={"file": ("baseline.csv", fh, "text/csv")})
    assert r.status_code == 200, r.text
    assert r.json()["rows"] == 500 and sorted(r.json()["features"]) == sorted([*NUM, CAT])
    prof = load_profile(store, MODEL, REF)
    assert prof is not None and prof.source == "upload"
    assert prof.features[NUM[0]].n == 500 and prof.features[NUM[1]].n == 450
    assert prof.features[NUM[0]].mean == pytest.approx(float(df[NUM[0]].mean()))
    assert sorted(prof.features[CAT].categories) == sorted(CATS)
    r = client.post("/v1/detectors/run", json={"model": MODEL, "window_end": (T0 + 2 * H).isoformat(),
                                               "window_s": 3600, "reference": REF,
                                               "config": {"drift": {"tests": {"psi": 0.2}}}})
    assert r.status_code == 200, r.text
    psi = {x["subject"]: x for x in r.json()["results"] if x["test"] == "psi"}
    assert psi[NUM[0]]["status"] == "alert" and psi[NUM[2]]["status"] == "ok" and psi[NUM[2]]["sample_size"] == N
    _clean(r.text)


def test_query_routes_on_hostile_names(client: TestClient) -> None:
    m: dict[str, Any] = {"model": MODEL, "minutes": 3 * 1440}
    preds = client.get("/v1/predictions", params={**m, "limit": 10000})
    assert preds.status_code == 200 and len(preds.json()) == 2 * N
    assert all(p["model"] == MODEL for p in preds.json())
    assert sum(x["n"] if "n" in x else x.get("events", 0) for x in
               client.get("/v1/arrivals", params={"model": MODEL, "minutes": 3 * 1440}).json()) >= 0
    cov = client.get("/v1/labels/coverage", params=m).json()
    assert cov["predictions"] == 2 * N and cov["labeled"] == 2 * N
    summ = client.get("/v1/ops/summary", params=m).json()
    assert summ["sampled_predictions"] == 2 * N and summ["labelled"] == 2 * N
    assert summ["accuracy"] == pytest.approx(1 - (N // 5) / N)
    sl = client.get("/v1/ops/slices", params={**m, "key": SK}).json()
    assert [(x["key"], x["value"], x["labelled"]) for x in sl] == [(SK, SV, 2 * N)]
    feats = {(x["feature"], x["kind"]): x["n"] for x in client.get("/v1/ops/features", params=m).json()}
    assert all(feats[(n, "numeric")] == 2 * N for n in NUM) and feats[(CAT, "categorical")] == 2 * N
    span = {"reference_start": T0.isoformat(), "reference_end": (T0 + H).isoformat(),
            "current_start": (T0 + H).isoformat(), "current_end": (T0 + 2 * H).isoformat()}
    for name in NUM:
        d = client.get("/v1/ops/distribution", params={"model": MODEL, "feature": name, **span}).json()
        assert d["kind"] == "numeric" and sum(d["reference"]) == N and sum(d["current"]) == N, name
    d = client.get("/v1/ops/distribution", params={"model": MODEL, "feature": CAT, **span}).json()
    assert d["kind"] == "categorical" and d["categories"] == sorted(CATS) and d["reference"] == [N // 3] * 3
    for path in ("/v1/ops/latency", "/v1/ops/deploys", "/v1/ops/versions"):
        r = client.get(path, params=m)
        assert r.status_code == 200, (path, r.text)
    for path in ("/v1/predictions", "/v1/labels/coverage", "/v1/ops/summary", "/v1/ops/slices", "/v1/ops/features"):
        _clean(client.get(path, params=m).text)


def test_ingest_routes_with_hostile_feature_slice_and_annotation_names(client: TestClient) -> None:
    model = "m.h-1:x/y_%"[:-1]                  # model names are restricted by the contract
    before = client.get("/v1/counts").json()
    batch = []
    for i in range(30):
        ev = f.prediction(i, model=model)
        ev["features"] = {**{n: float(i) for n in NUM}, CAT: CATS[i % 3], "null %(x)s {db}'": None}
        ev["slices"] = {SK: SV}
        batch.append(ev)
    r = client.post("/v1/predictions", json=batch)
    assert r.status_code == 200 and r.json()["accepted"] == 30, r.text
    r = client.post("/v1/labels", json=[f.label(batch[0]["request_id"], model=model, value="%(x)s {db}'")])
    assert r.status_code == 200 and r.json()["accepted"] == 1, r.text
    deploy = f.deploy(model=model)
    deploy["annotations"] = {"note": "%(model)s {db} '; DROP TABLE deploys; --"}   # keys are names
    assert client.post("/v1/deploys", json=[deploy]).json()["accepted"] == 1
    assert client.post("/v1/metric-windows", json=[f.metric_window(model=model)]).json()["accepted"] == 1
    after = client.get("/v1/counts").json()
    assert {k: after[k] - before[k] for k in ("prediction", "label", "deploy", "metric_window")} == \
        {"prediction": 30, "label": 1, "deploy": 1, "metric_window": 1}
    feats = {(x["feature"], x["kind"]): x["n"] for x in client.get("/v1/ops/features", params={"model": model}).json()}
    assert all(feats[(n, "numeric")] == 30 for n in NUM) and feats[(CAT, "categorical")] == 30
    (d,) = client.get("/v1/ops/deploys", params={"model": model}).json()
    assert d["annotations"] == {"note": "%(model)s {db} '; DROP TABLE deploys; --"}
    preds = client.get("/v1/predictions", params={"model": model}).json()
    assert len(preds) == 30 and all(json.dumps(p, default=str) for p in preds)


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning")
def test_evidently_report_on_hostile_names(client: TestClient) -> None:
    r = client.get("/v1/reports/evidently", params={
        "model": MODEL, "start": (T0 + H).isoformat(), "end": (T0 + 2 * H).isoformat(),
        "reference_start": T0.isoformat(), "reference_end": (T0 + H).isoformat(), "sample": 200})
    assert r.status_code == 200, r.text[:500]
    assert "<html" in r.text.lower()
    _clean(r.text)


def test_a_scoped_key_cannot_read_other_data_through_a_placeholder_feature(store: ChdbStore, tmp_path: Path) -> None:
    """The exploit of issue 11: a feature named ``%(model)s`` and a crafted model were rewritten into SQL
    that read api_keys, other models' rows, local files and URLs (its text in an error reason)."""
    import http.server
    import threading

    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            hits.append(self.path)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"1\n")

        def log_message(self, *a: object) -> None:
            pass

    srv = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    secret_file = tmp_path / "secret.csv"
    secret_file.write_text("file_secret_sentinel\n")
    db = store.database
    keys = KeyStore(store)
    admin = keys.create(scope="admin", name="admin_secret_key_name")
    victim_rids = insert_predictions(store, start=T0, seconds=3000, model=VICTIM,
                                     features=[{SECRET: 1.0} for _ in range(5)])

    def chars(s: str) -> str:
        return "char(" + ", ".join(str(ord(c)) for c in s) + ")"

    leaks = {
        "api_keys": f"(SELECT arrayStringConcat(groupArray(concat(key_hash, name)), char(44)) FROM {db}.api_keys)",
        "rows": f"(SELECT arrayStringConcat(groupArray(request_id), char(44)) FROM {db}.predictions)",
        "file": f"(SELECT arrayStringConcat(groupArray(c1), char(44)) FROM file({chars(str(secret_file))}, CSV))",
        "url": f"(SELECT arrayStringConcat(groupArray(c1), char(44)) FROM "
               f"url({chars(f'http://127.0.0.1:{srv.server_port}/x.csv')}, CSV))",
    }
    app = create_app(Settings(open_localhost=False, scheduler=False), store=store)
    leaked: dict[str, list[str]] = {}
    try:
        with local_client(app) as c:
            for what, sub in leaks.items():
                crafted = f" || toString(toUInt8(assumeNotNull({sub}))) || "
                key = keys.create(scope="write", models=(crafted,))
                insert_predictions(store, start=T0 + H, seconds=600, model=crafted,
                                   features=[{"%(model)s": 5.0, "x": 1.0} for _ in range(20)])
                r = c.post("/v1/detectors/run", params={"model": crafted}, headers={"X-API-Key": key},
                           json={"model": crafted, "window_end": (T0 + 2 * H).isoformat(), "window_s": 3600,
                                 "config": {"quality": {"timestamp_features": ["%(model)s"]},
                                            "drift": {"tests": {"psi": 0.2}}}})
                assert r.status_code == 200, (what, r.text)
                text = r.text
                leaked[what] = [s for s in ("file_secret_sentinel", "admin_secret_key_name", admin.split("_")[1],
                                            SECRET, *victim_rids) if s in text]
                age = [x for x in r.json()["results"] if x["test"] == "feature_age_p95_s"]
                assert len(age) == 1 and age[0]["subject"] == "%(model)s" and age[0]["sample_size"] == 20, (what, age)
                assert not [x for x in r.json()["results"] if x["status"] == "error"], (what, text[:2000])
    finally:
        srv.shutdown()
        srv.server_close()
    assert leaked == {what: [] for what in leaks} and hits == [], (leaked, hits)


def test_slo_evaluation_on_hostile_model_slice_and_subject(client: TestClient, store: ChdbStore) -> None:
    from slo_engine.evaluate import evaluate
    from slo_engine.model import Sli, Slo

    r = client.post("/v1/references/window", json={"model": MODEL, "name": REF, "start": T0.isoformat(),
                                                   "end": (T0 + H).isoformat()})
    assert r.status_code == 200, r.text
    r = client.post("/v1/detectors/run", json={"model": MODEL, "window_end": (T0 + 2 * H).isoformat(),
                                               "window_s": 3600, "reference": REF,
                                               "config": {"drift": {"tests": {"psi": 0.2}}}})
    assert r.status_code == 200, r.text
    day = 86400

    def slo(name: str, sli: Sli) -> Slo:
        return Slo(name=name, model=MODEL, objective=0.9, window_s=30 * day, sli=sli)

    now = T0 + 2 * H
    res = {s.slo.name: s for s in evaluate(store, [
        slo("acc", Sli(kind="accuracy", slice=((SK, SV),))),
        slo("acc_other", Sli(kind="accuracy", slice=((SK, "%(x)s"),))),
        slo("drift_bad", Sli(kind="drift", subject=NUM[0])),
        slo("drift_ok", Sli(kind="drift", subject=NUM[1])),
    ], now)}
    assert (res["acc"].good, res["acc"].total) == (2 * N - 2 * (N // 5), 2 * N)
    assert res["acc_other"].total == 0                      # no row has that slice value
    assert (res["drift_bad"].good, res["drift_bad"].total) == (0, 1)
    assert (res["drift_ok"].good, res["drift_ok"].total) == (1, 1)
