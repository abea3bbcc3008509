"""Where an idle ``driftline collect`` process's memory goes, on a chDB store and on a ClickHouse server.

Each figure comes from a fresh process: ``--child`` runs the real ``driftline collect`` command (``main``
of the CLI) against the broker, waits ``--idle`` seconds with nothing to consume, then prints its resident
memory (``VmRSS``; anonymous and file-backed parts from ``/proc/self/status``) and which heavy modules
it loaded, and stops itself with SIGTERM (the clean path). A second child imports the pieces one by one
to show what each adds.

    python -m bench.collector_memory --kafka 127.0.0.1:9092 [--clickhouse 127.0.0.1:9000] [--idle 10]

Debian's ClickHouse server here is 18.16, which the store refuses (it needs 24.1): for this measurement
only, ``--old-server-ok`` lowers that gate and skips the migrations (their SQL is 24.x). An idle collector
sends the store no query after start, so what is measured is the process a real server would host.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collector.migrations import Migration
    from collector.store import Store
    from driftline.config import Settings

HEAVY = ("chdb", "pandas", "evidently", "scipy", "sklearn", "fastapi", "uvicorn", "streamlit", "detectors.drift_sql",
         "slo_engine.engine", "httpx", "numpy", "pyarrow", "clickhouse_driver", "kafka", "msgspec", "pydantic")


def _mem() -> dict[str, float]:
    out: dict[str, float] = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            key, _, val = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile", "RssShmem"):
                out[key] = round(int(val.split()[0]) / 1024, 1)
    return out


def _child(store: str, kafka: str, idle_s: float, old_server_ok: bool) -> None:
    from driftline import cli

    if old_server_ok:
        import collector.store
        import driftline.collect

        collector.store.MIN_SERVER_VERSION = (18, 0)
        def open_without_migrating(settings: Settings, extra: Iterable[Migration] = ()) -> Store:
            return collector.store.open_store(settings.store_url, database=settings.database)

        driftline.collect.open_and_migrate = open_without_migrating
    prefix = f"membench{uuid.uuid4().hex[:8]}"
    result: dict[str, object] = {}

    def _probe() -> None:
        while signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:   # the collector is not consuming yet
            time.sleep(0.1)
        time.sleep(idle_s)
        result.update(_mem())
        result["modules"] = [m for m in HEAVY if m in sys.modules]
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=_probe, daemon=True).start()
    cli.main(["collect", "--store", store, "--kafka", kafka, "--topic-prefix", prefix, "--group", f"{prefix}-g",
              "--instance-id", "none"])
    print("RESULT " + json.dumps(result), flush=True)


def _steps(store: str) -> None:
    """What each piece adds, in the order the collector loads them."""
    import importlib

    rows = [("interpreter", _mem()["VmRSS"])]
    for mod in ("pydantic", "serving_shim.contract", "numpy", "pyarrow", "kafka", "collector.consumer",
                "driftline.collect", "clickhouse_driver", "chdb"):
        importlib.import_module(mod)
        rows.append((f"import {mod}", _mem()["VmRSS"]))
    if not store.startswith("clickhouse"):
        from collector.store import open_store

        open_store(store, database="driftline")
        rows.append(("open the chDB store", _mem()["VmRSS"]))
    print("RESULT " + json.dumps(rows), flush=True)


def _run(args: list[str]) -> Any:
    out = subprocess.run([sys.executable, "-m", "bench.collector_memory", *args], capture_output=True, text=True,
                         timeout=180)
    for line in out.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"child failed ({out.returncode}): {out.stderr[-3000:]}")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--kafka", default=os.environ.get("DRIFTLINE_KAFKA", "127.0.0.1:9092"))
    p.add_argument("--clickhouse", default="", help="host:port of a ClickHouse server (native protocol)")
    p.add_argument("--idle", type=float, default=10.0)
    p.add_argument("--old-server-ok", action="store_true")
    p.add_argument("--child", default="")
    p.add_argument("--steps", default="")
    a = p.parse_args()
    if a.child:
        _child(a.child, a.kafka, a.idle, a.old_server_ok)
        return
    if a.steps:
        _steps(a.steps)
        return
    stores = [("chdb", tempfile.mkdtemp(prefix="driftline-membench-"))]
    if a.clickhouse:
        stores.append(("clickhouse", f"clickhouse://{a.clickhouse}/driftline"))
    for name, url in stores:
        extra = ["--old-server-ok"] if name == "clickhouse" and a.old_server_ok else []
        idle = _run(["--child", url, "--kafka", a.kafka, "--idle", str(a.idle), *extra])
        print(f"{name}: idle collector after {a.idle:.0f}s: {json.dumps(idle)}")
    for step, rss in _run(["--steps", stores[0][1]]):
        print(f"  {step:<28} RSS {rss:7.1f} MB")


if __name__ == "__main__":
    main()
