"""One label per request, everywhere: a request with several labels (a correction, a label delivered late, equal
timestamps in two deliveries and in one) has the same label in the predictions API, the dashboard's summary and
slices, the performance detector, the labels' drift source and the accuracy SLI (collector.fragments)."""

from __future__ import annotations

import datetime as _dt
import time

import pytest

from detectors.drift_sql import category_counts, labels_source
from detectors.performance import PerformanceConfig, performance_results
from driftline.config import Settings
from driftline.server import create_app
from slo_engine.evaluate import evaluate
from slo_engine.model import Sli, Slo
from tests import factories
from tests.apiclient import local_client

S = _dt.timedelta(seconds=1)


def _label(rid: str, cls: str, ts: _dt.datetime, event_id: str | None = None) -> dict[str, object]:
    ev = factories.label(rid, value=cls)
    ev["ts"] = ts.isoformat()
    if event_id is not None:
        ev["event_id"] = event_id
    return ev


def test_every_reader_sees_the_same_latest_label(store) -> None:  # type: ignore[no-untyped-def]
    t0 = factories.now() - _dt.timedelta(minutes=10)
    app = create_app(Settings(open_localhost=True, scheduler=False), store=store)
    with local_client(app) as c:
        def post(path: str, events: list[dict[str, object]]) -> None:
            r = c.post(path, json=events)
            assert r.status_code == 200 and r.json()["accepted"] == len(events), r.text
            time.sleep(0.01)                     # the next delivery is stored at a later ingested_at

        preds = {rid: factories.prediction(i, ts=t0 + i * S, request_id=rid,
                                           prediction={"label": "no" if rid == "r6" else "yes"})
                 for i, rid in enumerate(["r1", "r2", "r3", "r4", "r5", "r6"])}
        post("/v1/predictions", list(preds.values()))
        # r1: a correction sent later wins
        post("/v1/labels", [_label("r1", "no", t0)])
        post("/v1/labels", [_label("r1", "yes", t0 + 60 * S)])
        # r2: a label delivered late (stamped before the correction already stored) does not win
        post("/v1/labels", [_label("r2", "yes", t0 + 120 * S)])
        post("/v1/labels", [_label("r2", "no", t0 + 60 * S)])
        # r3: equal timestamps, two deliveries: the later delivery wins
        post("/v1/labels", [_label("r3", "no", t0)])
        post("/v1/labels", [_label("r3", "yes", t0)])
        # r4: equal timestamps in one delivery: the greater event id wins
        post("/v1/labels", [_label("r4", "no", t0, "l-r4-b"), _label("r4", "yes", t0, "l-r4-a")])
        # r5: no label; r6: a label, then an older one of the same class
        post("/v1/labels", [_label("r6", "no", t0)])
        post("/v1/labels", [_label("r6", "no", t0 - 60 * S)])
        want = {"r1": "yes", "r2": "yes", "r3": "yes", "r4": "no", "r5": None, "r6": "no"}
        correct, labelled = 4, 5                   # r1, r2, r3, r6 right; r4 wrong; r5 unlabelled

        # the predictions API (the dashboard's Debug page lists these)
        rows = c.get("/v1/predictions", params={"model": "m1", "minutes": 60}).json()
        assert {r["request_id"]: r["label_class"] for r in rows} == want
        # the dashboard's summary and slices
        s = c.get("/v1/ops/summary", params={"model": "m1", "minutes": 60}).json()
        assert (s["labelled"], s["accuracy"]) == (labelled, pytest.approx(correct / labelled))
        sl = c.get("/v1/ops/slices", params={"model": "m1", "minutes": 60, "key": "region"}).json()
        assert sum(r["labelled"] for r in sl) == labelled and sum(r["correct"] for r in sl) == correct
        cov = c.get("/v1/labels/coverage", params={"model": "m1", "minutes": 60}).json()
        assert (cov["predictions"], cov["labeled"]) == (6, labelled)

    start, end = t0 - 60 * S, factories.now() + 60 * S
    # the performance detector
    res = {r.test: r for r in performance_results(store, "m1", start, end, config=PerformanceConfig(min_samples=1))
           if r.subject == ""}
    assert res["accuracy"].value == pytest.approx(correct / labelled) and res["accuracy"].sample_size == labelled
    # the labels' drift source
    assert category_counts(store, labels_source("m1", start, end))["@label.class"] == (5, 2, {"yes": 3, "no": 2})
    # the accuracy SLI
    slo = Slo(name="acc", model="m1", objective=0.9, window_s=30 * 86400, sli=Sli(kind="accuracy"))
    (st,) = evaluate(store, [slo], end)
    assert (st.good, st.total) == (correct, labelled)
