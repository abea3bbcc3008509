"""The Lifecycle dashboard page in Streamlit's AppTest against a real server over a chDB store filled through the
ingest API (tests.dashboard_data): version drift, the canary verdict and cost per 1,000 inferences are shown."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from streamlit.testing.v1 import AppTest

from tests import dashboard_data as dd

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py")


@pytest.fixture
def api(store, monkeypatch) -> Iterator[str]:  # type: ignore[no-untyped-def]
    with dd.serve(store) as (base, _app):
        dd.fill(lambda path, body: httpx.post(base + path, json=body, timeout=30).json(), store)
        monkeypatch.setenv("DRIFTLINE_API", base)
        yield base


def test_lifecycle_page(api) -> None:  # type: ignore[no-untyped-def]
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.switch_page("views/lifecycle.py").run()
    assert not at.exception, [e.value for e in at.exception]
    errors = " ".join(str(e.value) for e in at.error)
    # v2 deployed 20 minutes ago while both replicas still serve v1: past the 10-minute grace period
    assert "Version drift" in errors and "expected v2" in errors and "v1 (" in errors
    warnings = " ".join(str(e.value) for e in at.warning)
    assert "HOLD" in warnings      # v2 has no traffic to compare
    assert {m.label: m.value for m in at.metric}["Cost per 1,000 inferences"] == dd.COST_PER_1K
    charts = {json.loads(c.proto.spec)["layout"]["title"]["text"]: json.loads(c.proto.spec)
              for c in at.get("plotly_chart")}
    cost = charts["Cost per 1,000 inferences"]
    assert [t["name"] for t in cost["data"]] == ["v1"]
    assert any("deploy v2" in a.get("text", "") for a in cost["layout"].get("annotations", []))
