"""Executive: availability, budget remaining per SLO, accuracy proxy, cost per 1,000 inferences, deployment
frequency and open alerts, for the chosen model, version and time range."""

from __future__ import annotations

from typing import Any

import streamlit as st

from dashboard import charts
from dashboard.shell import Ctx, fmt_pct, fmt_usd, onboarding, run_page


def cost_model_text(m: dict[str, Any]) -> str:
    """The cost model in words, as the summary applied it (collector.cost)."""
    if m["kind"] == "per_request":
        return f"${m['usd_per_request']:g} per request"
    if m["kind"] == "per_token":
        return (f"${m['usd_per_1k_input_tokens']:g} / ${m['usd_per_1k_output_tokens']:g} per 1,000 input / "
                "output tokens")
    return f"${m['usd_per_replica_hour']:g} per replica-hour"


def slo_statuses(ctx: Ctx) -> list[dict[str, Any]]:
    rows = ctx.get("/v1/slo/status")
    return [s for s in rows if s["model"] == ctx.model and (not ctx.version or s["model_version"] in ("", ctx.version))]


def render(ctx: Ctx) -> None:
    s = ctx.get("/v1/ops/summary", model=ctx.model, version=ctx.version, minutes=ctx.minutes)
    statuses = slo_statuses(ctx)
    alerts = [a for a in ctx.get("/v1/slo/alerts", active=True) if a["model"] == ctx.model and a["state"] == "firing"]
    if not s["requests"] and not s["sampled_predictions"]:
        onboarding(ctx.api, f"Nothing from {ctx.model} in the {ctx.range_label.lower()}.")
        return
    c = st.columns(6)
    c[0].metric("Availability", fmt_pct(s["availability"]), help=f"{s['requests']:,} requests, {s['errors']:,} errors")
    acc = fmt_pct(s["accuracy"], 1) if s["accuracy"] is not None else (
        f"MAE {s['mae']:.3g}" if s["mae"] is not None else "no labels")
    c[1].metric("Accuracy proxy", acc, help="labelled sampled predictions whose label matches the prediction")
    c[2].metric("Label coverage", fmt_pct(s["label_coverage"], 1), help=f"{s['labelled']:,} of "
                f"{s['sampled_predictions']:,} sampled predictions have a label")
    c[3].metric("Cost per 1,000 inferences", fmt_usd(s["cost_per_1k"]),
                help=f"${s['cost_usd']:.4f} over {s['requests']:,} requests; {cost_model_text(s['cost_model'])} "
                     "(DRIFTLINE_COST_MODELS)")
    c[4].metric("Deployment frequency", f"{s['deploys_per_day']:.1f}/day", help=f"{s['deploys']} deploys in range")
    c[5].metric("Open alerts", str(len(alerts)))
    left, right = st.columns(2)
    with left:
        if statuses:
            for st_ in statuses:
                st.metric(f"Budget left · {st_['slo']}", fmt_pct(st_["budget_remaining"], 1),
                          help=f"SLI {fmt_pct(st_['sli'], 3)} against {fmt_pct(st_['objective'], 3)} "
                               f"over {st_['window_s'] // 86400}d")
            st.plotly_chart(charts.budget_bars(statuses), key="exec_budget")
        else:
            st.info("No SLO for this model yet. Write a spec (`driftline slo validate spec.yaml` checks it) "
                    "to track availability, latency or accuracy against an objective.")
    with right:
        ts = ctx.get("/v1/ops/latency", model=ctx.model, version=ctx.version, minutes=ctx.minutes)
        if ts:
            for r in ts:
                r["availability"] = None if r["error_rate"] is None else 1 - r["error_rate"]
            deploys = ctx.get("/v1/ops/deploys", model=ctx.model, minutes=ctx.minutes)
            st.plotly_chart(charts.timeseries(ts, {"availability": "availability"}, title="Availability",
                                              y_title="", deploys=deploys, percent=True), key="exec_avail")
        else:
            st.info("No metric windows in range: availability needs the counts of every request "
                    "(`/v1/metric-windows`, sent by the SDK).")
    if alerts:
        st.subheader("Open alerts")
        st.dataframe([{k: a[k] for k in ("slo", "model_version", "tier", "severity", "since")} for a in alerts],
                     hide_index=True)


run_page("Executive overview", render)
