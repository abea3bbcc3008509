"""SLIs, budgets and burn rates computed in ClickHouse from recorded windows."""

from __future__ import annotations

import datetime as _dt

import pytest

from collector.store import ChdbStore
from slo_engine.evaluate import evaluate
from slo_engine.model import Sli, Slo
from tests.slo_data import T0, detector_windows, minutes

H = _dt.timedelta(hours=1)


def _slo(sli: Sli, objective: float = 0.999, **kw: object) -> Slo:
    return Slo(name=f"s-{sli.kind}", model="m1", objective=objective, window_s=30 * 86400, sli=sli, **kw)  # type: ignore[arg-type]


def test_availability_latency_budget_and_burn_rates(store: ChdbStore) -> None:
    # 10 h of windows: 1% errors in the last hour, 0.1% before; 20% slow requests in the last 5 minutes
    minutes(store, T0 - 10 * H, 600, lambda i: 0.01 if i >= 540 else 0.001, requests=2000,
            slow_share=lambda i: 0.2 if i >= 595 else 0.0)
    avail, lat = _slo(Sli(kind="availability")), _slo(Sli(kind="latency", threshold_ms=250.0))
    res = {s.slo.name: s for s in evaluate(store, [avail, lat], T0, extra_windows=[2 * 3600])}
    a = res["s-availability"]
    assert a.total == 1_200_000
    assert a.good == 1_200_000 - 540 * 2 - 60 * 20
    assert a.windows[3600].burn_rate == pytest.approx(10.0)
    assert a.windows[300].burn_rate == pytest.approx(10.0)
    assert a.windows[7200].burn_rate == pytest.approx((60 * 20 + 60 * 2) / 240_000 / 0.001)  # "any window"
    assert a.budget_remaining == pytest.approx(1 - (2280 / 1_200_000) / 0.001)
    assert [r.firing for r in a.rules] == [False, False, True]   # 10x < 14.4 and 6h burn < 6; ticket: 3d and 6h >= 1
    lt = res["s-latency"]
    assert lt.windows[300].burn_rate == pytest.approx(0.2 / 0.001)
    assert lt.windows[3600].burn_rate == pytest.approx(2000 / 120_000 / 0.001)
    assert lt.rules[0].firing   # 16.7x over 1 h and 200x over 5 m


def test_interpolated_latency_threshold(store: ChdbStore) -> None:
    minutes(store, T0 - H, 60, lambda i: 0.0, slow_share=lambda i: 0.5)   # half at (250, 500], half at (25, 50]
    s = _slo(Sli(kind="latency", threshold_ms=375.0, interpolate=True))
    (st,) = evaluate(store, [s], T0)
    assert st.sli == pytest.approx(0.75)   # linear within the (250, 500] bucket


def test_only_windows_that_ended_count_and_versions(store: ChdbStore) -> None:
    minutes(store, T0 - _dt.timedelta(minutes=5), 6, lambda i: 0.5 if i == 5 else 0.0, version="v1")
    minutes(store, T0 - _dt.timedelta(minutes=5), 5, lambda i: 0.1, version="v2")
    whole = _slo(Sli(kind="availability"))
    per = _slo(Sli(kind="availability"), per_version=True)
    only_v2 = _slo(Sli(kind="availability"), model_version="v2")
    (w,) = evaluate(store, [whole], T0)
    assert w.total == 10_000 and w.good == 9_500   # the v1 window starting at T0 has not ended
    by_v = {s.model_version: s for s in evaluate(store, [per], T0)}
    assert by_v["v1"].sli == 1.0 and by_v["v2"].sli == pytest.approx(0.9)
    (v2,) = evaluate(store, [only_v2], T0)
    assert v2.model_version == "v2" and v2.total == 5_000


def test_no_data_means_no_burn_rate_and_no_alert(store: ChdbStore) -> None:
    (st,) = evaluate(store, [_slo(Sli(kind="availability"))], T0)
    assert st.sli is None and st.budget_remaining is None
    assert not any(r.firing for r in st.rules)


def test_freshness_counts_minutes_with_recent_data(store: ChdbStore) -> None:
    # data for the last 60 minutes except a 20-minute gap (minutes 30..49)
    minutes(store, T0 - H, 30, lambda i: 0.0)
    minutes(store, T0 - _dt.timedelta(minutes=10), 10, lambda i: 0.0)
    s = _slo(Sli(kind="freshness", max_age_s=300))
    (st,) = evaluate(store, [s], T0, extra_windows=[3600])
    # a minute is fresh when a window started up to 5 minutes before it: the gap leaves 20 - 4 stale minutes
    w = st.windows[3600]
    assert w.total == 60 and w.good == 60 - 16


def test_drift_sli_share_of_windows_without_alert(store: ChdbStore) -> None:
    detector_windows(store, T0 - 24 * H, 24, lambda i: i in (20, 21))
    detector_windows(store, T0 - 24 * H, 24, lambda i: i == 21, subject="y")   # same windows, another feature
    s = _slo(Sli(kind="drift"), objective=0.9)
    (st,) = evaluate(store, [s], T0, extra_windows=[86400])
    assert (st.windows[86400].good, st.windows[86400].total) == (22, 24)
    only_y = _slo(Sli(kind="drift", subject="y"), objective=0.9)
    (y,) = evaluate(store, [only_y], T0, extra_windows=[86400])
    assert (y.windows[86400].good, y.windows[86400].total) == (23, 24)


def test_accuracy_against_latest_labels(store: ChdbStore) -> None:
    now = _dt.datetime.now(_dt.UTC).replace(second=0, microsecond=0)   # predictions keep 90 days (TTL)
    n = 10
    ts = [now - _dt.timedelta(minutes=30) for _ in range(n)]
    store.insert("predictions", {
        "event_id": [f"p{i}" for i in range(n)], "ts": ts, "model": ["m1"] * n, "model_version": ["v1"] * n,
        "request_id": [f"r{i}" for i in range(n)], "pred_label": ["yes"] * n,
        "slices": [{"region": "eu" if i < 5 else "us"} for i in range(n)], "status": ["ok"] * n,
    })
    # r0..r5 labelled; r1 first "yes" then corrected to "no" (the latest label counts); r6.. unlabelled
    labels = [("r0", "yes", 1), ("r1", "yes", 1), ("r1", "no", 2), ("r2", "yes", 1), ("r3", "no", 1), ("r4", "yes", 1),
              ("r5", "no", 1)]
    store.insert("labels", {
        "event_id": [f"l{i}" for i in range(len(labels))],
        "ts": [now - _dt.timedelta(minutes=10 - m) for _, _, m in labels],
        "model": ["m1"] * len(labels), "request_id": [r for r, _, _ in labels],
        "label_class": [v for _, v, _ in labels],
        "schema_version": [1] * len(labels),
    })
    (st,) = evaluate(store, [_slo(Sli(kind="accuracy"), objective=0.9)], now)
    assert (st.good, st.total) == (3, 6)
    (eu,) = evaluate(store, [_slo(Sli(kind="accuracy", slice=(("region", "eu"),)), objective=0.9)], now)
    assert (eu.good, eu.total) == (3, 5)


def test_accuracy_on_the_estimate_while_labels_are_few(store: ChdbStore) -> None:
    import json

    now = _dt.datetime.now(_dt.UTC).replace(second=0, microsecond=0)
    n = 20
    store.insert("predictions", {
        "event_id": [f"p{i}" for i in range(n)], "ts": [now - _dt.timedelta(minutes=30)] * n, "model": ["m1"] * n,
        "model_version": ["v1"] * n, "request_id": [f"r{i}" for i in range(n)], "pred_label": ["yes"] * n,
        "slices": [{}] * n, "status": ["ok"] * n})
    store.insert("labels", {"event_id": ["l0", "l1"], "ts": [now - _dt.timedelta(minutes=5)] * 2, "model": ["m1"] * 2,
                            "request_id": ["r0", "r1"], "label_class": ["yes", "no"], "schema_version": [1, 1]})
    ws = now - _dt.timedelta(minutes=40)
    store.insert("detector_results", {
        "run_id": ["x"], "run_at": [now], "model": ["m1"], "model_version": ["*"], "window_start": [ws],
        "window_end": [ws + _dt.timedelta(minutes=15)], "detector": ["estimated_performance"], "subject": [""],
        "test": ["accuracy"], "value": [0.8], "threshold": [None], "status": ["ok"], "sample_size": [20],
        "detail": [json.dumps({"low": 0.7, "high": 0.9})]})
    (labelled,) = evaluate(store, [_slo(Sli(kind="accuracy"), objective=0.9)], now)
    assert (labelled.good, labelled.total) == (1, 2)
    (est,) = evaluate(store, [_slo(Sli(kind="accuracy", estimate_below_coverage=0.5), objective=0.9)], now)
    assert (est.good, est.total) == pytest.approx((16, 20))            # 2 of 20 labelled: the estimate counts
    (enough,) = evaluate(store, [_slo(Sli(kind="accuracy", estimate_below_coverage=0.05), objective=0.9)], now)
    assert (enough.good, enough.total) == (1, 2)                       # 10% labelled >= 5%: the labels count
