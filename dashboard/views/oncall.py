"""On-call: latency quantiles and error rate with deploy markers, serving against expected version, accuracy
estimated before labels (CBPE) beside the realized one, burn rates per SLO with their alert thresholds, and the
firing alerts."""

from __future__ import annotations

import streamlit as st

from dashboard import charts
from dashboard.shell import Ctx, fmt_pct, run_page


def _versions(ctx: Ctx) -> None:
    v = ctx.get("/v1/ops/versions", model=ctx.model)
    c = st.columns(3)
    c[0].metric("Serving version", v["current"] or "–", help="most requests in the last 15 minutes")
    c[1].metric("Expected version", v["expected"] or "–", help="the last deploy event")
    if v["matches"] is False:
        others = ", ".join(f"{s['model_version']} ({s['requests']:,})" for s in v["serving"])
        c[2].error(f"Version mismatch: serving {v['current']}, expected {v['expected']} (serving: {others})")
    elif v["matches"]:
        c[2].success(f"Serving the expected version {v['expected']}")
    else:
        c[2].info("Send deploy events (`/v1/deploys`) to check the serving version against the expected one.")


def _estimated(ctx: Ctx) -> None:
    st.subheader("Performance before labels")
    rows = [r for r in ctx.get("/v1/performance/estimated", model=ctx.model, minutes=ctx.minutes)
            if not ctx.version or r["model_version"] in ("*", ctx.version)]
    if not rows:
        st.info("No estimated accuracy yet. Calibrate on a window whose labels have arrived "
                "(`POST /v1/cbpe/calibration`): later detector runs estimate accuracy, F1 and ROC AUC before labels.")
        return
    last = rows[-1]
    c = st.columns(3)
    c[0].metric("Estimated accuracy", fmt_pct(last["estimate"]),
                help=f"last window, 95% band {fmt_pct(last['low'])} to {fmt_pct(last['high'])}")
    c[1].metric("Realized accuracy", fmt_pct(last["realized"]), help="from the labels that have arrived")
    c[2].metric("Label coverage", fmt_pct(last["label_coverage"]))
    st.plotly_chart(charts.estimated_performance(rows, "accuracy", last["threshold"]), key="oncall_estimated")


def render(ctx: Ctx) -> None:
    _versions(ctx)
    ts = ctx.get("/v1/ops/latency", model=ctx.model, version=ctx.version, minutes=ctx.minutes)
    deploys = ctx.get("/v1/ops/deploys", model=ctx.model, minutes=ctx.minutes)
    if ts:
        req = sum(r["requests"] for r in ts)
        err = sum(r["errors"] for r in ts)
        p99 = [r["p99_ms"] for r in ts if r["p99_ms"] is not None]
        c = st.columns(3)
        c[0].metric("Requests", f"{req:,}")
        c[1].metric("Error rate", fmt_pct(err / req if req else None))
        c[2].metric("Worst p99", f"{max(p99):.0f} ms" if p99 else "–")
        left, right = st.columns(2)
        left.plotly_chart(charts.timeseries(ts, {"p50_ms": "p50", "p95_ms": "p95", "p99_ms": "p99"},
                                            title="Latency", y_title="ms", deploys=deploys), key="oncall_latency")
        right.plotly_chart(charts.timeseries(ts, {"error_rate": "error rate"}, title="Error rate", y_title="",
                                             deploys=deploys, percent=True), key="oncall_errors")
    else:
        st.info("No metric windows in range. Latency and error rate come from the counts of every request: "
                "post `metric_window` events to `/v1/metric-windows` (the SDK does it every 10 s).")
    _estimated(ctx)
    st.subheader("Burn rates")
    statuses = [s for s in ctx.get("/v1/slo/status") if s["model"] == ctx.model
                and (not ctx.version or s["model_version"] in ("", ctx.version))]
    if not statuses:
        st.info("No SLO for this model yet: burn rates and alerts come from SLO specs (see the SLOs page).")
    cols = st.columns(2)
    for i, s in enumerate(statuses):
        cols[i % 2].plotly_chart(charts.burn_rates(s), key=f"oncall_burn_{i}")
    st.subheader("Firing alerts")
    alerts = [a for a in ctx.get("/v1/slo/alerts", active=True) if a["model"] == ctx.model]
    if alerts:
        st.dataframe([{k: a.get(k) for k in ("state", "slo", "model_version", "tier", "severity", "since",
                                             "long_burn_rate", "short_burn_rate")} for a in alerts], hide_index=True)
    else:
        st.success("No alert is firing or pending for this model.")


run_page("On-call", render)
