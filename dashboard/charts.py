"""Plotly figures of the dashboard: pure functions of API rows (no Streamlit, no HTTP), so they are testable."""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go

__all__ = ["clamped_range", "timeseries", "budget_bars", "burn_rates", "drift_heatmap", "distributions",
           "slice_intervals", "burn_down", "errors_by_type", "detail_of", "root_cause", "root_cause_rows",
           "estimated_performance"]

_LAYOUT = {"margin": {"l": 10, "r": 10, "t": 40, "b": 10}, "height": 320, "legend": {"orientation": "h", "y": -0.2}}
RED, GREEN, GREY = "#d62728", "#2ca02c", "#7f7f7f"


def _ts(v: Any) -> _dt.datetime:
    return v if isinstance(v, _dt.datetime) else _dt.datetime.fromisoformat(str(v).replace("Z", "+00:00"))


def detail_of(row: Mapping[str, Any]) -> dict[str, Any]:
    d = row.get("detail")
    if isinstance(d, dict):
        return d
    try:
        out = json.loads(d or "{}")
    except (TypeError, ValueError):
        return {}
    return out if isinstance(out, dict) else {}


def _deploy_markers(fig: go.Figure, deploys: Sequence[Mapping[str, Any]]) -> None:
    for d in deploys:
        t = _ts(d["ts"])
        fig.add_shape(type="line", x0=t, x1=t, y0=0, y1=1, yref="paper", line={"dash": "dot", "color": GREY})
        fig.add_annotation(x=t, y=1, yref="paper", text=f"deploy {d['model_version']}", showarrow=False,
                           yanchor="bottom", font={"size": 10})


def clamped_range(values: Sequence[float | None], lo: float | None = 0.0,
                  hi: float | None = None) -> list[float] | None:
    """An axis range around ``values`` with a 5% margin that never passes ``lo`` or ``hi`` (a rate has no
    negative part; a ratio none above 1): plotly's own range puts a flat zero line in the middle of -1..1.
    ``None`` without values."""
    vals = [float(v) for v in values if v is not None]
    if not vals:
        return None
    a, b = min(vals), max(vals)
    pad = (b - a) * 0.05 or max(abs(b) * 0.05, 0.01 if hi is not None and hi <= 1 else 1.0)
    low, high = a - pad, b + pad
    if lo is not None:
        low, high = max(lo, low), max(high, lo + pad)
    if hi is not None:
        low, high = min(low, hi - pad), min(hi, high)
    return [low, high]


def timeseries(rows: Sequence[Mapping[str, Any]], series: Mapping[str, str], *, title: str, y_title: str,
               deploys: Sequence[Mapping[str, Any]] = (), percent: bool = False) -> go.Figure:
    """Lines of ``series`` (column → legend name) over ``t``, with deploy markers; the y axis never below 0,
    and never above 100% with ``percent`` (a ratio)."""
    fig = go.Figure()
    x = [_ts(r["t"]) for r in rows]
    for col, name in series.items():
        fig.add_trace(go.Scatter(x=x, y=[r.get(col) for r in rows], mode="lines+markers", name=name,
                                 marker={"size": 4}))
    _deploy_markers(fig, deploys)
    fig.update_layout(title=title, yaxis_title=y_title, **_LAYOUT)
    y_range = clamped_range([r.get(col) for r in rows for col in series], 0.0, 1.0 if percent else None)
    if y_range is not None:
        fig.update_yaxes(range=y_range)
    if percent:
        fig.update_yaxes(tickformat=".1%")
    return fig


def errors_by_type(rows: Sequence[Mapping[str, Any]], deploys: Sequence[Mapping[str, Any]] = ()) -> go.Figure:
    types = sorted({k for r in rows for k in (r.get("errors_by_type") or {})})
    x = [_ts(r["t"]) for r in rows]
    fig = go.Figure([go.Bar(x=x, y=[(r.get("errors_by_type") or {}).get(t, 0) for r in rows], name=t) for t in types])
    _deploy_markers(fig, deploys)
    fig.update_layout(barmode="stack", title="Errors by type", yaxis_title="errors", **_LAYOUT)
    return fig


def budget_bars(statuses: Sequence[Mapping[str, Any]]) -> go.Figure:
    names = [f"{s['slo']}{' ' + s['model_version'] if s.get('model_version') else ''}" for s in statuses]
    vals = [s.get("budget_remaining") for s in statuses]
    fig = go.Figure(go.Bar(x=vals, y=names, orientation="h",
                           marker_color=[RED if (v is not None and v < 0.25) else GREEN for v in vals],
                           text=[("–" if v is None else f"{v:.1%}") for v in vals], textposition="auto"))
    fig.add_vline(x=0, line={"color": GREY})
    fig.update_layout(title="Error budget remaining", xaxis_tickformat=".0%",
                      **{**_LAYOUT, "height": 120 + 40 * len(names)})
    return fig


def burn_rates(status: Mapping[str, Any]) -> go.Figure:
    """Long- and short-window burn rates of each alert tier, with the tier's threshold drawn across its bars."""
    rules = status.get("rules") or []
    tiers = [f"{r['tier']} ({r['long_window_s'] // 60}m/{r['short_window_s'] // 60}m)" for r in rules]
    fig = go.Figure([
        go.Bar(x=tiers, y=[r.get("long_burn_rate") for r in rules], name="long window"),
        go.Bar(x=tiers, y=[r.get("short_burn_rate") for r in rules], name="short window"),
        go.Scatter(x=tiers, y=[r["burn_rate"] for r in rules], name="alert threshold", mode="markers",
                   marker={"symbol": "line-ew", "size": 60, "line": {"width": 3, "color": RED}}),
    ])
    firing = [r["tier"] for r in rules if r.get("firing")]
    title = f"{status['slo']}: burn rate by tier" + (f" — FIRING: {', '.join(firing)}" if firing else "")
    fig.update_layout(barmode="group", title=title, yaxis_title="× budget rate", yaxis_rangemode="nonnegative",
                      **_LAYOUT)
    return fig


def drift_heatmap(results: Sequence[Mapping[str, Any]], test: str, deploys: Sequence[Mapping[str, Any]] = ()
                  ) -> go.Figure:
    """Features × windows; the colour is the test's value, the text marks alerts."""
    rows = [r for r in results if r["test"] == test]
    subjects = sorted({r["subject"] for r in rows})
    windows = sorted({_ts(r["window_end"]) for r in rows})
    z: list[list[float | None]] = [[None] * len(windows) for _ in subjects]
    text = [[""] * len(windows) for _ in subjects]
    for r in rows:
        i, j = subjects.index(r["subject"]), windows.index(_ts(r["window_end"]))
        z[i][j] = r.get("value")
        text[i][j] = "ALERT" if r["status"] == "alert" else ("n/a" if r["status"] != "ok" else "")
    fig = go.Figure(go.Heatmap(z=z, x=windows, y=subjects, text=text, texttemplate="%{text}", colorscale="YlOrRd",
                               colorbar={"title": test},
                               hovertemplate="%{y} @ %{x}<br>" + test + "=%{z:.3f}<extra></extra>"))
    _deploy_markers(fig, deploys)
    fig.update_layout(title=f"Drift ({test}) per feature and window", **{**_LAYOUT, "height": 160 + 32 * len(subjects)})
    return fig


def distributions(labels: Sequence[str], reference: Sequence[float], current: Sequence[float], *, feature: str,
                  normalise: bool = True) -> go.Figure:
    """Reference and current distributions of one feature, side by side on the same bins."""
    def share(xs: Sequence[float]) -> list[float]:
        tot = float(sum(xs))
        return [float(x) / tot if tot else 0.0 for x in xs] if normalise else [float(x) for x in xs]

    fig = go.Figure([go.Bar(x=list(labels), y=share(reference), name="reference", marker_color=GREY),
                     go.Bar(x=list(labels), y=share(current), name="current", marker_color="#1f77b4")])
    fig.update_layout(barmode="group", title=f"{feature}: reference and current", yaxis_title="share", **_LAYOUT)
    if normalise:
        fig.update_yaxes(tickformat=".0%")
    return fig


def slice_intervals(rows: Sequence[Mapping[str, Any]], metric: str, threshold: float | None = None) -> go.Figure:
    """One point per slice with its interval (``value``, ``low``, ``high``), and the alert threshold if any."""
    rows = sorted(rows, key=lambda r: str(r["slice"]))
    v = [r["value"] for r in rows]
    fig = go.Figure(go.Scatter(
        x=v, y=[r["slice"] for r in rows], mode="markers", marker={"size": 10},
        error_x={"type": "data", "symmetric": False,
                 "array": [(r["high"] - r["value"]) if r.get("high") is not None else 0 for r in rows],
                 "arrayminus": [(r["value"] - r["low"]) if r.get("low") is not None else 0 for r in rows]},
        text=[f"n={r.get('n', '')}" for r in rows], hovertemplate="%{y}: %{x:.3f} (%{text})<extra></extra>"))
    if threshold is not None:
        fig.add_vline(x=threshold, line={"color": RED, "dash": "dash"}, annotation_text=f"threshold {threshold:g}")
    fig.update_layout(title=f"{metric} per slice (95% interval)", xaxis_title=metric,
                      **{**_LAYOUT, "height": 140 + 36 * len(rows)})
    return fig


def burn_down(points: Sequence[Mapping[str, Any]], slo: str, deploys: Sequence[Mapping[str, Any]] = ()) -> go.Figure:
    fig = go.Figure(go.Scatter(x=[_ts(p["at"]) for p in points], y=[p.get("budget_remaining") for p in points],
                               mode="lines+markers", name="budget remaining", fill="tozeroy"))
    _deploy_markers(fig, deploys)
    fig.add_hline(y=0, line={"color": RED, "dash": "dash"}, annotation_text="budget exhausted")
    fig.update_layout(title=f"{slo}: error budget remaining", yaxis_tickformat=".0%", **_LAYOUT)
    y_range = clamped_range([p.get("budget_remaining") for p in points], None, 1.0)  # overspent: below 0
    if y_range is not None:
        fig.update_yaxes(range=y_range)
    return fig


#: The three rankings of ``GET /v1/root-cause``: (key, name field, value field, panel title).
_RANKINGS = (("slices", "slice", "contribution", "accuracy cost per slice (points)"),
             ("features", "feature", "contribution", "drift × importance per feature"),
             ("burn", "slice", "burn_rate", "error-budget burn per slice (× budget)"))


def root_cause(rc: Mapping[str, Any]) -> go.Figure:
    """The root-cause rankings as bars, largest at the top, one panel per ranking."""
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=3, subplot_titles=[t for *_, t in _RANKINGS], horizontal_spacing=0.12)
    for i, (key, name, value, _) in enumerate(_RANKINGS, start=1):
        rows = list(rc.get(key) or [])[::-1]   # plotly draws the first bar at the bottom
        scale = 100.0 if key == "slices" else 1.0
        fig.add_trace(go.Bar(x=[float(r[value]) * scale for r in rows], y=[str(r[name]) for r in rows],
                             orientation="h", marker_color=RED if key != "features" else "#ff7f0e",
                             showlegend=False, hovertemplate="%{y}: %{x:.3g}<extra></extra>"), row=1, col=i)
    n = max([len(rc.get(k) or []) for k, *_ in _RANKINGS] + [1])
    fig.update_layout(title="Root cause ranking", **{**_LAYOUT, "height": 160 + 30 * n, "margin": {
        "l": 10, "r": 10, "t": 70, "b": 10}})
    return fig


def root_cause_rows(rc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The rankings as a short table: rank, what, by how much, and the numbers behind it."""
    out: list[dict[str, Any]] = []
    for i, r in enumerate(rc.get("slices") or [], start=1):
        out.append({"ranking": "accuracy cost", "rank": i, "name": r["slice"],
                    "score": f"-{r['contribution'] * 100:.2f} pts" if r.get("metric", "accuracy") == "accuracy"
                    else f"+{r['contribution']:.3g}",
                    "why": f"{r['metric']} {r['value']:.3g} vs {r['baseline']:.3g} for the rest, "
                           f"{r['share']:.0%} of labelled traffic ({r['source']})"})
    for i, r in enumerate(rc.get("features") or [], start=1):
        out.append({"ranking": "drift", "rank": i, "name": r["feature"], "score": f"{r['contribution']:.3g}",
                    "why": f"{r['test']} {r['value']:.3g} = {r['drift']:.2g}× threshold {r['threshold']:.3g}, "
                           f"importance {r['importance']:.3g}, {r['status']}"})
    for i, r in enumerate(rc.get("burn") or [], start=1):
        out.append({"ranking": "budget burn", "rank": i, "name": r["slice"], "score": f"{r['burn_rate']:.3g}×",
                    "why": f"{r['bad_rate']:.2%} bad ({r['kind']}) of {r['total']:,.0f}, "
                           f"{r['budget_share']:.0%} of the key's bad events"})
    return out


def estimated_performance(rows: Sequence[Mapping[str, Any]], metric: str,
                          threshold: float | None = None) -> go.Figure:
    """CBPE per window (rows of ``/v1/performance/estimated``): the estimate as a line inside its 95% band,
    and the realized metric as dots once the window's labels have arrived (hover: label coverage)."""
    rows = [r for r in rows if r.get("estimate") is not None]
    x = [_ts(r["window_end"]) for r in rows]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=x, y=[r.get("high") for r in rows], mode="lines", line={"width": 0},
                             showlegend=False, hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=x, y=[r.get("low") for r in rows], mode="lines", line={"width": 0},
                             fill="tonexty", fillcolor="rgba(31,119,180,0.2)", name="95% band"))
    fig.add_trace(go.Scatter(x=x, y=[r["estimate"] for r in rows], mode="lines+markers", name="estimated (CBPE)",
                             marker={"size": 4}))
    real = [r for r in rows if r.get("realized") is not None]
    fig.add_trace(go.Scatter(x=[_ts(r["window_end"]) for r in real], y=[r["realized"] for r in real],
                             mode="markers", name="realized", marker={"size": 8, "color": GREEN},
                             text=[f"labels {float(r.get('label_coverage') or 0):.0%}" for r in real],
                             hovertemplate="%{y:.3f} (%{text})<extra></extra>"))
    if threshold is not None:
        fig.add_hline(y=threshold, line={"color": RED, "dash": "dash"}, annotation_text=f"threshold {threshold:g}")
    fig.update_layout(title=f"{metric}: estimated before labels (CBPE) and realized", yaxis_title=metric, **_LAYOUT)
    y_range = clamped_range([v for r in rows for v in (r.get("low"), r.get("high"), r.get("realized"))], 0.0, 1.0)
    if y_range is not None:
        fig.update_yaxes(range=y_range)
    return fig
