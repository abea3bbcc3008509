"""The dashboard's pure parts: API configuration, figures from API rows, and the ``driftline dashboard`` command."""

from __future__ import annotations

import json
import sys
from typing import Any

import httpx
import pytest

from dashboard import charts
from dashboard.client import ApiConfig, ApiError, ApiUnreachable, request


def test_api_config_from_env() -> None:
    assert ApiConfig.from_env({}) == ApiConfig(base_url="http://127.0.0.1:8000")
    cfg = ApiConfig.from_env({"DRIFTLINE_API": "http://h:9/", "DRIFTLINE_API_KEY": "s3cret"})
    assert cfg.base_url == "http://h:9" and cfg.headers() == {"X-API-Key": "s3cret"}
    cfg = ApiConfig.from_env({"DRIFTLINE_API_KEY": "t", "DRIFTLINE_API_KEY_HEADER": "Authorization"})
    assert cfg.headers() == {"Authorization": "t"}
    assert ApiConfig().headers() == {}


def test_request_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    def fake(method: str, url: str, **kw: Any) -> httpx.Response:
        if "down" in url:
            raise httpx.ConnectError("refused")
        assert kw["headers"] == {"X-API-Key": "k"}
        return httpx.Response(404, json={"detail": "no SLO named 'x'"}, request=httpx.Request(method, url))

    monkeypatch.setattr(httpx, "request", fake)
    with pytest.raises(ApiUnreachable, match="refused"):
        request(ApiConfig(base_url="http://down"), "GET", "/v1/models")
    with pytest.raises(ApiError, match="HTTP 404: no SLO named 'x'") as ei:
        request(ApiConfig(base_url="http://up", api_key="k"), "GET", "/v1/slo/status")
    assert ei.value.status == 404 and not isinstance(ei.value, ApiUnreachable)


def test_heatmap_and_burn_rates() -> None:
    rows = [{"subject": s, "test": "psi", "window_end": f"2026-01-01T0{w}:00:00Z", "value": v, "status": st}
            for s, w, v, st in (("a", 1, 0.1, "ok"), ("b", 1, 0.3, "alert"), ("a", 2, None, "not enough data"))]
    fig = json.loads(charts.drift_heatmap(rows, "psi").to_json())
    h = fig["data"][0]
    assert h["y"] == ["a", "b"] and h["z"] == [[0.1, None], [0.3, None]] and h["text"] == [["", "n/a"], ["ALERT", ""]]
    status = {"slo": "s", "rules": [{"tier": "page-fast", "long_window_s": 3600, "short_window_s": 300,
                                     "burn_rate": 14.4, "long_burn_rate": 20.0, "short_burn_rate": 30.0,
                                     "firing": True}]}
    b = json.loads(charts.burn_rates(status).to_json())
    assert b["layout"]["title"]["text"] == "s: burn rate by tier — FIRING: page-fast"
    assert b["data"][2]["y"] == [14.4] and b["data"][0]["x"] == ["page-fast (60m/5m)"]
    assert charts.detail_of({"detail": "not json"}) == {} and charts.detail_of({"detail": '{"low": 1}'}) == {"low": 1}


def test_cli_runs_streamlit_with_the_api_url(monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess

    from driftline.cli import main

    seen: dict[str, Any] = {}

    def fake_call(cmd: list[str], env: dict[str, str]) -> int:
        seen.update(cmd=cmd, env=env)
        return 0

    monkeypatch.setattr(subprocess, "call", fake_call)
    assert main(["dashboard", "--api", "http://api:8000", "--port", "8600", "--api-key", "k", "--headless"]) == 0
    cmd = seen["cmd"]
    assert cmd[:4] == [sys.executable, "-m", "streamlit", "run"] and cmd[4].endswith("dashboard/app.py")
    assert cmd[cmd.index("--server.port") + 1] == "8600" and cmd[cmd.index("--server.headless") + 1] == "true"
    assert seen["env"]["DRIFTLINE_API"] == "http://api:8000" and seen["env"]["DRIFTLINE_API_KEY"] == "k"


def test_rate_axes_stay_within_0_and_100_percent() -> None:
    assert charts.clamped_range([0.0, 0.0, None]) == [0.0, 1.0]
    assert charts.clamped_range([0.0, 0.0], 0.0, 1.0) == [0.0, 0.01]
    avail, overspent = charts.clamped_range([0.9, 1.0], 0.0, 1.0), charts.clamped_range([-9.0, 1.0], None, 1.0)
    assert avail is not None and 0.85 < avail[0] < 0.9 and avail[1] == 1.0
    assert overspent is not None and overspent[0] < -9.0 and overspent[1] == 1.0
    assert charts.clamped_range([None]) is None
    points = [{"t": "2026-01-01T00:00:00Z", "e": 0.0}, {"t": "2026-01-01T00:01:00Z", "e": 0.0}]
    fig = json.loads(charts.timeseries(points, {"e": "error rate"}, title="Error rate", y_title="",
                                       percent=True).to_json())
    assert fig["layout"]["yaxis"]["range"] == [0.0, 0.01]


RC: dict[str, Any] = {
    "slices": [{"slice": "region=eu", "contribution": 0.04, "metric": "accuracy", "value": 0.5, "baseline": 0.9,
                "share": 0.1, "n": 300, "source": "performance"},
               {"slice": "plan=pro", "contribution": 0.002, "metric": "accuracy", "value": 0.85, "baseline": 0.87,
                "share": 0.1, "n": 300, "source": "performance"}],
    "features": [{"feature": "x", "contribution": 2.4, "drift": 1.2, "importance": 2.0, "test": "psi",
                  "value": 0.24, "threshold": 0.2, "status": "alert"}],
    "burn": [{"slice": "region=eu", "burn_rate": 50.0, "burn_rate_low": 44.0, "bad_rate": 0.5, "bad": 150.0,
              "total": 300.0, "share": 0.1, "budget_share": 0.6, "kind": "accuracy", "events": 300}],
}


def test_root_cause_bars_and_table() -> None:
    fig = charts.root_cause(RC)
    slices, feats, burn = fig.data
    assert list(slices.y) == ["plan=pro", "region=eu"] and list(slices.x) == pytest.approx([0.2, 4.0])  # points
    assert list(feats.y) == ["x"] and list(burn.x) == [50.0]
    rows = charts.root_cause_rows(RC)
    assert [(r["ranking"], r["rank"], r["name"]) for r in rows] == [
        ("accuracy cost", 1, "region=eu"), ("accuracy cost", 2, "plan=pro"), ("drift", 1, "x"),
        ("budget burn", 1, "region=eu")]
    assert rows[0]["score"] == "-4.00 pts" and "0.5 vs 0.9 for the rest, 10% of labelled traffic" in rows[0]["why"]
    assert charts.root_cause_rows({}) == [] and len(charts.root_cause({}).data) == 3

