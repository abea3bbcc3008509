"""Governance: what each table keeps for how long, and the audit log (who changed what, when, from what to
what). Both need an admin key; the audit log shows the entries of the key's models."""

from __future__ import annotations

import json
from typing import Any

import streamlit as st

from dashboard.client import ApiError
from dashboard.shell import Ctx, run_page

MAX_ENTRIES = 500


def _kept(days: int | None) -> str:
    if days is None:
        return "forever"
    return f"{days} days" if days % 365 else f"{days // 365} year{'s' if days >= 730 else ''} ({days} days)"


def _doc(v: Any) -> str:
    return "" if v is None else json.dumps(v, sort_keys=True)


def retention(ctx: Ctx) -> None:
    st.subheader("Retention")
    rows = ctx.get("/v1/retention")
    st.dataframe([{"table": r["table"], "kept": _kept(r["days"]), "counted from": r["time_column"]} for r in rows],
                 hide_index=True)
    st.caption("Rows older than this go (the table's TTL). Change it with `driftline retention set TABLE DAYS` "
               "or `PUT /v1/retention`; every change is in the audit log below.")


def audit_log(ctx: Ctx) -> None:
    st.subheader(f"Audit log · {ctx.range_label.lower()}")
    entries = ctx.get("/v1/audit", since=ctx.start.replace(second=0, microsecond=0).isoformat(), limit=MAX_ENTRIES)
    if not entries:
        st.info("No change was recorded in this time range (SLO specs, detector settings, silences, API keys, "
                "references, retention and subject deletions are).")
        return
    c = st.columns(2)
    actions = sorted({e["action"] for e in entries})
    actors = sorted({e["actor"] for e in entries})
    action = c[0].selectbox("Action", ["All actions", *actions], key="gov_action")
    actor = c[1].selectbox("Actor", ["All actors", *actors], key="gov_actor")
    shown = [e for e in entries if action in ("All actions", e["action"]) and actor in ("All actors", e["actor"])]
    st.dataframe([{"time": e["ts"], "actor": e["actor"], "action": e["action"], "target": e["target"],
                   "model": e["model"], "before": _doc(e["before"]), "after": _doc(e["after"])} for e in shown],
                 hide_index=True)
    if len(entries) == MAX_ENTRIES:
        st.caption(f"The newest {MAX_ENTRIES} entries; `driftline audit --since ...` lists them all.")


def render(ctx: Ctx) -> None:
    try:
        retention(ctx)
        audit_log(ctx)
    except ApiError as exc:
        if exc.status != 403:
            raise
        st.warning("The audit log and retention need an admin API key (DRIFTLINE_API_KEY).")


run_page("Governance", render)
