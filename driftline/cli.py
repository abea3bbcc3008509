"""The ``driftline`` command."""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collector.store import Store

__all__ = ["main"]


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from driftline.config import Settings
    from driftline.server import create_app

    settings = Settings.from_env(store_url=args.store, host=args.host, port=args.port,
                                 kafka_bootstrap=args.kafka, open_localhost=args.open_localhost or None,
                                 slo_files=",".join(args.slo) if args.slo else None, redaction=args.redaction,
                                 raw_dead_letters=args.raw_dead_letters or None)
    from slo_engine.exceptions import SloEngineError

    print(f"driftline: opening store {settings.store_display} and applying migrations ...", flush=True)
    try:
        app = create_app(settings)
    except (SloEngineError, ValueError) as exc:   # a refused webhook URL, a bad SLO file, a missing secret
        print(f"driftline serve: cannot start: {exc}", file=sys.stderr, flush=True)
        return 2
    keys = app.state.keys
    if not keys.has_admin():
        key = keys.create(scope="admin", name="bootstrap", actor="system:serve")
        print("driftline: no admin API key existed, so one was created. It is shown this once; keep it:\n"
              f"    {key}\n  create scoped keys with POST /v1/keys (X-API-Key: <admin key>)", flush=True)
    if settings.open_localhost:
        print("driftline: requests from 127.0.0.1 need no API key (--open-localhost)", flush=True)
    print(f"driftline: serving on http://{settings.host}:{settings.port} (API docs at /docs)", flush=True)
    # h11 refuses a request whose headers pass the limit before any of it reaches the app (httptools has no limit)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=args.log_level, http="h11",
                h11_max_incomplete_event_size=settings.max_header_bytes)
    return 0


def _schema(args: argparse.Namespace) -> int:
    from serving_shim.contract import json_schema

    print(json.dumps(json_schema(args.kind), indent=2))
    return 0


def _migrate(args: argparse.Namespace) -> int:
    from collector.migrations import migrate
    from collector.store import open_store
    from driftline.config import Settings
    from driftline.migrations import all_migrations

    settings = Settings.from_env(store_url=args.store)
    store = open_store(settings.store_url, database=settings.database)
    applied = migrate(store, all_migrations())
    for m in applied:
        print(f"applied {m.component}#{m.number:04d} {m.name}")
    print(f"driftline: {len(applied)} migrations applied, store {store.engine} {store.server_version()}")
    return 0


def _collect(args: argparse.Namespace) -> int:
    import logging

    from driftline.collect import run_collector
    from driftline.config import Settings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = Settings.from_env(store_url=args.store, kafka_bootstrap=args.kafka, topic_prefix=args.topic_prefix,
                                 redaction=args.redaction, raw_dead_letters=args.raw_dead_letters or None)
    return run_collector(settings, group_id=args.group, metrics_port=args.metrics_port,
                         batch_max_events=args.batch_events, batch_max_s=args.batch_seconds,
                         instance_id=args.instance_id or os.environ.get("DRIFTLINE_COLLECTOR_INSTANCE_ID"),
                         session_timeout_s=args.session_timeout)


def _open_migrated(store_url: str | None) -> Store:
    from driftline.config import Settings
    from driftline.migrations import open_and_migrate

    return open_and_migrate(Settings.from_env(store_url=store_url))


def _keys(args: argparse.Namespace) -> int:
    from collector.audit import cli_actor
    from collector.auth import KeyStore

    keys = KeyStore(_open_migrated(args.store))
    if args.action == "create":
        models = tuple(m for m in (args.models or "").split(",") if m)
        print(keys.create(scope=args.scope, name=args.name, models=models, actor=cli_actor()))
    elif args.action == "list":
        for k in keys.list():
            print(f"{k['key_id']}  {k['scope']:<5}  {'revoked' if k['revoked'] else 'active ':<7}  "
                  f"models={','.join(k['models']) or '*'}  {k['name']}")
    else:
        if not args.key_id:
            raise SystemExit("key_id: name the key to revoke")
        print("revoked" if keys.revoke(args.key_id, actor=cli_actor()) else f"no key {args.key_id!r}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from driftline.demo import run_demo

    return run_demo(duration_s=args.duration, port=args.port, store=args.store, rate=args.rate,
                    dashboard=not args.no_dashboard, dashboard_port=args.dashboard_port)


def _dashboard(args: argparse.Namespace) -> int:
    import os
    import subprocess
    from pathlib import Path

    import dashboard

    app = Path(dashboard.__file__).resolve().parent / "app.py"
    env = {**os.environ, "DRIFTLINE_API": args.api or os.environ.get("DRIFTLINE_API", "http://127.0.0.1:8000")}
    if args.api_key:
        env["DRIFTLINE_API_KEY"] = args.api_key
    cmd = [sys.executable, "-m", "streamlit", "run", str(app), "--server.port", str(args.port),
           "--server.address", args.host, "--server.headless", "true" if args.headless else "false",
           "--browser.gatherUsageStats", "false"]
    print(f"driftline: dashboard on http://{args.host}:{args.port} reading {env['DRIFTLINE_API']}", flush=True)
    return subprocess.call(cmd, env=env)


def _reference_upload(args: argparse.Namespace) -> int:
    from detectors.cli import reference_upload

    return reference_upload(args, _open_migrated)


def _report(args: argparse.Namespace) -> int:
    from detectors.cli import report

    return report(args, _open_migrated)


def _redaction_args(s: argparse.ArgumentParser) -> None:
    s.add_argument("--redaction", default=None, metavar="SPEC",
                   help="server-side redaction of ingested events: 'off', inline JSON or a JSON/YAML file "
                        "(the SDK's Redaction spec; salt in $DRIFTLINE_REDACTION_SALT; default: pattern recognizers)")
    s.add_argument("--raw-dead-letters", action="store_true",
                   help="keep dead letters' raw bytes (default: a redacted copy and the sha256 of the original)")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="driftline", description="ML observability and drift monitoring.")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="run the ingest/query API with the embedded store (or Kafka with --kafka)")
    s.add_argument("--store", default=None, help="chDB path or clickhouse://host:9000 (default .driftline)")
    s.add_argument("--host", default=None)
    s.add_argument("--port", type=int, default=None)
    s.add_argument("--kafka", default=None, help="bootstrap servers: ingest produces to Kafka (scale mode)")
    s.add_argument("--log-level", default="warning")
    s.add_argument("--open-localhost", action="store_true",
                   help="let requests from 127.0.0.1 in without an API key (embedded mode, one machine)")
    s.add_argument("--slo", action="append", default=[], metavar="FILE",
                   help="SLO spec file (version: driftline/v1); repeat for more")
    _redaction_args(s)
    s.set_defaults(fn=_serve)

    s = sub.add_parser("schema", help="print the event contract as JSON Schema")
    s.add_argument("--kind", choices=["prediction", "label", "metric_window", "deploy"], default=None)
    s.set_defaults(fn=_schema)

    s = sub.add_parser("migrate", help="apply schema migrations to the store")
    s.add_argument("--store", default=None)
    s.set_defaults(fn=_migrate)

    s = sub.add_parser("collect", help="consume the Kafka event topics into the store (a consumer-group worker)")
    s.add_argument("--store", default=None, help="chDB path or clickhouse://host:9000")
    s.add_argument("--kafka", default=None, help="bootstrap servers (default $DRIFTLINE_KAFKA_BOOTSTRAP)")
    s.add_argument("--topic-prefix", default=None)
    s.add_argument("--group", default="driftline-collector")
    s.add_argument("--metrics-port", type=int, default=0, help="serve Prometheus metrics on 127.0.0.1:PORT")
    s.add_argument("--batch-events", type=int, default=50_000,
                   help="store and commit after this many events (or --batch-seconds)")
    s.add_argument("--batch-seconds", type=float, default=1.0)
    s.add_argument("--instance-id", default=None,
                   help="static group member id (default $DRIFTLINE_COLLECTOR_INSTANCE_ID, else 'auto': <host>-<slot>; "
                        "'none' for a dynamic member)")
    s.add_argument("--session-timeout", type=float, default=6.0,
                   help="seconds without a heartbeat before a member's partitions move to the others (6 to 1800)")
    _redaction_args(s)
    s.set_defaults(fn=_collect)

    s = sub.add_parser("keys", help="API keys on a store the server is not holding (else use POST /v1/keys)")
    s.add_argument("action", choices=["create", "list", "revoke"])
    s.add_argument("key_id", nargs="?")
    s.add_argument("--store", default=None)
    s.add_argument("--scope", choices=["read", "write", "admin"], default="read")
    s.add_argument("--models", default="", help="comma-separated models the key is limited to (default: all)")
    s.add_argument("--name", default="")
    s.set_defaults(fn=_keys)

    s = sub.add_parser("demo", help="serve on a fresh embedded store and send it model traffic with a drift")
    s.add_argument("--duration", type=float, default=0, help="stop after this many seconds (0: until Ctrl-C)")
    s.add_argument("--port", type=int, default=8765)
    s.add_argument("--store", default=".driftline-demo")
    s.add_argument("--rate", type=float, default=200, help="predictions per second")
    s.add_argument("--no-dashboard", action="store_true", help="do not start the Streamlit dashboard")
    s.add_argument("--dashboard-port", type=int, default=8501)
    s.set_defaults(fn=_demo)

    s = sub.add_parser("dashboard", help="run the Streamlit dashboard against a running query API")
    s.add_argument("--api", default=None, help="query API base URL (default $DRIFTLINE_API or http://127.0.0.1:8000)")
    s.add_argument("--api-key", default=None, help="sent as X-API-Key (default $DRIFTLINE_API_KEY)")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8501)
    s.add_argument("--headless", action="store_true", help="do not open a browser")
    s.set_defaults(fn=_dashboard)

    from slo_engine.cli import register as register_slo

    register_slo(sub, open_store=_open_migrated)

    from driftline.lifecycle_cli import register as register_lifecycle

    register_lifecycle(sub, open_store=_open_migrated)

    from driftline.governance import register as register_governance

    register_governance(sub, open_store=_open_migrated)

    from detectors.cli import add_report_args, add_upload_args

    s = sub.add_parser("reference", help="upload a training baseline (CSV or Parquet) as a reference profile")
    add_upload_args(s)
    s.set_defaults(fn=_reference_upload)

    s = sub.add_parser("report", help="write an Evidently HTML drift report for a model and window")
    add_report_args(s)
    s.set_defaults(fn=_report)

    args = p.parse_args(argv)
    try:
        return int(args.fn(args))
    except KeyboardInterrupt:
        return 130
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in _PLATFORM_MODULES:
            raise
        print(f"driftline {args.command}: needs the platform, not only the SDK ({exc.name} is not installed): "
              "pip install 'driftline[server]'", file=sys.stderr)
        return 2


#: Top-level modules of the ``server`` extra: a command that needs one says which install it needs.
_PLATFORM_MODULES = frozenset({"chdb", "clickhouse_driver", "pyarrow", "numpy", "pandas", "scipy", "fastapi",
                               "uvicorn", "yaml", "tqdm", "evidently", "streamlit", "plotly", "starlette"})


def run() -> None:
    """The ``driftline`` command: :func:`main`, then leave without chDB's global shutdown.

    chDB 4.4 can crash in its C++ global shutdown at interpreter exit, after the command has finished
    and everything is stored (seen now and then as a segmentation fault). Once the command is done and
    no other thread is left to wait for, the exit handlers run (the SDK's flush among them), the
    streams are flushed and the process leaves with the command's status, skipping that teardown.
    """
    code = main()
    others = [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon and t.is_alive()]
    if "chdb" not in sys.modules or others:
        sys.exit(code)
    import atexit

    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (driftline ... | head): nothing more can be said
            pass
    os._exit(code)


if __name__ == "__main__":
    run()
