"""Every dashboard page in Streamlit's AppTest against a real server (uvicorn in a thread) over a chDB store
filled through the real ingest API: no exception, and the numbers fed in are on the page."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1.element_tree import Element

from collector.store import ChdbStore
from tests import dashboard_data as dd

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py")
TIMEOUT = 60


@pytest.fixture
def api(store: ChdbStore, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    with dd.serve(store) as (base, app):
        dd.fill(lambda path, body: httpx.post(base + path, json=body, timeout=30).json(), store)
        dd.evaluate_alerts(store, app)
        monkeypatch.setenv("DRIFTLINE_API", base)
        yield base


@pytest.fixture
def empty_api(store: ChdbStore, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    with dd.serve(store) as (base, _):
        monkeypatch.setenv("DRIFTLINE_API", base)
        yield base


def _run(page: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    if page:
        at.switch_page(f"views/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def _charts(at: AppTest) -> dict[str, dict[str, Any]]:
    out = {}
    for c in at.get("plotly_chart"):
        spec = json.loads(c.proto.spec)
        out[spec["layout"].get("title", {}).get("text", "")] = spec
    return out


def _texts(at: AppTest) -> str:
    parts = [e.value for kind in ("markdown", "caption", "info", "success", "warning", "error", "code")
             for e in at.get(kind) if isinstance(e, Element)]
    return "\n".join(str(p) for p in parts)


def test_executive(api: str) -> None:
    at = _run()
    m = _metrics(at)
    assert m["Availability"] == dd.AVAILABILITY
    assert m["Accuracy proxy"] == dd.ACCURACY and m["Label coverage"] == dd.LABEL_COVERAGE
    assert m["Cost per 1,000 inferences"] == dd.COST_PER_1K
    assert m["Deployment frequency"] == "8.0/day"          # 2 deploys in the last 6 hours
    assert m["Budget left · availability"] == dd.BUDGET_REMAINING
    open_alerts = [a for a in httpx.get(api + "/v1/slo/alerts",
                                        params={"active": True}).json() if a["state"] == "firing"]
    assert open_alerts and m["Open alerts"] == str(len(open_alerts))
    charts = _charts(at)
    assert charts["Error budget remaining"]["data"][0]["x"] == [pytest.approx(-9.0)]
    assert at.sidebar.selectbox[0].value == dd.MODEL and at.sidebar.selectbox[2].value == "Last 6 hours"
    # the version filter narrows every number: v2 sent nothing (the page run on its own owns the filters;
    # AppTest does not carry the entrypoint's widget values across runs of st.navigation)
    at.switch_page("views/executive.py").run()
    assert _metrics(at)["Availability"] == dd.AVAILABILITY
    at.sidebar.selectbox(key="dl_version_churn").select("v2").run()
    assert not at.exception and "Nothing from churn in the last 6 hours" in _texts(at)
    at.sidebar.selectbox(key="dl_version_churn").select("v1").run()
    assert _metrics(at)["Availability"] == dd.AVAILABILITY


def test_oncall(api: str) -> None:
    at = _run("oncall")
    m = _metrics(at)
    assert (m["Serving version"], m["Expected version"]) == ("v1", "v2")
    assert any("Version mismatch: serving v1, expected v2" in e.value for e in at.error)
    assert (m["Requests"], m["Error rate"], m["Worst p99"]) == ("60,000", "10.00%", "498 ms")
    charts = _charts(at)
    lat = charts["Latency"]
    assert [t["name"] for t in lat["data"]] == ["p50", "p95", "p99"]
    assert sorted(a["text"] for a in lat["layout"]["annotations"]) == ["deploy v1", "deploy v2"]
    err = charts["Error rate"]["data"][0]["y"]
    assert err[-1] == 1.0 and err[0] == 0.0
    burn = next(v for k, v in charts.items() if k.startswith("availability: burn rate by tier"))
    assert "FIRING" in burn["layout"]["title"]["text"]
    assert burn["data"][2]["name"] == "alert threshold" and burn["data"][2]["y"] == [14.4, 6.0, 1.0]
    assert len(at.dataframe) == 1 and "firing" in set(at.dataframe[0].value["state"])
    assert (m["Estimated accuracy"], m["Realized accuracy"], m["Label coverage"]) == ("80.00%", "–", "0.00%")
    est = charts["accuracy: estimated before labels (CBPE) and realized"]["data"]
    assert [t.get("name") for t in est[1:]] == ["95% band", "estimated (CBPE)", "realized"]
    assert est[2]["y"] == pytest.approx([0.9, 0.88, 0.86, 0.84, 0.82, 0.8])
    assert est[3]["y"] == pytest.approx([0.91, 0.89, 0.87]) and est[1]["y"][0] == pytest.approx(0.86)


def test_debug(api: str) -> None:
    at = _run("debug")
    charts = _charts(at)
    heat = charts["Drift (psi) per feature and window"]["data"][0]
    assert heat["y"] == ["region", "x", "y"] and len(heat["x"]) == 6
    assert heat["text"][2][-2:] == ["ALERT", "ALERT"] and "ALERT" not in heat["text"][1]
    assert any("Drift alerts (psi) on: y" in w.value for w in at.warning)
    dist = charts["region: reference and current"]["data"]       # from the detector's shares
    assert dist[0]["y"] == [0.5, 0.5] and dist[1]["y"] == [0.6, 0.4]
    sl = charts["accuracy per slice (95% interval)"]["data"][0]
    assert sl["y"] == ["region=eu", "region=us"] and sl["x"] == [0.82, 0.61]
    # root cause: us costs (0.82 - 0.61) x half the traffic; y drifts most; eu's errors burn the budget
    rc = charts["Root cause ranking"]["data"]
    assert rc[0]["y"] == ["region=us"] and rc[0]["x"] == [pytest.approx((0.82 - 0.61) * 0.5 * 100)]
    assert rc[1]["y"] == ["region", "x", "y"] and rc[1]["x"][-1] == pytest.approx(0.35 / 0.2)
    assert rc[2]["y"] == ["region=eu"]
    table = at.table[0].value
    assert list(table["name"]) == ["region=us", "y", "x", "region", "region=eu"]
    samples, dead = at.dataframe[0].value, at.dataframe[-1].value
    assert len(samples) == 200 and set(samples["label"].dropna()) == {"yes", "no"}
    assert samples["f.region"].notna().all()
    assert list(dead["field"]) == ["latency_ms"]
    assert "Errors by type" in charts
    # a feature without detector bins: reference and current from the sampled predictions
    at.selectbox(key="dbg_feature").select("x").run()
    assert not at.exception
    at.selectbox(key="dbg_feature").select("y").run()
    assert not at.exception
    assert "No reference data for y in that window" in _texts(at)   # the first 3 of 6 hours are empty
    assert "driftline reference" in _texts(at)                      # no stored reference: how to store one
    at.sidebar.selectbox(key="dl_range").select("Last hour").run()
    assert not at.exception
    d = _charts(at)["y: reference and current"]["data"]
    assert len(d[0]["y"]) == 20 and sum(d[0]["y"]) == pytest.approx(1.0) and sum(d[1]["y"]) == pytest.approx(1.0)


def test_slos_and_silences(api: str) -> None:
    at = _run("slos")
    m = _metrics(at)
    assert m["Budget remaining"] == dd.BUDGET_REMAINING and m["SLI · availability"] == "90.000%"
    burn = _charts(at)["availability: error budget remaining"]["data"][0]
    assert len(burn["x"]) >= 10 and burn["y"][-1] == pytest.approx(-9.0)
    assert "firing" in set(at.dataframe[0].value["state"])
    at.text_input(key="sil_by").input("ana")
    at.text_input(key="sil_comment").input("retraining")
    at.button(key="sil_submit").click().run()
    assert not at.exception
    assert any(s.value == "Silence created." for s in at.success)
    (sil,) = httpx.get(api + "/v1/slo/silences").json()
    assert sil["matchers"] == {"model": dd.MODEL} and sil["created_by"] == "ana"
    assert "model=churn" in _texts(at)
    at.button(key=f"expire_{sil['id']}").click().run()
    assert not at.exception and any(s.value == "Silence expired." for s in at.success)
    assert httpx.get(api + "/v1/slo/silences").json() == []


def test_governance_shows_retention_and_the_audit_log(api, store) -> None:  # type: ignore[no-untyped-def]
    from collector.retention import set_retention

    set_retention(store, "labels", 30, actor="cli:ana")
    httpx.post(api + "/v1/slo/silences", json={"matchers": {"model": dd.MODEL}, "duration": "1h"})
    at = _run("governance")
    kept = at.dataframe[0].value
    assert dict(zip(kept["table"], kept["kept"], strict=True))["labels"] == "30 days"
    assert dict(zip(kept["table"], kept["kept"], strict=True))["audit_log"] == "2 years (730 days)"
    log = at.dataframe[1].value
    assert {"retention.set", "silence.create"} <= set(log["action"])
    row = log[log["action"] == "retention.set"].iloc[0]
    assert row["actor"] == "cli:ana" and row["before"] == '{"days": 180}' and row["after"] == '{"days": 30}'
    assert "local" in set(log["actor"])           # the silence, from 127.0.0.1 without a key
    at.selectbox(key="gov_action").select("retention.set").run()
    assert not at.exception and list(at.dataframe[1].value["action"]) == ["retention.set"]


@pytest.mark.parametrize("page", [None, "oncall", "debug", "slos"])
def test_empty_store_tells_what_to_do(empty_api: str, page: str | None) -> None:
    at = _run(page)
    text = _texts(at)
    assert "No model has sent anything yet" in text
    assert f"curl -X POST {empty_api}/v1/predictions" in text and "Upload a reference" in text
    assert not at.get("plotly_chart")


@pytest.mark.parametrize("page", [None, "debug"])
def test_unreachable_api_is_a_clear_message(monkeypatch: pytest.MonkeyPatch, page: str | None) -> None:
    monkeypatch.setenv("DRIFTLINE_API", f"http://127.0.0.1:{dd.free_port()}")
    at = _run(page)
    assert any("Cannot reach the Driftline API" in e.value for e in at.error)


def test_debug_shows_the_stored_reference(api) -> None:  # type: ignore[no-untyped-def]
    """A stored reference (what `driftline reference` and the demo's `baseline` make) is drawn against the range
    on its own bins. The reference window holds the same predictions as the range, so the shares are equal."""
    import datetime as _dt

    now = _dt.datetime.now(_dt.UTC)
    ref = httpx.post(api + "/v1/references/window", json={"model": dd.MODEL, "name": "baseline",
                                                           "start": (now - _dt.timedelta(hours=2)).isoformat(),
                                                           "end": (now + _dt.timedelta(minutes=1)).isoformat()}).json()
    assert ref["rows"] == 200
    at = _run("debug")
    assert at.selectbox(key="dbg_reference").value == "baseline"
    at.selectbox(key="dbg_feature").select("x").run()
    assert not at.exception
    assert "Stored reference 'baseline' (window, 200 values)" in _texts(at) and "driftline reference" not in _texts(at)
    d = _charts(at)["x: reference and current"]["data"]
    assert 5 <= len(d[0]["x"]) <= 12 and d[0]["x"][0].startswith("< ") and d[0]["x"][-1].startswith("≥ ")
    assert sum(d[0]["y"]) == pytest.approx(1.0) and d[0]["y"] == pytest.approx(d[1]["y"])
    at.selectbox(key="dbg_feature").select("region").run()
    d = _charts(at)["region: reference and current"]["data"]
    assert d[0]["x"] == ["eu", "us"]
    assert d[0]["y"] == pytest.approx([0.5, 0.5]) and d[1]["y"] == pytest.approx([0.5, 0.5])
    # a current range without the reference's values (a version with no traffic; the demo data run up to now,
    # so a short range is not reliably empty): the reference alone
    q: dict[str, str | int] = {"model": dd.MODEL, "name": "baseline", "feature": "x", "minutes": 1,
                               "version": "no-traffic"}
    r = httpx.get(api + "/v1/references/distribution", params=q).json()
    assert r["current_n"] == 0 and sum(r["reference"]) == 200 and len(r["reference"]) == len(r["edges"]) + 1
    assert httpx.get(api + "/v1/references/distribution", params={**q, "name": "nope"}).status_code == 404
    assert httpx.get(api + "/v1/references/distribution", params={**q, "feature": "nope"}).status_code == 404


def test_short_range_charts_are_lines_on_rate_axes_from_zero(empty_api) -> None:  # type: ignore[no-untyped-def]
    """Ten-second metric windows (the SDK's) over the last 15 minutes: the 15-minute range shows a line of 30 s
    buckets, not a point a minute; the 6-hour range, where the data cover a part, buckets that part; error rate
    and availability axes stay within 0..100% (no errors: not a zero line in the middle of -1..1)."""
    import datetime as _dt

    from serving_shim.contract import LATENCY_BUCKETS_MS, SCHEMA_VERSION

    start = _dt.datetime.now(_dt.UTC).replace(microsecond=0) - _dt.timedelta(minutes=14)
    b = [0] * (len(LATENCY_BUCKETS_MS) + 1)
    b[3] = 50
    windows = [{"schema_version": SCHEMA_VERSION, "event_id": f"w{i}", "model": "tenths", "model_version": "v1",
                "window_start": (start + _dt.timedelta(seconds=10 * i)).isoformat(), "window_s": 10,
                "source": "r0", "requests": 50, "errors": {}, "latency_buckets": b, "latency_sum_ms": 500.0}
               for i in range(84)]
    assert httpx.post(empty_api + "/v1/metric-windows", json=windows).json()["accepted"] == 84
    at = _run("oncall")
    at.sidebar.selectbox(key="dl_range").select("Last 15 minutes").run()
    assert not at.exception
    charts = _charts(at)
    assert len(charts["Latency"]["data"][0]["x"]) >= 27          # 14 minutes of 30 s buckets (was 15 of 60 s)
    err = charts["Error rate"]
    assert set(err["data"][0]["y"]) == {0.0}
    lo, hi = err["layout"]["yaxis"]["range"]
    assert lo == 0 and 0 < hi <= 1
    assert charts["Latency"]["layout"]["yaxis"]["range"][0] >= 0
    at.sidebar.selectbox(key="dl_range").select("Last 6 hours").run()
    assert len(_charts(at)["Latency"]["data"][0]["x"]) >= 10      # 5-minute buckets would give 3 points
    at = _run()                                                     # the executive page's availability
    lo, hi = _charts(at)["Availability"]["layout"]["yaxis"]["range"]
    assert 0 <= lo < 1 and hi == 1
