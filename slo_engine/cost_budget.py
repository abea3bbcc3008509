"""Cost budgets with burn-rate alerts, like an SLO's error budget.

A cost model with ``budget_usd_per_30d`` (:mod:`collector.cost`) spends its budget at a steady rate of
``budget / 30 days``; the burn rate over a window is the cost in that window divided by the budget's share
of it. The tiers are the SLOs' 30-day table (``alert_windows/google-30d.yaml``): a page when 2% of the
budget went in an hour (burn 14.4, confirmed over 5 minutes) or 5% in 6 hours (burn 6, over 30 minutes),
a ticket at 10% in 3 days (burn 1, over 6 hours). Each model has one alert per severity, active when any
tier of that severity fires, routed by :func:`slo_engine.engine.notify_conditions`.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping
from typing import Any

from collector.cost import CostModel, cost_total
from collector.store import Store
from slo_engine.model import BurnTier, default_tiers
from slo_engine.router import Condition

__all__ = ["COST_ALERT", "PERIOD_S", "cost_budget_conditions", "burn_rates"]

#: the name of cost-budget alerts (the ``slo`` a silence matches; SLO names cannot hold ':')
COST_ALERT = "driftline:cost-budget"
PERIOD_S = 30 * 86400


def burn_rates(store: Store, model: str, cost: CostModel, now: _dt.datetime,
               tiers: tuple[BurnTier, ...]) -> dict[int, dict[str, float]]:
    """Cost, requests and burn rate over every window the tiers need, each ending at ``now``."""
    if cost.budget_usd_per_30d is None:
        raise ValueError(f"{model}: no budget_usd_per_30d in its cost model")
    out = {}
    for w in sorted({t.long_window_s for t in tiers} | {t.short_window_s for t in tiers}):
        usd, n = cost_total(store, model, cost, start=now - _dt.timedelta(seconds=w), end=now)
        out[w] = {"cost_usd": usd, "requests": n, "burn_rate": usd / (cost.budget_usd_per_30d * w / PERIOD_S)}
    return out


def cost_budget_conditions(store: Store, models: Mapping[str, CostModel], traffic: list[str], now: _dt.datetime
                           ) -> list[Condition]:
    """One condition per model with a budget (among ``traffic``, the models that had requests) and severity."""
    tiers = default_tiers(PERIOD_S)
    out = []
    for model in traffic:
        cost = models.get(model) or models.get("*")
        if cost is None or cost.budget_usd_per_30d is None:
            continue
        rates = burn_rates(store, model, cost, now, tiers)
        for sev in sorted({t.severity for t in tiers}):
            firing = [t for t in tiers if t.severity == sev and rates[t.long_window_s]["burn_rate"] >= t.burn_rate
                      and rates[t.short_window_s]["burn_rate"] >= t.burn_rate]
            details: dict[str, Any] = {"budget_usd_per_30d": cost.budget_usd_per_30d, "cost_model": cost.kind,
                                       "tiers": [t.name for t in firing],
                                       "windows": {str(w): r for w, r in rates.items()}}
            top = max(firing, key=lambda t: t.burn_rate) if firing else None
            out.append(Condition(
                alert_key=f"driftline/{model}/*/cost-budget/{sev}", slo=COST_ALERT, model=model, model_version="",
                severity=sev, active=bool(firing), details=details,
                summary=(f"cost budget: {model} spent {rates[top.long_window_s]['cost_usd']:.2f} USD in "
                         f"{top.long_window_s // 3600} h, {rates[top.long_window_s]['burn_rate']:.1f}x its budget of "
                         f"{cost.budget_usd_per_30d:g} USD / 30 days ({top.name})")
                if top else f"cost budget: {model} clear"))
    return out
