"""Limits before work (issue 11 findings 5 and 6): headers, key length, the key cache, authentication before
the body, body caps on every route, upload caps, YAML alias expansion and the Evidently sample."""

from __future__ import annotations

import asyncio
import datetime as _dt
import io
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from collector.auth import KeyStore
from collector.store import ChdbStore
from driftline.config import Settings
from driftline.server import create_app
from tests import factories as f
from tests.detector_data import T0, insert_predictions

BOMB = """a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


def test_limits_are_settings_read_from_the_environment() -> None:
    s = Settings.from_env({"DRIFTLINE_MAX_BODY_BYTES": "2_048", "DRIFTLINE_MAX_UPLOAD_COLUMNS": "10"})
    assert s.max_body_bytes == 2048 and s.max_upload_columns == 10 and s.max_key_chars == 256
    with pytest.raises(ValueError, match="DRIFTLINE_MAX_HEADER_BYTES"):
        Settings.from_env({"DRIFTLINE_MAX_HEADER_BYTES": "lots"})
    with pytest.raises(ValueError, match="must be positive"):
        Settings.from_env({"DRIFTLINE_MAX_REPORT_CELLS": "0"})


def test_failed_key_lookups_are_bounded(store: ChdbStore) -> None:
    keys = KeyStore(store, cache_entries=8, max_key_chars=100)
    good = keys.create(scope="read", models=("m1",))
    for i in range(100):
        assert keys.verify(f"dl_{i:012x}_secret") is None
    assert len(keys._cache) <= 8
    verified = keys.verify(good)
    assert verified is not None and verified.models == ("m1",)

    def no_lookup(*_a: Any, **_k: Any) -> None:
        raise AssertionError("a key of the wrong shape or length must not reach the store")

    keys._row = no_lookup  # type: ignore[method-assign]
    for bad in ("dl_" + "a" * 200 + "_x", "x" * 100_000, "dl__x", "dl_ZZ_x", "dl_ab_" + "é" * 10):
        assert keys.verify(bad) is None


def _call(app: Any, method: str, path: str, headers: list[tuple[bytes, bytes]]) -> tuple[int, bool]:
    """Call the ASGI app directly; answer (status, whether the app asked for the body)."""
    read = False
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal read
        read = True
        return {"type": "http.request", "body": b"x" * 65536, "more_body": True}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "path": path,
             "raw_path": path.encode(), "query_string": b"", "headers": headers, "client": ("10.0.0.1", 5000),
             "server": ("testserver", 80), "scheme": "http", "root_path": ""}
    asyncio.run(app(scope, receive, send))
    return status, read


def test_no_body_is_read_before_authentication(store: ChdbStore) -> None:
    app = create_app(Settings(scheduler=False), store=store)
    admin = app.state.keys.create(scope="admin")
    reader = app.state.keys.create(scope="read")
    big = [(b"content-type", b"application/json"), (b"content-length", b"104857600")]
    for path in ("/v1/keys", "/v1/predictions", "/v1/slo/validate", "/v1/references/upload", "/v1/detectors/run"):
        assert _call(app, "POST", path, big) == (401, False), path
        assert _call(app, "POST", path, [*big, (b"x-api-key", b"dl_" + b"a" * 100_000)]) == (431, False), path
        assert _call(app, "POST", path, [*big, (b"x-api-key", b"dl_" + b"a" * 1000)]) == (401, False), path
        assert _call(app, "POST", path, [*big, (b"x-api-key", b"dl_0123456789ab_nope")]) == (401, False), path
    # a known key with too low a scope, or a declared size over the cap: refused before reading as well
    assert _call(app, "POST", "/v1/keys", [*big, (b"x-api-key", reader.encode())]) == (403, False)
    assert _call(app, "POST", "/v1/keys", [*big, (b"x-api-key", admin.encode())]) == (413, False)
    assert _call(app, "POST", "/v1/predictions", [*big, (b"x-api-key", admin.encode())]) == (413, False)


def test_header_and_key_length_caps(store: ChdbStore) -> None:
    app = create_app(Settings(scheduler=False, max_header_bytes=4096), store=store)
    with TestClient(app) as c:
        r = c.get("/v1/counts", headers={"X-Padding": "p" * 5000})
        assert r.status_code == 431 and "4096" in r.json()["detail"]
        r = c.get("/v1/counts", headers={"X-API-Key": "dl_" + "a" * 3000})
        assert r.status_code == 401 and "longer than 256 characters" in r.json()["detail"]


def test_every_body_is_capped_declared_or_streamed(store: ChdbStore) -> None:
    app = create_app(Settings(scheduler=False, max_body_bytes=1000, max_ingest_bytes=5000), store=store)
    admin = {"X-API-Key": app.state.keys.create(scope="admin")}

    def chunks(n: int) -> Any:
        for _ in range(n):
            yield b"[" + b" " * 510 + b"]"

    with TestClient(app) as c:
        r = c.post("/v1/keys", content=b"{" + b" " * 2000 + b"}", headers={**admin, "Content-Type": "application/json"})
        assert r.status_code == 413 and "limit of 1000" in r.json()["detail"]
        for path in ("/v1/keys", "/v1/slo/validate", "/v1/slo/silences", "/v1/detectors/run"):
            r = c.post(path, content=chunks(4), headers=admin)  # chunked: no Content-Length
            assert r.status_code == 413 and "limit of 1000" in r.json()["detail"], path
        r = c.post("/v1/predictions", content=chunks(20), headers=admin)
        assert r.status_code == 413 and "limit of 5000" in r.json()["detail"]
        ok = c.post("/v1/predictions", json=[f.prediction(1)], headers=admin)
        assert ok.status_code == 200 and ok.json()["accepted"] == 1


def test_yaml_alias_bomb_is_refused(store: ChdbStore) -> None:
    app = create_app(Settings(scheduler=False), store=store)
    admin = {"X-API-Key": app.state.keys.create(scope="read"), "Content-Type": "application/yaml"}
    with TestClient(app) as c:
        r = c.post("/v1/slo/validate", content=BOMB, headers=admin)
        assert r.status_code == 422
        assert "more than 100000 YAML nodes" in r.json()["detail"][0]["message"]
        r = c.post("/v1/slo/validate", content="[" * 50_000, headers=admin)
        assert r.status_code == 422 and "nested too deeply" in r.json()["detail"][0]["message"]


def _parquet(cols: dict[str, list[Any]]) -> bytes:
    buf = io.BytesIO()
    pq.write_table(pa.table(cols), buf)
    return buf.getvalue()


def test_upload_caps_and_bad_files(store: ChdbStore) -> None:
    app = create_app(Settings(scheduler=False, max_upload_bytes=20_000, max_upload_rows=100, max_upload_columns=5),
                     store=store)
    w = {"X-API-Key": app.state.keys.create(scope="write", models=("m1",))}
    q = {"model": "m1", "name": "train"}

    def up(name: str, data: bytes) -> Any:
        return c.post("/v1/references/upload", params=q, files={"file": (name, data)}, headers=w)

    with TestClient(app) as c:
        r = up("ok.csv", b"a,b,c\n" + b"1,2,x\n" * 50)
        assert r.status_code == 200 and r.json()["rows"] == 50 and r.json()["features"] == ["a", "b", "c"]
        r = up("big.csv", b"a\n" + b"1\n" * 15_000)
        assert r.status_code == 413 and "limit of 20000" in r.json()["detail"]
        r = up("rows.csv", b"a\n" + b"1\n" * 101)
        assert r.status_code == 422 and "rows" in r.json()["detail"] and "100" in r.json()["detail"]
        r = up("rows.parquet", _parquet({"a": list(range(101))}))
        assert r.status_code == 422 and "rows" in r.json()["detail"]
        r = up("wide.csv", b",".join(b"c%d" % i for i in range(6)) + b"\n" + b",".join(b"1" for _ in range(6)) + b"\n")
        assert r.status_code == 422 and "6 columns is over the limit of 5" in r.json()["detail"]
        r = up("wide.parquet", _parquet({f"c{i}": [1.0] for i in range(6)}))
        assert r.status_code == 422 and "columns" in r.json()["detail"]
        r = up("dup.csv", b"a,b,a\n1,2,3\n")
        assert r.status_code == 422 and "'a' appear more than once" in r.json()["detail"]
        r = up("fake.parquet", b"PAR1 this is not parquet at all")
        assert r.status_code == 422 and "Parquet" in r.json()["detail"]
        r = up("ragged.csv", b"a,b\n1,2\n3\n")
        assert r.status_code == 422
        for bad in (up("fake.parquet", b"nope"), up("ragged.csv", b"a,b\n1,2\n3\n"), up("x.exe", b"a\n1\n")):
            assert bad.status_code == 422
            assert "/tmp" not in bad.text and "driftline-upload" not in bad.text, bad.text
        r = c.post("/v1/references/upload", params=q, headers=w)
        assert r.status_code == 422 and "file" in r.json()["detail"]
        # a failed upload leaves no staged rows behind
        assert store.scalar("SELECT count() FROM {db}.reference_rows") == 0


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning")
def test_evidently_sample_times_features_is_capped(store: ChdbStore) -> None:
    insert_predictions(store, start=T0, seconds=600, features=[{"x": float(i), "y": 1.0, "z": "a"} for i in range(40)])
    app = create_app(Settings(scheduler=False, max_report_cells=100), store=store)
    r_key = {"X-API-Key": app.state.keys.create(scope="read")}
    p: dict[str, Any] = {"model": "m1", "start": T0.isoformat(), "end": (T0 + _dt.timedelta(hours=1)).isoformat(),
         "reference_start": T0.isoformat(), "reference_end": (T0 + _dt.timedelta(hours=1)).isoformat(), "sample": 40}
    with TestClient(app) as c:
        r = c.get("/v1/reports/evidently", params=p, headers=r_key)
        assert r.status_code == 422
        assert "40 rows x 3 features" in r.json()["detail"] and "limit of 100 cells" in r.json()["detail"]
        assert "sample <= 16" in r.json()["detail"]
