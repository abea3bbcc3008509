"""Detector routes, reference upload (CSV, Parquet, CLI) and the Evidently report (real chDB)."""

from __future__ import annotations

import datetime as _dt
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from collector.store import ChdbStore
from detectors.reference import load_profile
from detectors.upload import upload_reference
from driftline.config import Settings
from driftline.server import create_app
from tests.apiclient import local_client
from tests.detector_data import T0, insert_predictions

H = _dt.timedelta(hours=1)
EVIDENTLY_WARNINGS = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning")


def _baseline(n: int = 2000) -> pd.DataFrame:
    rng = np.random.default_rng(9)
    df = pd.DataFrame({"x": rng.normal(0, 1, n), "n_items": rng.integers(0, 5, n), "plan": rng.choice(["a", "b"], n),
                       "pred": rng.choice(["yes", "no"], n), "y": rng.normal(5, 1, n)})
    df.loc[::7, "x"] = np.nan
    return df


@pytest.fixture
def client(store: ChdbStore) -> TestClient:
    rng = np.random.default_rng(0)
    insert_predictions(store, start=T0, seconds=3000,
                       features=[{"x": float(v), "plan": "a"} for v in rng.normal(0, 1, 800)])
    insert_predictions(store, start=T0 + H, seconds=3000,
                       features=[{"x": float(v), "plan": "b"} for v in rng.normal(1, 1, 800)])
    return local_client(create_app(Settings(open_localhost=True, scheduler=False), store=store))


def test_run_store_and_query_results(client: TestClient) -> None:
    r = client.post("/v1/references/window", json={"model": "m1", "name": "day0", "start": T0.isoformat(),
                                                   "end": (T0 + H).isoformat()})
    assert r.status_code == 200 and r.json()["rows"] == 800 and "x" in r.json()["features"]
    assert [x["name"] for x in client.get("/v1/references", params={"model": "m1"}).json()] == ["day0"]
    r = client.post("/v1/detectors/run", json={"model": "m1", "window_end": (T0 + 2 * H).isoformat(), "window_s": 3600,
                                               "reference": "day0", "config": {"drift": {"tests": {"psi": 0.1}}}})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["alerts"] >= 2
    psi = [x for x in body["results"] if x["test"] == "psi" and x["subject"] == "x"][0]
    assert psi["status"] == "alert" and psi["threshold"] == 0.1
    rows = client.get("/v1/detectors/results", params={"model": "m1", "test": "psi", "subject": "x"}).json()
    assert len(rows) == 1 and rows[0]["value"] == pytest.approx(psi["value"]) and rows[0]["run_id"] == body["run_id"]
    assert rows[0]["detail"]["current_n"] == 800
    assert client.get("/v1/detectors/results", params={"status": "alert", "detector": "drift"}).json()
    r = client.post("/v1/detectors/run", json={"model": "m1", "window_s": 3600, "reference": "day0",
                                               "config": {"drift": {"tests": {"nope": 1}}}})
    assert r.status_code == 422 and "unknown stat test" in r.text
    # a window ending where the store cannot go (schemathesis found a 500 here: the start overflowed)
    r = client.post("/v1/detectors/run", json={"model": "m1", "window_end": "0001-01-01T00:00:00", "window_s": 3600})
    assert r.status_code == 422 and "window_end" in r.text and "between 1971-01-01 and 2106-01-01" in r.text
    r = client.get("/v1/detectors/results", params={"model": "m1", "start": "9999-12-31T00:00:00"})
    assert r.status_code == 422 and "start" in r.text


def test_registry_route_and_legacy_psi(client: TestClient) -> None:
    tests = {t["name"]: t for t in client.get("/v1/detectors/tests").json()}
    assert tests["psi"]["default_threshold"] == 0.2 and tests["chisquare"]["alert_when"] == "below"
    rows = client.get("/v1/drift/psi", params={
        "model": "m1", "reference_start": T0.isoformat(), "reference_end": (T0 + H).isoformat(),
        "current_start": (T0 + H).isoformat(), "current_end": (T0 + 2 * H).isoformat()}).json()
    assert [(r["feature"], r["status"]) for r in rows] == [("x", "drift")]


def test_upload_parquet_and_csv_give_the_same_exact_counts(store: ChdbStore, tmp_path: Path) -> None:
    df = _baseline()
    df.to_parquet(tmp_path / "b.parquet")
    df.to_csv(tmp_path / "b.csv", index=False)
    p1 = upload_reference(store, "m1", "pq", str(tmp_path / "b.parquet"), prediction="pred", label="y", progress=False)
    p2 = upload_reference(store, "m1", "csv", str(tmp_path / "b.csv"), prediction="pred", label="y", progress=False,
                          batch_rows=500)
    for p in (p1, p2):
        fx = p.features["x"]
        x = df["x"].dropna().to_numpy()
        assert p.rows == len(df) and fx.n == len(x)
        assert fx.counts.tolist() == np.histogram(x, np.concatenate([[-np.inf], fx.edges, [np.inf]]))[0].tolist()
        assert p.features["plan"].kind == "categorical" and sum(p.features["plan"].category_counts) == len(df)
        assert p.features["@pred.label"].categories and p.features["@label.value"].n == len(df)
        assert "pred" not in p.features and "y" not in p.features
    assert p1.features["x"].counts.tolist() == p2.features["x"].counts.tolist()
    assert load_profile(store, "m1", "csv") is not None
    assert store.scalar("SELECT count() FROM {db}.reference_rows") == 0      # staging rows are deleted


def test_upload_route(client: TestClient, tmp_path: Path) -> None:
    _baseline(300).to_csv(tmp_path / "b.csv", index=False)
    with open(tmp_path / "b.csv", "rb") as f:
        r = client.post("/v1/references/upload", params={"model": "m1", "name": "train"},
                        files={"file": ("b.csv", f, "text/csv")})
    assert r.status_code == 200, r.text
    assert r.json()["rows"] == 300 and {"x", "plan", "pred"} <= set(r.json()["features"])


@EVIDENTLY_WARNINGS
def test_evidently_report_route(client: TestClient) -> None:
    r = client.get("/v1/reports/evidently", params={
        "model": "m1", "start": (T0 + H).isoformat(), "end": (T0 + 2 * H).isoformat(),
        "reference_start": T0.isoformat(), "reference_end": (T0 + H).isoformat(), "sample": 500})
    assert r.status_code == 200, r.text[:500]
    assert r.headers["content-type"].startswith("text/html") and "<html" in r.text.lower()
    r = client.get("/v1/reports/evidently", params={
        "model": "nobody", "start": (T0 + H).isoformat(), "end": (T0 + 2 * H).isoformat(),
        "reference_start": T0.isoformat(), "reference_end": (T0 + H).isoformat()})
    assert r.status_code == 422 and "no rows" in r.text


def test_cli_reference_upload(tmp_path: Path) -> None:
    _baseline(1000).to_parquet(tmp_path / "b.parquet")
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    out = subprocess.run([sys.executable, "-m", "driftline", "reference", str(tmp_path / "b.parquet"), "--model", "m9",
                          "--name", "train", "--prediction", "pred", "--store", str(tmp_path / "store")],
                         capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "reference 'train' of model 'm9': 1000 rows" in out.stdout
    assert "rows/s" in out.stderr or "100%" in out.stderr        # the tqdm progress bar
