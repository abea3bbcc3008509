"""Hostile ingest bodies against the ingest API (embedded mode, a fresh chDB store): time to the answer and
the process's peak RSS growth, one body per process so the peaks do not mix.

Bodies (each under the 10 MiB body cap):
- ``tiny``: a JSON array of 5.2M ``0`` items (issue #11: 413 after 44 s and 3.1 GB before events were
  counted while reading);
- ``empty_objects``: an envelope of 3M ``{}`` events;
- ``ndjson``: 1.2M NDJSON lines;
- ``deep``: a good event, one nested 1,000 levels, another good event (was a 500 that lost both).

    python -m bench.ingest_limits [--bodies tiny,empty_objects,ndjson,deep]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

BODIES = ("tiny", "empty_objects", "ndjson", "deep")


def _body(name: str) -> bytes:
    if name == "tiny":
        return b"[" + b"0," * 5_199_999 + b"0]"  # (built without a list: the peak is the request's)
    if name == "empty_objects":
        return b'{"schema_version": 1, "kind": "prediction", "events": [' + b"{}," * 2_999_999 + b"{}]}"
    if name == "ndjson":
        return b'{"a":1}\n' * 1_200_000
    if name == "deep":
        import datetime as dt

        ev = {"schema_version": 1, "event_id": "e1", "ts": dt.datetime.now(dt.UTC).isoformat(), "model": "m",
              "model_version": "v", "request_id": "r", "prediction": {"label": "y"}}
        good = json.dumps(ev).encode()
        return b"[" + good + b"," + b"[" * 1000 + b"]" * 1000 + b"," + good.replace(b'"e1"', b'"e2"') + b"]"
    raise ValueError(name)


def _one(name: str) -> None:
    from fastapi.testclient import TestClient

    from collector.migrations import migrate
    from collector.store import ChdbStore
    from driftline.config import Settings
    from driftline.server import all_migrations, create_app

    store = ChdbStore(tempfile.mkdtemp(prefix="driftline-bench-limits-"), database="bench")
    migrate(store, all_migrations())
    app = create_app(Settings(open_localhost=True, scheduler=False), store=store)
    body = _body(name)
    with TestClient(app, client=("127.0.0.1", 50000)) as c:
        c.post("/v1/predictions", json=[])  # warm the route
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t0 = time.perf_counter()
        r = c.post("/v1/predictions", content=body, headers={"Content-Type": "application/json"})
        took = time.perf_counter() - t0
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    detail = r.text[:100].replace("\n", " ")
    print(f"ingest_limits body={name} bytes={len(body)} status={r.status_code} seconds={took:.3f} "
          f"peak_rss_growth_mb={(peak - before) / 1024:.0f} answer={detail}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bodies", default=",".join(BODIES))
    ap.add_argument("--one", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one:
        _one(a.one)
        return
    for name in a.bodies.split(","):
        subprocess.run([sys.executable, "-m", "bench.ingest_limits", "--one", name], check=False,
                       cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


if __name__ == "__main__":
    main()
