"""Canary and shadow verdicts on a real store: a shifted, more failing candidate is rolled back, an equivalent
one promoted, a too-small one held with the samples still needed; the counts come from ClickHouse."""

from __future__ import annotations

import collections
import datetime as _dt

import numpy as np

from detectors.canary import CanaryConfig, compare
from detectors.comparison import n_noninferiority
from tests.slo_data import minutes

M = _dt.timedelta(minutes=1)
# predictions are kept 90 days (TTL): recent times
START = _dt.datetime.now(_dt.UTC).replace(second=0, microsecond=0) - 120 * M
END = START + 60 * M


def _traffic(store, version: str, *, requests_per_min: int, error_rate: float, n_pred: int, seed: int,  # type: ignore[no-untyped-def]
             score_shift: float = 0.0, correct_every: int = 10, slow_share: float = 0.0, ids: str = "") -> None:
    """60 one-minute metric windows and ``n_pred`` sampled predictions (with labels: all but every
    ``correct_every``-th right) of ``version``; ``ids`` names the request ids (shared ids: a shadow)."""
    minutes(store, START, 60, lambda i: error_rate, version=version, replicas=1, requests=requests_per_min,
            slow_share=lambda i: slow_share)
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, n_pred)
    score = 1 / (1 + np.exp(-(rng.normal(0, 1, n_pred) + score_shift)))
    preds: dict[str, list[object]] = collections.defaultdict(list)
    labels: dict[str, list[object]] = collections.defaultdict(list)
    for i in range(n_pred):
        rid = f"{ids or version}-r{i}"
        label = "yes" if score[i] >= 0.5 else "no"
        row = {"event_id": f"{version}-e{i}", "ts": START + (i * 3600 / n_pred) * _dt.timedelta(seconds=1),
               "model": "m1", "model_version": version, "request_id": rid, "features_num": {"x": float(x[i])},
               "features_cat": {}, "features_null": [], "pred_value": None, "pred_label": label,
               "pred_score": float(score[i]), "pred_probs": {}, "slices": {}, "latency_ms": 20.0, "status": "ok",
               "error_type": "", "schema_version": 1}
        for k, v in row.items():
            preds[k].append(v)
        truth = label if i % correct_every else ("no" if label == "yes" else "yes")
        for k, v in {"event_id": f"{version}-l{i}", "ts": START + 61 * M, "model": "m1", "request_id": rid,
                     "label_value": None, "label_class": truth, "schema_version": 1}.items():
            labels[k].append(v)
    store.insert("predictions", preds)
    if not ids or version == "v1":
        store.insert("labels", labels)


def _check(v, name):  # type: ignore[no-untyped-def]
    return next(c for c in v.checks if c.name == name)


def test_shifted_and_failing_candidate_is_rolled_back(store) -> None:  # type: ignore[no-untyped-def]
    _traffic(store, "v1", requests_per_min=1000, error_rate=0.01, n_pred=3000, seed=1)
    _traffic(store, "v2", requests_per_min=1000, error_rate=0.03, n_pred=3000, seed=2, score_shift=1.5)
    v = compare(store, "m1", "v1", "v2", start=START, end=END)
    assert v.verdict == "rollback", v.reason
    err = _check(v, "error_rate")
    assert err.outcome == "worse" and err.n_baseline == err.n_candidate == 60_000
    assert err.test.diff is not None and abs(err.test.diff - 0.02) < 1e-9 and err.adjusted_p < 1e-12
    assert err.test.effect > 0.1   # Cohen's h of 1% against 3%
    pred = _check(v, "prediction:@pred.score")
    assert pred.outcome == "shifted" and pred.test.effect > 0.2 and pred.test.p_value < 1e-6
    assert _check(v, "feature:x").outcome == "same"       # the split itself was random


def test_equivalent_candidate_is_promoted(store) -> None:  # type: ignore[no-untyped-def]
    _traffic(store, "v1", requests_per_min=1000, error_rate=0.01, n_pred=3500, seed=3)
    _traffic(store, "v2", requests_per_min=1000, error_rate=0.01, n_pred=3500, seed=4)
    v = compare(store, "m1", "v1", "v2", start=START, end=END)
    assert v.verdict == "promote", (v.reason, [c.as_dict() for c in v.checks])
    assert v.samples_needed == 0
    acc = _check(v, "accuracy")
    assert acc.outcome == "noninferior" and acc.n_baseline == acc.n_candidate == 3500
    assert acc.evidence["baseline"] == acc.evidence["candidate"] == 0.9
    assert _check(v, "latency").outcome == "noninferior"
    assert _check(v, "error_rate").test.upper < 0.01


def test_too_small_canary_is_held_with_the_samples_still_needed(store) -> None:  # type: ignore[no-untyped-def]
    _traffic(store, "v1", requests_per_min=5, error_rate=0.2, n_pred=60, seed=5)
    _traffic(store, "v2", requests_per_min=5, error_rate=0.2, n_pred=60, seed=6)
    cfg = CanaryConfig()
    v = compare(store, "m1", "v1", "v2", start=START, end=END, config=cfg)
    assert v.verdict == "hold", v.reason
    # the plan: error rate 20% (pooled), margin 1 point, alpha 5% one-sided, power 80%
    need_err = n_noninferiority(2 * 0.2 * 0.8, 0.01, alpha=0.05, power=0.8)
    z = 1.6448536269514722 + 0.8416212335729143
    assert need_err == int(np.ceil(z * z * 0.32 / 1e-4))
    need_acc = _check(v, "accuracy").n_needed
    assert v.samples_needed == max(need_err - 300, need_acc - 60) and v.samples_needed > 0
    assert str(v.samples_needed) in v.reason


def test_shadow_pairs_by_request_id(store) -> None:  # type: ignore[no-untyped-def]
    # the same 2000 requests scored by both versions; the shadow fails on 100 of them the baseline served
    _traffic(store, "v1", requests_per_min=1000, error_rate=0.0, n_pred=2000, seed=7, ids="req")
    _traffic(store, "v2", requests_per_min=1000, error_rate=0.0, n_pred=2000, seed=7, ids="req")
    store.execute("ALTER TABLE {db}.predictions UPDATE status = 'error' WHERE model_version = 'v2' "
                  "AND toUInt32(splitByString('-r', request_id)[2]) < 100 SETTINGS mutations_sync = 2")
    v = compare(store, "m1", "v1", "v2", start=START, end=END, mode="shadow")
    err = _check(v, "error_rate")
    assert (err.evidence["pairs"], err.evidence["cand_only"], err.evidence["base_only"]) == (2000, 100, 0)
    assert err.test.name == "McNemar exact test" and err.outcome == "worse"
    assert v.verdict == "rollback"
    assert _check(v, "prediction:paired_label").evidence["agreement"] == 1.0
    assert not any(c.name.startswith("feature:") for c in v.checks)   # identical inputs


def test_canary_through_the_api_and_the_cli(store, capsys) -> None:  # type: ignore[no-untyped-def]
    import httpx

    from driftline.cli import main
    from driftline.config import Settings
    from driftline.server import create_app
    from tests.servers import running

    _traffic(store, "v1", requests_per_min=5, error_rate=0.2, n_pred=60, seed=5)
    _traffic(store, "v2", requests_per_min=5, error_rate=0.2, n_pred=60, seed=6)
    app = create_app(Settings(open_localhost=True, scheduler=False), store=store)
    period = {"start": START.isoformat(), "end": END.isoformat()}
    with running(app, log_level="warning") as url:
        r = httpx.get(url + "/v1/canary", params={"model": "m1", "baseline": "v1", "candidate": "v2", **period},
                      timeout=120)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["verdict"] == "hold" and body["samples_needed"] > 0
        assert {c["name"] for c in body["checks"]} >= {"error_rate", "accuracy", "latency", "prediction:@pred.score"}
        bad = httpx.get(url + "/v1/canary", params={"model": "m1", "baseline": "v1", "candidate": "v1", **period})
        assert bad.status_code == 422 and "candidate" in bad.text
        assert httpx.get(url + "/v1/canary", params={"model": "m1", "baseline": "v1", "candidate": "v2",
                                                      "start": START.isoformat()}).status_code == 422
        assert main(["canary", "m1", "--baseline", "v1", "--candidate", "v2", "--minutes", "180", "--api", url]) == 0
    out = capsys.readouterr().out
    assert out.startswith("HOLD: too early") and "samples still needed per version" in out
