"""Debug: root cause (model-level drift verdict, slices and features ranked), drift heatmap (features × windows),
a feature's reference and current distributions, per-slice performance with intervals, sampled (redacted) inputs
with predictions and labels, recent errors and dead letters."""

from __future__ import annotations

import datetime as _dt
from typing import Any

import streamlit as st

from dashboard import charts
from dashboard.client import ApiError
from dashboard.shell import Ctx, run_page

REFERENCE_HELP = ("Drift needs a reference: store your training data's profile with "
                  "`driftline reference train.csv --model MODEL` (CSV or Parquet; the name defaults to `baseline`), "
                  "or a past window's with `POST /v1/references/window`.")


def _in_version(ctx: Ctx, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in rows if not ctx.version or r.get("model_version") in ("", ctx.version)]


def _latest(rows: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for r in sorted(rows, key=lambda r: str(r["window_end"])):
        out[(r["subject"], r["test"])] = r
    return out


def drift(ctx: Ctx, results: list[dict[str, Any]]) -> None:
    st.subheader("Drift per feature and window")
    if not results:
        st.info(f"No drift results in range. {REFERENCE_HELP}")
        return
    tests = sorted({r["test"] for r in results})
    test = st.selectbox("Test", tests, index=tests.index("psi") if "psi" in tests else 0, key="dbg_test")
    deploys = ctx.get("/v1/ops/deploys", model=ctx.model, minutes=ctx.minutes)
    st.plotly_chart(charts.drift_heatmap(results, str(test), deploys), key="dbg_heatmap")
    alerts = sorted({r["subject"] for r in results if r["status"] == "alert" and r["test"] == test})
    if alerts:
        st.warning(f"Drift alerts ({test}) on: {', '.join(alerts)}")


def _bin_labels(edges: list[float], n: int) -> list[str]:
    if len(edges) == n + 1:
        return [f"{edges[i]:.3g}–{edges[i + 1]:.3g}" for i in range(n)]
    if len(edges) == n - 1:
        return [f"< {edges[0]:.3g}", *[f"{edges[i]:.3g}–{edges[i + 1]:.3g}" for i in range(n - 2)],
                f"≥ {edges[-1]:.3g}"]
    return [str(i) for i in range(n)]


def _stored_reference(ctx: Ctx, feature: str) -> bool:
    """The feature in a stored reference profile against the current range, on the reference's bins; False when
    the model has no stored reference (rolling ``previous:`` ones are the detectors' own)."""
    refs = [r for r in ctx.get("/v1/references", model=ctx.model) if not str(r["name"]).startswith("previous:")]
    if not refs:
        return False
    names = [r["name"] for r in sorted(refs, key=lambda r: str(r["last_built"]), reverse=True)]
    name = str(st.selectbox("Reference", names, index=names.index("baseline") if "baseline" in names else 0,
                            key="dbg_reference"))
    try:
        d = ctx.get("/v1/references/distribution", model=ctx.model, name=name, feature=feature,
                    version=ctx.version, minutes=ctx.minutes)
    except ApiError as exc:
        if exc.status != 404:
            raise
        st.info(f"Reference {name!r} has no profile of {feature}.")
        return True
    labels = d["categories"] or _bin_labels(d["edges"], len(d["reference"]))
    st.caption(f"Stored reference {name!r} ({d['source']}, {d['reference_n']:,} values) against the "
               f"{ctx.range_label.lower()} ({d['current_n']:,} values), on the reference's bins.")
    if not d["current_n"]:
        st.info(f"No values of {feature} in the {ctx.range_label.lower()}: only the reference is shown.")
    st.plotly_chart(charts.distributions(labels, d["reference"], d["current"], feature=feature), key="dbg_dist")
    return True


def distribution(ctx: Ctx, results: list[dict[str, Any]]) -> None:
    st.subheader("Reference and current distribution")
    feats = sorted({f["feature"] for f in ctx.get("/v1/ops/features", model=ctx.model, minutes=max(ctx.minutes, 1440))}
                   | {r["subject"] for r in results})
    if not feats:
        st.info("No features in the sampled predictions yet: send predictions with a `features` map.")
        return
    feature = str(st.selectbox("Feature", feats, key="dbg_feature"))
    if _stored_reference(ctx, feature):
        return
    st.info(f"No stored reference for {ctx.model}. {REFERENCE_HELP} Until then, windows of the range are compared.")
    shared = [r for r in results if r["subject"] == feature and "reference_share" in charts.detail_of(r)]
    if shared:
        r = max(shared, key=lambda r: str(r["window_end"]))
        d = charts.detail_of(r)
        ref, cur = d["reference_share"], d["current_share"]
        labels = d.get("categories") or _bin_labels([float(e) for e in d.get("edges", [])], len(ref))
        st.caption(f"From the drift detector's {r['test']} result for the window ending {r['window_end']} "
                   f"(value {r['value']:.3g}, threshold {r['threshold']}), against the window before it.")
        st.plotly_chart(charts.distributions(labels[:len(ref)], ref, cur, feature=feature, normalise=False),
                        key="dbg_dist")
        return
    mode = st.radio("Reference window", ["first half of the range", "previous period"], horizontal=True,
                    key="dbg_refmode")
    now = _dt.datetime.now(_dt.UTC)
    span = _dt.timedelta(minutes=ctx.minutes)
    if mode == "previous period":
        r0, r1, c0, c1 = now - 2 * span, now - span, now - span, now
    else:
        r0, r1, c0, c1 = now - span, now - span / 2, now - span / 2, now
    q = {k: v.replace(second=0, microsecond=0).isoformat() for k, v in
         (("reference_start", r0), ("reference_end", r1), ("current_start", c0),
          ("current_end", c1 + _dt.timedelta(minutes=1)))}
    d = ctx.get("/v1/ops/distribution", model=ctx.model, feature=feature, version=ctx.version, **q)
    if d["kind"] == "none" or not sum(d["reference"]):
        st.info(f"No reference data for {feature} in that window.")
        if d["kind"] == "none":
            return
    labels = d["categories"] if d["kind"] == "categorical" else _bin_labels(d["edges"], len(d["reference"]))
    st.caption(f"Sampled predictions, reference {r0:%H:%M}–{r1:%H:%M} against current {c0:%H:%M}–{c1:%H:%M} UTC "
               f"({sum(d['reference'])} and {sum(d['current'])} values).")
    st.plotly_chart(charts.distributions(labels, d["reference"], d["current"], feature=feature), key="dbg_dist")


def slices(ctx: Ctx, perf: list[dict[str, Any]]) -> None:
    st.subheader("Performance per slice")
    rows = [r for r in _latest(perf).values() if "=" in r["subject"] and r["value"] is not None]
    if rows:
        metrics = sorted({r["test"] for r in rows})
        metric = str(st.selectbox("Metric", metrics, index=metrics.index("accuracy") if "accuracy" in metrics else 0,
                                  key="dbg_metric"))
        chosen = [r for r in rows if r["test"] == metric]
        pts = [{"slice": r["subject"], "value": r["value"], "low": charts.detail_of(r).get("low"),
                "high": charts.detail_of(r).get("high"), "n": r["sample_size"]} for r in chosen]
        threshold = next((r["threshold"] for r in chosen if r.get("threshold") is not None), None)
        st.caption("From the performance detector's latest window.")
    else:
        metric, threshold = "accuracy", None
        pts = [{"slice": f"{r['key']}={r['value']}", "value": r["accuracy"], "low": r["low"], "high": r["high"],
                "n": r["labelled"]} for r in ctx.get("/v1/ops/slices", model=ctx.model, version=ctx.version,
                                                      minutes=ctx.minutes) if r["accuracy"] is not None]
        if pts:
            st.caption("Accuracy of labelled sampled predictions per slice, 95% Wilson interval.")
    if not pts:
        st.info("No labelled predictions with slices in range: send `slices` (segment tags) with predictions and "
                "labels to `/v1/labels` (joined by `request_id`).")
        return
    st.plotly_chart(charts.slice_intervals(pts, metric, threshold), key="dbg_slices")


def _flat(p: dict[str, Any]) -> dict[str, Any]:
    out = {"ts": p["ts"], "version": p["model_version"], "request_id": p["request_id"], "status": p["status"]}
    out.update({f"f.{k}": v for k, v in {**(p.get("features_num") or {}), **(p.get("features_cat") or {})}.items()})
    pred = p["pred_label"] if p["pred_label"] is not None else p["pred_value"]
    out.update(prediction=pred, score=p["pred_score"],
               label=p["label_class"] if p["label_class"] is not None else p["label_value"])
    return out


def samples_and_errors(ctx: Ctx) -> None:
    preds = _in_version(ctx, ctx.get("/v1/predictions", model=ctx.model, minutes=ctx.minutes, limit=500))
    st.subheader("Sampled inputs, predictions and labels")
    if preds:
        st.caption(f"The {len(preds)} latest sampled predictions (inputs as redacted by the SDK).")
        st.dataframe([_flat(p) for p in preds[:200]], hide_index=True)
    else:
        st.info("No sampled predictions in range.")
    st.subheader("Recent errors")
    ts = ctx.get("/v1/ops/latency", model=ctx.model, version=ctx.version, minutes=ctx.minutes)
    if any(r["errors"] for r in ts):
        st.plotly_chart(charts.errors_by_type(ts, ctx.get("/v1/ops/deploys", model=ctx.model, minutes=ctx.minutes)),
                        key="dbg_errtypes")
    errs = [p for p in preds if p["status"] == "error"]
    if errs:
        st.dataframe([{"ts": p["ts"], "version": p["model_version"], "request_id": p["request_id"],
                       "error_type": p["error_type"], "latency_ms": p["latency_ms"]} for p in errs], hide_index=True)
    elif not any(r["errors"] for r in ts):
        st.success("No errors in range.")
    st.subheader("Dead letters")
    dead = ctx.get("/v1/dead-letters", limit=100)
    if dead:
        st.caption(f"{len(dead)} latest rejected events (all models): fix the sender, the reason names the field.")
        st.dataframe(dead, hide_index=True)
    else:
        st.success("No rejected events.")


def root_cause(ctx: Ctx) -> None:
    """The model-level drift verdict and the root-cause rankings of the range (``GET /v1/root-cause``)."""
    st.subheader("Root cause")
    start = ctx.start.replace(second=0, microsecond=0)   # to the minute: one cached call per minute
    rc = ctx.get("/v1/root-cause", model=ctx.model, version=ctx.version or None, start=start.isoformat(),
                 burn="errors", objective=0.99, top=5)
    v = rc.get("verdict")
    if v and v.get("value") is not None:
        drifted = ", ".join(d["feature"] for d in v.get("drifted") or []) or "none"
        say = st.warning if v["status"] == "alert" else st.success
        say(f"Model-level drift: {v['value']:.0%} of features drifted (threshold {v['threshold']:.0%}); "
            f"drifted: {drifted}.")
    if not any(rc.get(k) for k in ("slices", "features", "burn")):
        st.info("Nothing to rank in range: the rankings need per-slice performance (labels or CBPE), drift results "
                "or predictions with `slices`.")
        return
    st.caption("Slices by the accuracy points they cost (their accuracy against the rest of the traffic, times "
               "their share), features by drift in units of their threshold times importance, slices by how fast "
               "they burn a 99% error budget.")
    st.plotly_chart(charts.root_cause(rc), key="dbg_rootcause")
    st.table(charts.root_cause_rows(rc))


def render(ctx: Ctx) -> None:
    results = _in_version(ctx, ctx.get("/v1/detectors/results", model=ctx.model, minutes=ctx.minutes))
    drift_rows = [r for r in results if r["detector"] == "drift" and r["subject"]]
    root_cause(ctx)
    drift(ctx, drift_rows)
    distribution(ctx, drift_rows)
    slices(ctx, [r for r in results if r["detector"] == "performance"])
    samples_and_errors(ctx)


run_page("Debug", render)
