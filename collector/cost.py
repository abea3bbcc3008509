"""Cost per inference: a cost model per model, from configuration, and cost per 1,000 inferences over time
per version, counted in ClickHouse.

Cost models (``DRIFTLINE_COST_MODELS``: inline JSON, or a JSON/YAML file; keys are model names, ``"*"`` is
the default for the others)::

    {"fraud": {"kind": "per_request", "usd_per_request": 0.00002},
     "chat":  {"kind": "per_token", "usd_per_1k_input_tokens": 0.5, "usd_per_1k_output_tokens": 1.5,
               "input_tokens": "input_tokens", "output_tokens": "output_tokens"},
     "*":     {"kind": "replica_hours", "usd_per_replica_hour": 0.5}}

- ``per_request``: ``cost = requests × usd_per_request`` (requests: every request, from the metric windows).
- ``per_token``: token counts are the numeric features named by ``input_tokens`` / ``output_tokens`` of the
  sampled predictions. Sampling keeps every error and a hash-of-request_id sample of the rest, so
  ``tokens = sum(tokens of errors) + mean(tokens of sampled ok predictions) × ok requests`` (ok requests =
  requests - errors of the metric windows): exact at sample rate 1, an unbiased estimate otherwise. A
  prediction without the token feature counts 0 tokens.
- ``replica_hours``: every metric window is one replica (``source``) serving for ``window_s`` seconds:
  ``cost = sum(window_s) / 3600 × usd_per_replica_hour`` (the default, at :data:`DEFAULT_REPLICA_HOUR_USD`).

``cost_per_1k = cost / requests × 1000`` per time step and version (``None`` without requests).
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from collector.settings_doc import load_doc
from collector.sql import sql
from collector.store import Store

__all__ = ["CostModel", "CostPoint", "load_cost_models", "cost_series", "cost_total", "model_for",
           "DEFAULT_REPLICA_HOUR_USD", "DEFAULT_COST"]

DEFAULT_REPLICA_HOUR_USD = 0.50
_KINDS = ("per_request", "per_token", "replica_hours")


@dataclass(frozen=True, kw_only=True)
class CostModel:
    kind: Literal["per_request", "per_token", "replica_hours"]
    usd_per_request: float = 0.0
    usd_per_1k_input_tokens: float = 0.0
    usd_per_1k_output_tokens: float = 0.0
    input_tokens: str = "input_tokens"
    output_tokens: str = "output_tokens"
    usd_per_replica_hour: float = DEFAULT_REPLICA_HOUR_USD
    #: spend allowed per 30 days: burn-rate alerts like an SLO's (slo_engine.cost_budget); None: no budget
    budget_usd_per_30d: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"kind: {self.kind!r} is not one of {', '.join(_KINDS)}")
        for name in ("usd_per_request", "usd_per_1k_input_tokens", "usd_per_1k_output_tokens", "usd_per_replica_hour"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | float) or not v >= 0 or v == float("inf"):
                raise ValueError(f"{name}: must be a finite number >= 0, got {v!r}")
        needed = {"per_request": ("usd_per_request",),
                  "per_token": ("usd_per_1k_input_tokens", "usd_per_1k_output_tokens"),
                  "replica_hours": ("usd_per_replica_hour",)}[self.kind]
        if not any(getattr(self, n) > 0 for n in needed):
            raise ValueError(f"{' or '.join(needed)}: a {self.kind} cost model needs a price above 0")
        b = self.budget_usd_per_30d
        if b is not None and (isinstance(b, bool) or not isinstance(b, int | float) or not 0 < b < float("inf")):
            raise ValueError(f"budget_usd_per_30d: must be a positive number, got {b!r}")
        for name in ("input_tokens", "output_tokens"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ValueError(f"{name}: the name of a numeric feature holding the token count")

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


DEFAULT_COST = CostModel(kind="replica_hours")


def load_cost_models(spec: str) -> dict[str, CostModel]:
    """Cost models from ``spec`` (inline JSON starting with ``{``, or a path to a JSON or YAML file; ''
    for none). Errors name the model and the field."""
    doc = load_doc(spec, "DRIFTLINE_COST_MODELS")
    if doc is None:
        return {}
    where = "DRIFTLINE_COST_MODELS" if spec.lstrip().startswith("{") else spec
    if not isinstance(doc, Mapping):
        raise ValueError(f"{where}: must map model names to cost models")
    out = {}
    for model, m in doc.items():
        if not isinstance(m, Mapping):
            raise ValueError(f"{where}: {model}: must be a mapping with 'kind'")
        unknown = sorted(set(m) - set(CostModel.__dataclass_fields__))
        if unknown:
            raise ValueError(f"{where}: {model}.{unknown[0]}: unknown field")
        try:
            out[str(model)] = CostModel(**m)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{where}: {model}.{exc}") from None
    return out


def model_for(models: Mapping[str, CostModel], model: str) -> CostModel:
    return models.get(model) or models.get("*") or DEFAULT_COST


@dataclass(frozen=True, kw_only=True)
class CostPoint:
    t: _dt.datetime
    model_version: str
    requests: int
    errors: int
    replica_hours: float
    input_tokens: float | None
    output_tokens: float | None
    cost_usd: float
    cost_per_1k: float | None
    cost_model: str

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "t": self.t.isoformat()}


def cost_series(store: Store, model: str, cost: CostModel | None, *, start: _dt.datetime, end: _dt.datetime,
                step_s: int, version: str = "") -> list[CostPoint]:
    """Cost and cost per 1,000 inferences per ``step_s`` and version over ``[start, end)``."""
    if step_s < 1:
        raise ValueError("step_s: must be at least 1")
    cost = cost or DEFAULT_COST
    p = {"m": model, "s": start, "e": end, "step": int(step_s), "v": version}
    mw = store.rows(sql(
        """
        SELECT toDateTime64(toStartOfInterval(window_start, toIntervalSecond(%(step)s)), 3, 'UTC') AS t,
               model_version, sum(requests) AS n, sum(arraySum(mapValues(errors))) AS n_err,
               sum(window_s) AS replica_seconds
        FROM {db}.metric_windows FINAL
        WHERE model = %(m)s AND (%(v)s = '' OR model_version = %(v)s) AND window_start >= %(s)s AND window_start < %(e)s
        GROUP BY t, model_version ORDER BY t, model_version
        """, **p))
    tokens: dict[tuple[Any, str], dict[str, Any]] = {}
    if cost.kind == "per_token":
        for r in store.rows(sql(
            """
            SELECT toDateTime64(toStartOfInterval(ts, toIntervalSecond(%(step)s)), 3, 'UTC') AS t, model_version,
                   countIf(status = 'ok') AS ok_n,
                   sumIf(features_num[%(fi)s], status = 'ok') AS ok_in, """
            """sumIf(features_num[%(fo)s], status = 'ok') AS ok_out,
                   sumIf(features_num[%(fi)s], status = 'error') AS err_in,
                   sumIf(features_num[%(fo)s], status = 'error') AS err_out
            FROM {db}.predictions FINAL
            WHERE model = %(m)s AND (%(v)s = '' OR model_version = %(v)s) AND ts >= %(s)s AND ts < %(e)s
            GROUP BY t, model_version
            """, fi=cost.input_tokens, fo=cost.output_tokens, **p)):
            tokens[(r["t"], r["model_version"])] = r
    out = []
    for r in mw:
        n, n_err = int(r["n"]), int(r["n_err"])
        hours = float(r["replica_seconds"]) / 3600
        tin = tout = None
        if cost.kind == "per_request":
            usd = n * cost.usd_per_request
        elif cost.kind == "replica_hours":
            usd = hours * cost.usd_per_replica_hour
        else:
            tk = tokens.get((r["t"], r["model_version"]))
            ok_n = int(tk["ok_n"]) if tk else 0
            ok_requests = max(0, n - n_err)
            scale = ok_requests / ok_n if ok_n else 0.0
            tin = (float(tk["err_in"]) + float(tk["ok_in"]) * scale) if tk else 0.0
            tout = (float(tk["err_out"]) + float(tk["ok_out"]) * scale) if tk else 0.0
            usd = tin / 1000 * cost.usd_per_1k_input_tokens + tout / 1000 * cost.usd_per_1k_output_tokens
        out.append(CostPoint(t=r["t"], model_version=r["model_version"], requests=n, errors=n_err,
                             replica_hours=hours, input_tokens=tin, output_tokens=tout, cost_usd=usd,
                             cost_per_1k=(usd / n * 1000) if n else None, cost_model=cost.kind))
    return out


def cost_total(store: Store, model: str, cost: CostModel | None, *, start: _dt.datetime, end: _dt.datetime
               ) -> tuple[float, int]:
    """Cost (USD) and requests of every version of ``model`` over ``[start, end)``."""
    step = max(1, int((end - start).total_seconds()))
    pts = cost_series(store, model, cost, start=start, end=end, step_s=step)
    return sum(p.cost_usd for p in pts), sum(p.requests for p in pts)
