"""SLOs and alerts: error-budget burn-down per SLO, alert history, the delivery log, and silences (create, expire)."""

from __future__ import annotations

import datetime as _dt
from typing import Any

import streamlit as st

from dashboard import charts
from dashboard.client import ApiError
from dashboard.shell import Ctx, fmt_pct, mutate, run_page

POINTS = 12
SPEC_EXAMPLE = """version: driftline/v1
slos:
  - name: {model}-availability
    model: {model}
    objective: 99.9          # percent
    window: 30d
    sli: {{availability: {{}}}}
"""


def _at_points(minutes: int) -> list[_dt.datetime]:
    """``POINTS`` times across the range, on step boundaries so cached evaluations are reused."""
    step = max(60, minutes * 60 // (POINTS - 1))
    now = int(_dt.datetime.now(_dt.UTC).timestamp())
    last = now - now % 60
    first = last - last % step - (POINTS - 2) * step
    pts = [first + i * step for i in range(POINTS - 1)] + [last]
    return [_dt.datetime.fromtimestamp(t, _dt.UTC) for t in sorted(set(pts))]


def budgets(ctx: Ctx) -> None:
    statuses = [s for s in ctx.get("/v1/slo/status") if s["model"] == ctx.model
                and (not ctx.version or s["model_version"] in ("", ctx.version))]
    if not statuses:
        st.info(f"No SLO covers {ctx.model}. Add one to the spec file the server loads, for example:")
        st.code(SPEC_EXAMPLE.format(model=ctx.model), language="yaml")
        return
    cols = st.columns(2)
    for i, s in enumerate(statuses):
        with cols[i % 2]:
            c = st.columns(3)
            c[0].metric(f"SLI · {s['slo']}", fmt_pct(s["sli"], 3))
            c[1].metric("Objective", fmt_pct(s["objective"], 3))
            c[2].metric("Budget remaining", fmt_pct(s["budget_remaining"], 1))
            pts = []
            for at in _at_points(ctx.minutes):
                rows = ctx.get("/v1/slo/status", slo=s["slo"], at=at.isoformat())
                row = next((r for r in rows if r["model_version"] == s["model_version"]), None)
                pts.append({"at": at, "budget_remaining": row["budget_remaining"] if row else None})
            st.plotly_chart(charts.burn_down(pts, s["slo"], ctx.get("/v1/ops/deploys", model=ctx.model,
                                                                    minutes=ctx.minutes)), key=f"slo_burndown_{i}")


def history(ctx: Ctx) -> None:
    st.subheader("Alert history")
    alerts = [a for a in ctx.get("/v1/slo/alerts") if a["model"] == ctx.model]
    if alerts:
        st.dataframe(sorted(({k: a.get(k) for k in ("state", "slo", "model_version", "tier", "severity", "since",
                                                     "last_true", "last_notified", "long_burn_rate", "short_burn_rate")}
                             for a in alerts), key=lambda a: str(a["since"]), reverse=True), hide_index=True)
    else:
        st.success("No alert has fired for this model.")
    deliveries = ctx.get("/v1/slo/deliveries", limit=50)
    if deliveries:
        with st.expander(f"Notification deliveries ({len(deliveries)} latest)"):
            st.dataframe(deliveries, hide_index=True)


def silences(ctx: Ctx, names: list[str]) -> None:
    st.subheader("Silences")
    expired = st.checkbox("Show expired", key="sil_expired")
    rows: list[dict[str, Any]] = ctx.get("/v1/slo/silences", include_expired=expired)
    now = _dt.datetime.now(_dt.UTC)
    if not rows:
        st.caption("No silence is active.")
    for s in rows:
        active = _dt.datetime.fromisoformat(s["ends_at"]) > now
        row = st.columns([5, 1])
        shown = ", ".join(f"{k}={v}" for k, v in sorted(s["matchers"].items()))
        row[0].markdown(f"**{shown}** until {s['ends_at'][:16].replace('T', ' ')} UTC"
                      f"{' (expired)' if not active else ''} · by {s['created_by'] or '?'} · {s['comment']}")
        if active and row[1].button("Expire", key=f"expire_{s['id']}"):
            _write(ctx, "DELETE", f"/v1/slo/silences/{s['id']}", None, "Silence expired.")
    with st.form("new_silence", clear_on_submit=False):
        st.markdown("**New silence** (maintenance, retraining): alerts matching every field given stay quiet.")
        top = st.columns(4)
        slo = top[0].selectbox("SLO", ["(any)", *names], key="sil_slo")
        model = top[1].text_input("Model", value=ctx.model or "", key="sil_model")
        version = top[2].text_input("Version", value=ctx.version, key="sil_version")
        severity = top[3].selectbox("Severity", ["(any)", "page", "ticket"], key="sil_severity")
        bottom = st.columns(3)
        duration = bottom[0].text_input("Duration", value="2h", key="sil_duration")
        by = bottom[1].text_input("Created by", key="sil_by")
        comment = bottom[2].text_input("Comment", key="sil_comment")
        if st.form_submit_button("Create silence", key="sil_submit"):
            matchers = {k: v for k, v in (("slo", slo), ("model", model), ("model_version", version),
                                          ("severity", severity)) if v and v != "(any)"}
            _write(ctx, "POST", "/v1/slo/silences", {"matchers": matchers, "duration": duration, "created_by": by,
                                                     "comment": comment}, "Silence created.")
    if msg := st.session_state.pop("sil_msg", None):
        (st.success if msg[0] else st.error)(msg[1])


def _write(ctx: Ctx, method: str, path: str, body: Any, ok: str) -> None:
    try:
        mutate(ctx.api, method, path, body)
        st.session_state["sil_msg"] = (True, ok)
    except ApiError as exc:
        st.session_state["sil_msg"] = (False, f"Not done: {exc}")
    st.rerun()


def render(ctx: Ctx) -> None:
    specs = ctx.get("/v1/slo/specs")["slos"]
    budgets(ctx)
    history(ctx)
    silences(ctx, [s["name"] for s in specs])


run_page("SLOs and alerts", render)
