"""``driftline slo ...`` and ``driftline silence ...``: registered into the ``driftline`` command by
``driftline.cli`` with :func:`register`, which hands in how to open the store (the composition root
knows the settings). With ``--api URL`` silences go through a running server's API instead, since a
chDB path is owned by one process."""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import sys
from collections.abc import Callable
from typing import Any

import yaml

from collector.audit import cli_actor
from collector.cli_support import api_call, safe, where_options
from collector.store import Store
from slo_engine.exceptions import SloEngineError, SpecError
from slo_engine.rules import alert_rules, rules_document
from slo_engine.spec import load_specs, parse_duration

__all__ = ["register"]

OpenStore = Callable[[str | None], Store]


def register(sub: Any, *, open_store: OpenStore) -> None:
    """Add the ``slo`` and ``silence`` subcommands to an argparse subparsers object."""
    slo = sub.add_parser("slo", help="SLO specs: validate, show the generated rules, evaluate").add_subparsers(
        dest="slo_command", required=True)
    p = slo.add_parser("validate", help="validate SLO spec files; problems are listed with their lines")
    p.add_argument("files", nargs="+")
    p.add_argument("--rules", action="store_true", help="print the normalised specs and generated rules (YAML)")
    p.set_defaults(fn=safe(_validate, SloEngineError))
    p = slo.add_parser("status", help="evaluate spec files against the store now")
    p.add_argument("files", nargs="+")
    p.add_argument("--store", default=None)
    p.set_defaults(fn=safe(lambda a: _status(a, open_store), SloEngineError))

    sil = sub.add_parser("silence", help="silence SLO alerts (maintenance, retraining)").add_subparsers(
        dest="silence_command", required=True)
    p = sil.add_parser("add", help="create a silence; at least one matcher")
    for m in ("slo", "model", "model-version", "severity"):
        p.add_argument(f"--{m}", default=None)
    p.add_argument("--duration", required=True, help="like 2h or 30m")
    p.add_argument("--by", default="", help="who")
    p.add_argument("--comment", default="")
    where_options(p)
    p.set_defaults(fn=safe(lambda a: _silence_add(a, open_store), SloEngineError))
    p = sil.add_parser("list", help="list active silences")
    p.add_argument("--all", action="store_true", help="include expired ones")
    where_options(p)
    p.set_defaults(fn=safe(lambda a: _silence_list(a, open_store), SloEngineError))
    p = sil.add_parser("expire", help="expire a silence now")
    p.add_argument("id")
    where_options(p)
    p.set_defaults(fn=safe(lambda a: _silence_expire(a, open_store), SloEngineError))


def _validate(a: argparse.Namespace) -> int:
    bad = 0
    for f in a.files:
        try:
            specs = load_specs(f)
        except SpecError as exc:
            print(exc, file=sys.stderr)
            bad += 1
            continue
        except OSError as exc:
            print(f"{f}: {exc.strerror}", file=sys.stderr)
            bad += 1
            continue
        for s in specs:
            notes = [r.note for r in alert_rules(s) if r.note]
            print(f"{f}: {s.name}: {s.sli.kind} of {s.model} {s.objective * 100:g}% over {s.window_s // 86400}d ok"
                  + "".join(f"\n  note: {n}" for n in notes))
        if a.rules:
            print(yaml.safe_dump(rules_document(specs), sort_keys=False), end="")
    return 1 if bad else 0


def _status(a: argparse.Namespace, open_store: OpenStore) -> int:
    from slo_engine.evaluate import evaluate

    specs = [s for f in a.files for s in load_specs(f)]
    for st in evaluate(open_store(a.store), specs, _dt.datetime.now(_dt.UTC)):
        print(json.dumps(st.as_dict()))
    return 0


def _emit(out: dict[str, Any] | list[dict[str, Any]]) -> int:
    """Print an answer as JSON lines (one per silence), the same whether it came from the API or the store."""
    for row in out if isinstance(out, list) else [out]:
        print(json.dumps(row))
    return 0


def _silence_add(a: argparse.Namespace, open_store: OpenStore) -> int:
    from slo_engine.silences import create_silence

    matchers = {k: v for k, v in (("slo", a.slo), ("model", a.model), ("model_version", a.model_version),
                                  ("severity", a.severity)) if v is not None}
    if a.api:
        return _emit(api_call(a, "POST", "/v1/slo/silences", body={"matchers": matchers, "duration": a.duration,
                                                                   "created_by": a.by, "comment": a.comment}))
    return _emit(create_silence(open_store(a.store), matchers, now=_dt.datetime.now(_dt.UTC),
                                duration_s=parse_duration(a.duration), created_by=a.by, comment=a.comment,
                                actor=cli_actor()).as_dict())


def _silence_list(a: argparse.Namespace, open_store: OpenStore) -> int:
    from slo_engine.silences import list_silences

    if a.api:
        return _emit(api_call(a, "GET", "/v1/slo/silences", params={"include_expired": str(a.all).lower()}))
    return _emit([s.as_dict() for s in list_silences(open_store(a.store), now=_dt.datetime.now(_dt.UTC),
                                                     include_expired=a.all)])


def _silence_expire(a: argparse.Namespace, open_store: OpenStore) -> int:
    from urllib.parse import quote

    from slo_engine.silences import expire_silence

    if a.api:
        return _emit(api_call(a, "DELETE", "/v1/slo/silences/" + quote(a.id, safe="")))
    return _emit(expire_silence(open_store(a.store), a.id, now=_dt.datetime.now(_dt.UTC), actor=cli_actor()).as_dict())
