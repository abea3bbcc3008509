"""Lifecycle: the expected version against what serves (version drift), a canary or shadow verdict with its
evidence, and cost per 1,000 inferences over time per version, with deploy markers."""

from __future__ import annotations

from typing import Any

import streamlit as st

from dashboard import charts
from dashboard.shell import Ctx, fmt_usd, run_page

_VERDICT = {"promote": st.success, "hold": st.warning, "rollback": st.error}


def _versions(ctx: Ctx) -> list[str]:
    rows = [r for r in ctx.get("/v1/ops/models") if r["model"] == ctx.model]
    return list(rows[0]["versions"]) if rows else []


def _deploys(ctx: Ctx) -> None:
    st.subheader("Expected versions")
    rows = ctx.get("/v1/deploys", model=ctx.model)
    if not rows:
        st.info("No deploy events for this model: record one with `driftline deploy MODEL VERSION` "
                "(or POST `/v1/deploys`) to check what serves against it.")
        return
    for r in rows:
        env = f" in {r['environment']}" if r["environment"] else ""
        drifting = [s for s in r["serving"] if s["drifting"]]
        if drifting:
            st.error(f"Version drift{env}: expected {r['expected']}, still serving "
                     + ", ".join(f"{s['version']} ({s['requests']:,} requests, last {s['last_seen']})"
                                 for s in drifting))
        else:
            st.success(f"Expected{env}: {r['expected']} since {r['expected_since']} "
                       f"(allowed: {', '.join(r['allowed'])})")
        if r["serving"]:
            st.dataframe([{k: s[k] for k in ("version", "allowed", "drifting", "requests", "first_seen", "last_seen")}
                          for s in r["serving"]], hide_index=True)


def _canary(ctx: Ctx, versions: list[str]) -> None:
    st.subheader("Canary and shadow comparison")
    if len(versions) < 2:
        st.info("A comparison needs two versions of this model with traffic in the range.")
        return
    c = st.columns(3)
    baseline = c[0].selectbox("Baseline", versions, index=0, key="lc_baseline")
    candidate = c[1].selectbox("Candidate", [v for v in versions if v != baseline], key="lc_candidate")
    mode = c[2].selectbox("Mode", ["canary", "shadow"], key="lc_mode",
                          help="canary: split traffic; shadow: the same requests scored twice (joined by request_id)")
    v: dict[str, Any] = ctx.get("/v1/canary", model=ctx.model, baseline=baseline, candidate=candidate, mode=mode,
                                minutes=ctx.minutes)
    _VERDICT[v["verdict"]](f"**{v['verdict'].upper()}**: {v['reason']}")
    if v["samples_needed"]:
        st.metric("Samples still needed per version", f"{v['samples_needed']:,}")
    st.dataframe([{"check": ch["name"], "outcome": ch["outcome"], "summary": ch["summary"],
                   "test": (ch["test"] or {}).get("name"), "p": (ch["test"] or {}).get("p_value"),
                   "adjusted p": ch["adjusted_p"], "effect": (ch["test"] or {}).get("effect"),
                   "effect size": (ch["test"] or {}).get("effect_name"), "n needed": ch["n_needed"]}
                  for ch in v["checks"]], hide_index=True)


def _cost(ctx: Ctx) -> None:
    st.subheader("Cost per 1,000 inferences")
    rows = ctx.get("/v1/cost", model=ctx.model, minutes=ctx.minutes)
    if not rows:
        st.info("No metric windows in range: cost per inference comes from the request counts.")
        return
    deploys = ctx.get("/v1/ops/deploys", model=ctx.model, minutes=ctx.minutes)
    by_version: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_version.setdefault(r["model_version"], []).append(r)
    total_cost = sum(r["cost_usd"] for r in rows)
    total_req = sum(r["requests"] for r in rows)
    c = st.columns(3)
    c[0].metric("Cost in range", fmt_usd(total_cost))
    c[1].metric("Cost per 1,000 inferences", fmt_usd(total_cost / total_req * 1000 if total_req else None))
    c[2].metric("Cost model", rows[0]["cost_model"])
    merged: dict[str, dict[str, Any]] = {}
    for r in rows:
        merged.setdefault(r["t"], {"t": r["t"]})[r["model_version"]] = r["cost_per_1k"]
    points = [merged[t] for t in sorted(merged)]
    st.plotly_chart(charts.timeseries(points, {v: v for v in by_version}, title="Cost per 1,000 inferences",
                                      y_title="USD", deploys=deploys), key="lc_cost")


def render(ctx: Ctx) -> None:
    _deploys(ctx)
    _canary(ctx, _versions(ctx))
    _cost(ctx)


run_page("Lifecycle", render)
