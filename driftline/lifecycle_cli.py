"""``driftline deploy``, ``driftline canary`` and ``driftline cost``: the model lifecycle from the command line.

Each works on a running server (``--api URL``, key from ``--api-key`` or ``$DRIFTLINE_API_KEY``) or on a
store no server holds (``--store``), since a chDB path is owned by one process.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import uuid
from collections.abc import Callable
from typing import Any

from collector.cli_support import api_call, safe, where_options

__all__ = ["register"]

OpenStore = Callable[[str | None], Any]


def _time(v: str) -> _dt.datetime:
    try:
        t = _dt.datetime.fromisoformat(v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{v!r} is not an ISO 8601 time") from None
    return t if t.tzinfo else t.replace(tzinfo=_dt.UTC)


def _annotation(v: str) -> tuple[str, str]:
    k, sep, val = v.partition("=")
    if not sep or not k:
        raise argparse.ArgumentTypeError(f"{v!r}: give KEY=VALUE")
    return k, val


def register(sub: Any, *, open_store: OpenStore) -> None:
    p = sub.add_parser("deploy", help="record a deploy: the version expected to serve (version-drift alerts, markers)")
    p.add_argument("model")
    p.add_argument("version")
    p.add_argument("--environment", default="",
                   help="the environment it serves (expected versions are per environment)")
    p.add_argument("--role", choices=["canary", "shadow"], default=None,
                   help="a canary or shadow beside the expected version (does not replace it)")
    p.add_argument("--annotation", "-a", action="append", type=_annotation, default=[], metavar="KEY=VALUE")
    p.add_argument("--at", type=_time, default=None, help="deploy time (ISO 8601; default now)")
    where_options(p)
    p.set_defaults(fn=safe(lambda a: _deploy(a, open_store)))

    p = sub.add_parser("canary", help="compare a candidate version with a baseline: promote, hold or rollback")
    p.add_argument("model")
    p.add_argument("--baseline", required=True)
    p.add_argument("--candidate", required=True)
    p.add_argument("--mode", choices=["canary", "shadow"], default="canary",
                   help="canary: split traffic; shadow: the same requests scored twice (joined by request_id)")
    p.add_argument("--minutes", type=int, default=60, help="the period: the last N minutes")
    p.add_argument("--alpha", type=float, default=0.05)
    p.add_argument("--power", type=float, default=0.8)
    p.add_argument("--json", action="store_true", help="print the whole verdict as JSON")
    where_options(p)
    p.set_defaults(fn=safe(lambda a: _canary(a, open_store)))

    p = sub.add_parser("cost", help="cost per 1,000 inferences over time, per version (cost models from settings)")
    p.add_argument("model")
    p.add_argument("--minutes", type=int, default=1440)
    p.add_argument("--step", type=int, default=3600, help="seconds per point")
    where_options(p)
    p.set_defaults(fn=safe(lambda a: _cost(a, open_store)))


def _deploy(a: argparse.Namespace, open_store: OpenStore) -> int:
    annotations = dict(a.annotation)
    if a.environment:
        annotations["environment"] = a.environment
    if a.role:
        annotations["role"] = a.role
    annotations.setdefault("by", f"cli:{os.environ.get('USER', '')}")
    at = a.at or _dt.datetime.now(_dt.UTC)
    event = {"schema_version": 1, "event_id": f"deploy-{uuid.uuid4().hex}", "model": a.model,
             "model_version": a.version, "ts": at.isoformat(), "annotations": annotations}
    if a.api:
        out = api_call(a, "POST", "/v1/deploys", body=[event])
        if out.get("rejected"):
            raise ValueError(json.dumps(out["rejected"]))
    else:
        from collector.writer import EventWriter
        from serving_shim.contract import DeployEvent

        try:
            ev = DeployEvent.model_validate(event)
        except Exception as exc:  # pydantic names the field and the reason
            raise ValueError(str(exc)) from None
        EventWriter(open_store(a.store)).write("deploy", [ev])
    print(json.dumps(event))
    return 0


def _canary(a: argparse.Namespace, open_store: OpenStore) -> int:
    params = {"model": a.model, "baseline": a.baseline, "candidate": a.candidate, "mode": a.mode,
              "minutes": a.minutes, "alpha": a.alpha, "power": a.power}
    if a.api:
        out = api_call(a, "GET", "/v1/canary", params=params)
    else:
        from detectors.canary import compare

        end = _dt.datetime.now(_dt.UTC)
        out = compare(open_store(a.store), a.model, a.baseline, a.candidate,
                      start=end - _dt.timedelta(minutes=a.minutes),
                      end=end, mode=a.mode, alpha=a.alpha, power=a.power).as_dict()
    if a.json:
        print(json.dumps(out, indent=2, default=str))
    else:
        print(f"{out['verdict'].upper()}: {out['reason']}")
        for c in out["checks"]:
            print(f"  {c['name']:<24} {c['outcome']:<12} {c['summary']}")
        if out.get("samples_needed"):
            print(f"  samples still needed per version: {out['samples_needed']}")
    return 0 if out["verdict"] != "rollback" else 3


def _cost(a: argparse.Namespace, open_store: OpenStore) -> int:
    params = {"model": a.model, "minutes": a.minutes, "step_s": a.step}
    if a.api:
        rows = api_call(a, "GET", "/v1/cost", params=params)
    else:
        from collector.cost import cost_series, load_cost_models
        from driftline.config import Settings

        end = _dt.datetime.now(_dt.UTC)
        models = load_cost_models(Settings.from_env().cost_models)
        rows = [r.as_dict() for r in cost_series(open_store(a.store), a.model, models.get(a.model),
                                                 start=end - _dt.timedelta(minutes=a.minutes), end=end, step_s=a.step)]
    for r in rows:
        print(json.dumps(r, default=str))
    return 0
