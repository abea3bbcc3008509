"""The ``driftline`` command."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

__all__ = ["main"]


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from driftline.config import Settings
    from driftline.server import create_app

    settings = Settings.from_env(store_url=args.store, host=args.host, port=args.port,
                                 kafka_bootstrap=args.kafka)
    print(f"driftline: opening store {settings.store_url} and applying migrations ...", flush=True)
    app = create_app(settings)
    print(f"driftline: serving on http://{settings.host}:{settings.port} (API docs at /docs)", flush=True)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=args.log_level)
    return 0


def _schema(args: argparse.Namespace) -> int:
    from serving_shim.contract import json_schema

    print(json.dumps(json_schema(args.kind), indent=2))
    return 0


def _migrate(args: argparse.Namespace) -> int:
    from driftline.config import Settings
    from driftline.server import all_migrations
    from collector.migrations import migrate
    from collector.store import open_store

    settings = Settings.from_env(store_url=args.store)
    store = open_store(settings.store_url, database=settings.database)
    applied = migrate(store, all_migrations())
    for m in applied:
        print(f"applied {m.component}#{m.number:04d} {m.name}")
    print(f"driftline: {len(applied)} migrations applied, store {store.engine} {store.server_version()}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from driftline.demo import run_demo

    return run_demo(duration_s=args.duration, port=args.port, store=args.store, rate=args.rate)


def _reference_upload(args: argparse.Namespace) -> int:
    from detectors.cli import reference_upload

    return reference_upload(args)


def _report(args: argparse.Namespace) -> int:
    from detectors.cli import report

    return report(args)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="driftline", description="ML observability and drift monitoring.")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="run the ingest/query API with the embedded store (or Kafka with --kafka)")
    s.add_argument("--store", default=None, help="chDB path or clickhouse://host:9000 (default .driftline)")
    s.add_argument("--host", default=None)
    s.add_argument("--port", type=int, default=None)
    s.add_argument("--kafka", default=None, help="bootstrap servers: ingest produces to Kafka (scale mode)")
    s.add_argument("--log-level", default="warning")
    s.set_defaults(fn=_serve)

    s = sub.add_parser("schema", help="print the event contract as JSON Schema")
    s.add_argument("--kind", choices=["prediction", "label", "metric_window", "deploy"], default=None)
    s.set_defaults(fn=_schema)

    s = sub.add_parser("migrate", help="apply schema migrations to the store")
    s.add_argument("--store", default=None)
    s.set_defaults(fn=_migrate)

    s = sub.add_parser("demo", help="serve on a fresh embedded store and send it model traffic with a drift")
    s.add_argument("--duration", type=float, default=0, help="stop after this many seconds (0: until Ctrl-C)")
    s.add_argument("--port", type=int, default=8765)
    s.add_argument("--store", default=".driftline-demo")
    s.add_argument("--rate", type=float, default=200, help="predictions per second")
    s.set_defaults(fn=_demo)

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


if __name__ == "__main__":
    sys.exit(main())
