"""Version drift: traffic served by a version other than the one deployed.

The *expected* version of a model (per ``environment``, when deploys carry that annotation) is the version
of its latest deploy event (``driftline deploy``, ``POST /v1/deploys``, the SDK's ``log_deploy``). Deploys the
SDK announces at start-up (``Monitor(deploy_on_start=True)``, annotated ``source: sdk``) count only while the
model has no other deploy: a stale replica that restarts announces its old version, which must not become
the expected one. A deploy
annotated ``role: canary`` or ``role: shadow`` does not change the expected version: it *allows* its version
beside it until the next ordinary deploy. Traffic comes from the metric windows (every request, every
replica) for deploys without an environment, and from the sampled predictions tagged with the slice
``environment`` for deploys with one (metric windows carry no environment; sampled traffic can miss a
replica that serves very few requests, errors are always sampled).

A version *drifts* when it is not allowed, still serves (traffic within the last ``recent_s``) and has
served since at least ``grace_s`` ago, counted from the later of the expected deploy and its first traffic
after it (looking back at most a day, or twice the grace period if longer; the counts cover that span):
a rollout that replaces every replica within the grace period raises nothing; a stale replica or a rollout
that stopped half-way raises once the grace period has passed, and the finding clears as soon as that
version's traffic stops (the alert router then resolves it). Deploy annotations are redacted like any string:
declare ``deploy.role`` and ``deploy.environment`` as ``keep`` under strict redaction.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from collector.sql import sql
from collector.store import Store
from serving_shim.contract import as_utc

__all__ = ["Expected", "VersionFinding", "expected_versions", "version_findings", "SIDE_ROLES"]

#: Deploy roles that add an allowed version without replacing the expected one.
SIDE_ROLES = ("canary", "shadow")


@dataclass(frozen=True, kw_only=True)
class Expected:
    model: str
    environment: str                 # '' when the deploys carry no environment
    version: str
    since: _dt.datetime              # the deploy that made it expected
    allowed: tuple[str, ...]         # the expected version and the canary/shadow versions deployed after it


@dataclass(frozen=True, kw_only=True)
class VersionFinding:
    model: str
    environment: str
    expected: str
    expected_since: _dt.datetime
    version: str                     # a version that served
    first_seen: _dt.datetime         # its first traffic since the expected deploy
    last_seen: _dt.datetime
    requests: int
    allowed: bool
    drifting: bool                   # not allowed, still serving, for at least the grace period

    def as_dict(self) -> dict[str, Any]:
        return {k: (v.isoformat() if isinstance(v, _dt.datetime) else v) for k, v in self.__dict__.items()}


def expected_versions(store: Store, now: _dt.datetime, models: Sequence[str] = ()) -> list[Expected]:
    """The expected version per model and environment at ``now`` (deploys after ``now`` are not counted)."""
    rows = store.rows(sql(
        """
        SELECT model, annotations['environment'] AS environment, model_version, max(ts) AS last_ts,
               argMax(has(%(side)s, annotations['role']), ts) AS side,
               maxIf(ts, annotations['source'] != 'sdk') AS explicit_ts, """
        """countIf(annotations['source'] != 'sdk') AS explicit
        FROM {db}.deploys FINAL
        WHERE ts <= %(now)s AND (empty(%(models)s) OR has(%(models)s, model))
        GROUP BY model, environment, model_version
        ORDER BY model, environment, last_ts, model_version
        """, side=list(SIDE_ROLES), now=as_utc(now), models=list(models)))
    by_key: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        by_key.setdefault((r["model"], r["environment"]), []).append(r)
    out = []
    for (model, env), rs in sorted(by_key.items()):
        main = [r for r in rs if not r["side"]]
        if not main:
            continue
        explicit = [r for r in main if int(r["explicit"])]
        if explicit:   # deploys from the CLI, the API or a pipeline outrank the SDK's start-up announcements
            last = max(explicit, key=lambda r: (r["explicit_ts"], r["model_version"]))
            since = as_utc(last["explicit_ts"])
        else:
            last = main[-1]   # rows are in time order: the latest ordinary deploy
            since = as_utc(last["last_ts"])
        side = tuple(r["model_version"] for r in rs if r["side"] and as_utc(r["last_ts"]) > since)
        out.append(Expected(model=model, environment=env, version=last["model_version"], since=since,
                            allowed=(last["model_version"], *side)))
    return out


def _serving(store: Store, e: Expected, now: _dt.datetime, since: _dt.datetime) -> list[dict[str, Any]]:
    if e.environment == "":
        return store.rows(sql(
            """
            SELECT model_version, min(window_start) AS first_seen, max(addSeconds(window_start, window_s)) AS last_seen,
                   sum(requests) AS n_requests
            FROM {db}.metric_windows FINAL
            WHERE model = %(m)s AND addSeconds(window_start, window_s) > %(since)s AND window_start <= %(now)s
              AND requests > 0
            GROUP BY model_version ORDER BY model_version
            """, m=e.model, since=since, now=now))
    return store.rows(sql(
        """
        SELECT model_version, min(ts) AS first_seen, max(ts) AS last_seen, count() AS n_requests
        FROM {db}.predictions FINAL
        WHERE model = %(m)s AND slices['environment'] = %(env)s AND ts > %(since)s AND ts <= %(now)s
        GROUP BY model_version ORDER BY model_version
        """, m=e.model, env=e.environment, since=since, now=now))


def version_findings(store: Store, now: _dt.datetime, *, grace_s: float, recent_s: float,
                     models: Sequence[str] = ()) -> list[VersionFinding]:
    """Every version that served each model (and environment) since its expected deploy, drifting or not."""
    if grace_s < 0 or recent_s <= 0:
        raise ValueError("grace_s must be >= 0 and recent_s > 0")
    now = as_utc(now)
    # the scan reaches back to the deploy, but no further than a day (or twice the grace period): a deploy made
    # months ago does not make every tick read months of metric windows
    floor = now - _dt.timedelta(seconds=max(86400.0, 2 * (grace_s + recent_s)))
    out = []
    for e in expected_versions(store, now, models):
        for r in _serving(store, e, now, max(e.since, floor)):
            first = max(as_utc(r["first_seen"]), e.since)
            last = as_utc(r["last_seen"])
            allowed = r["model_version"] in e.allowed
            drifting = (not allowed and (now - last).total_seconds() <= recent_s
                        and (now - first).total_seconds() >= grace_s)
            out.append(VersionFinding(model=e.model, environment=e.environment, expected=e.version,
                                      expected_since=e.since, version=r["model_version"], first_seen=first,
                                      last_seen=last, requests=int(r["n_requests"]), allowed=allowed,
                                      drifting=drifting))
    return out
