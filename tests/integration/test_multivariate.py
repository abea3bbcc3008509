"""Multivariate drift through the store (real chDB): a broken correlation with unchanged marginals is caught,
the same distribution is not; results are written and read back."""

from __future__ import annotations

import datetime as _dt
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from collector.store import ChdbStore
from detectors import multivariate
from detectors.drift_sql import upload_source, window_source
from detectors.multivariate import MultivariateConfig, multivariate_results, read_sample, reference_sample_source
from detectors.reference import Profile, load_profile, reference_from_window
from detectors.results import query_results
from detectors.runner import run_detectors
from detectors.upload import upload_reference
from tests.detector_data import T0, insert_predictions

H = _dt.timedelta(hours=1)
N = 1500
CONFIG = {"detectors": ["multivariate"], "multivariate": {"sample": 5000}}


def _rows(rng: np.random.Generator, n: int, *, broken: bool) -> list[dict[str, Any]]:
    x1 = rng.normal(size=n)
    x2 = x1 + 0.3 * rng.normal(size=n)
    if broken:
        x2 = rng.permutation(x2)                 # same marginal, no relation to x1
    x3 = rng.normal(size=n)
    cats = rng.choice(["a", "b", "c"], n)
    out = []
    for i in range(n):
        row: dict[str, Any] = {"x1": float(x1[i]), "x2": float(x2[i]), "x3": float(x3[i]), "c": str(cats[i])}
        if i % 50 == 0:
            del row["x3"]                        # an absent feature: imputed
        out.append(row)
    return out


@pytest.fixture
def windows(store: ChdbStore) -> None:
    rng = np.random.default_rng(11)
    for w, broken in enumerate([False, False, True]):   # reference, the same distribution, the broken relation
        insert_predictions(store, start=T0 + w * H, seconds=3500, features=_rows(rng, N, broken=broken))


def test_broken_correlation_alerts_and_the_same_distribution_does_not(store: ChdbStore, windows: None) -> None:
    reference_from_window(store, "m1", T0, T0 + H, name="base", labels=False)
    same = run_detectors(store, "m1", T0 + 2 * H, H, reference="base", config=CONFIG, run_id="same")
    broken = run_detectors(store, "m1", T0 + 3 * H, H, reference="base", config=CONFIG, run_id="broken")
    for report, status in ((same, "ok"), (broken, "alert")):
        got = {r.test: r for r in report.results}
        assert set(got) == {"pca_reconstruction", "domain_classifier"}
        assert {r.detector for r in report.results} == {"multivariate"} and {r.subject for r in report.results} == {""}
        assert {t: r.status for t, r in got.items()} == {"pca_reconstruction": status, "domain_classifier": status}
        pca = got["pca_reconstruction"]
        assert pca.detail["reference_sample"] == N and pca.detail["window_sample"] == N and pca.sample_size == N
        assert pca.detail["features"] == 4 and pca.detail["threshold_method"].startswith("calibrated:")
    top = {r.test: r for r in broken.results}["pca_reconstruction"].detail["top_features"]
    assert {t["feature"] for t in top[:2]} == {"x1", "x2"}
    back = query_results(store, model="m1", detector="multivariate")
    assert {(r["run_id"], r["test"], r["status"]) for r in back} == {
        ("same", "pca_reconstruction", "ok"), ("same", "domain_classifier", "ok"),
        ("broken", "pca_reconstruction", "alert"), ("broken", "domain_classifier", "alert")}
    assert all(r["detail"]["threshold_method"] and r["threshold"] is not None for r in back)


def test_previous_window_reference_and_a_small_sample(store: ChdbStore, windows: None) -> None:
    prev = run_detectors(store, "m1", T0 + 2 * H, H, config=CONFIG, write=False)        # previous window: same dist
    assert [r.status for r in prev.results] == ["ok", "ok"]
    small = run_detectors(store, "m1", T0 + 2 * H, H, config={**CONFIG, "multivariate": {"sample": 100}}, write=False)
    assert [r.status for r in small.results] == ["not enough data"] * 2
    assert "fewer than min_rows=200" in small.results[0].detail["reason"]


def test_wide_samples_are_capped_and_say_so(store: ChdbStore, windows: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(multivariate, "MAX_CELLS", 4 * 400)        # 4 features: 400 rows a sample
    rep = run_detectors(store, "m1", T0 + 2 * H, H, config=CONFIG, write=False)
    assert [(r.detail["sample_capped"], r.detail["window_sample"], r.sample_size) for r in rep.results] == \
        [(400, 400, 400)] * 2


def test_samples_are_deterministic_and_bounded(store: ChdbStore, windows: None) -> None:
    src = window_source("m1", T0, T0 + H)
    a = read_sample(store, src, ["x1", "x3"], ["c"], 300)
    b = read_sample(store, src, ["x1", "x3"], ["c"], 300)
    assert a.rows == 300 and np.array_equal(a.numeric["x1"], b.numeric["x1"]) and a.categorical == b.categorical
    assert np.isnan(a.numeric["x3"]).sum() > 0 and set(a.categorical["c"]) <= {"a", "b", "c"}
    full = read_sample(store, src, ["x1"], [], 10_000)
    assert full.rows == N


def test_an_uploaded_baseline_keeps_a_bounded_sample(store: ChdbStore, windows: None, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(multivariate, "UPLOAD_SAMPLE_ROWS", 1000)
    rows = _rows(np.random.default_rng(12), N, broken=False)
    pd.DataFrame(rows).to_csv(tmp_path / "base.csv", index=False)
    prof = upload_reference(store, "m1", "trained", str(tmp_path / "base.csv"), progress=False)
    again = upload_reference(store, "m1", "trained", str(tmp_path / "base.csv"), progress=False)   # a second build
    assert store.scalar("SELECT count() FROM {db}.reference_rows") == 0
    assert store.scalar("SELECT count() FROM {db}.reference_samples") == 2000
    loaded = load_profile(store, "m1", "trained")
    assert loaded is not None and loaded.built_at is not None and prof.built_at is not None
    src = reference_sample_source(loaded, None)
    assert src is not None
    sample = read_sample(store, src, ["x1", "x2"], ["c"], 5000)
    assert sample.rows == 1000                                   # one build's rows, bounded
    assert set(sample.numeric["x1"].round(6)) <= {round(r["x1"], 6) for r in rows}
    same = run_detectors(store, "m1", T0 + 2 * H, H, reference="trained", config=CONFIG, write=False)
    broken = run_detectors(store, "m1", T0 + 3 * H, H, reference="trained", config=CONFIG, write=False)
    assert [r.status for r in same.results if r.detector == "multivariate"] == ["ok", "ok"]
    assert [r.status for r in broken.results if r.detector == "multivariate"] == ["alert", "alert"]
    assert again.built_at != prof.built_at


def test_a_reference_without_rows_is_not_enough_data(store: ChdbStore, windows: None) -> None:
    reference_from_window(store, "m1", T0, T0 + H, name="base", labels=False)
    prof = Profile(model="m1", name="up", source="upload", rows=10, features={})
    res = multivariate_results(store, prof, window_source("m1", T0, T0 + H), MultivariateConfig())
    assert [r.status for r in res] == ["not enough data"] * 2 and "keeps no rows" in res[0].detail["reason"]
    staged = multivariate_results(store, prof, window_source("m1", T0, T0 + H), MultivariateConfig(),
                                  reference=upload_source("nothing-staged"))
    assert [r.status for r in staged] == ["not enough data"] * 2 and "needs 2" in staged[0].detail["reason"]
    built = replace(load_profile(store, "m1", "base") or prof, source="upload", built_at=T0)  # stored before samples
    old = multivariate_results(store, built, window_source("m1", T0, T0 + H), MultivariateConfig())
    assert [r.status for r in old] == ["not enough data"] * 2 and "no stored row sample" in old[0].detail["reason"]


def test_a_failing_sample_is_an_error_result(store: ChdbStore, windows: None, monkeypatch: pytest.MonkeyPatch) -> None:
    reference_from_window(store, "m1", T0, T0 + H, name="base", labels=False)
    store.execute("DROP TABLE {db}.predictions")             # the store fails under the detector: a result, no raise
    report = run_detectors(store, "m1", T0 + 2 * H, H, reference="base", config=CONFIG, write=False)
    errs = [r for r in report.results if r.detector == "multivariate"]
    assert [r.status for r in errs] == ["error"] and "predictions" in errs[0].detail["reason"]
