"""Calibrated drift thresholds through the store (real chDB): the reference's chunks, the cache, the history."""

from __future__ import annotations

import datetime as _dt
from typing import Any

import numpy as np
import pytest

from collector.store import ChdbStore
from detectors import calibration
from detectors.reference import reference_from_window
from detectors.runner import RunReport, run_detectors
from tests.detector_data import T0, insert_predictions

H = _dt.timedelta(hours=1)
#: the reference's hours drift a little (a real model's traffic is never iid): mean of x, share of category "a"
HOUR_SHIFTS = [-0.08, 0.06, 0.0, 0.08, -0.05, 0.07, -0.07, 0.03, -0.03, 0.05]
PER_HOUR = 6000


def _hour(rng: np.random.Generator, shift: float, n: int = PER_HOUR) -> list[dict]:
    pa = 0.4 + shift / 2
    cats = rng.choice(["a", "b", "c"], size=n, p=[pa, 0.35, 0.25 - shift / 2])
    xs = rng.normal(shift, 1.0, n).round(4)
    return [{"x": float(x), "c": str(c)} for x, c in zip(xs, cats, strict=True)]


@pytest.fixture
def reference(store: ChdbStore) -> _dt.datetime:
    """Ten hours of reference traffic (each hour slightly shifted), stored as the reference "ref"; returns the
    start of the first window after it."""
    rng = np.random.default_rng(11)
    for i, s in enumerate(HOUR_SHIFTS):
        insert_predictions(store, start=T0 - 12 * H + i * H, seconds=3599, features=_hour(rng, s))
    reference_from_window(store, "m1", T0 - 12 * H, T0 - 2 * H, name="ref", labels=False)
    calibration._CACHE.clear()
    return T0


def _by(rep: RunReport, test: str, subject: str) -> Any:
    return next(r for r in rep.results if r.test == test and r.subject == subject)


def test_a_stable_window_alerts_with_fixed_p_values_not_with_calibrated_thresholds(store: ChdbStore,
                                                                                   reference: _dt.datetime) -> None:
    insert_predictions(store, start=reference, seconds=3599, features=_hour(np.random.default_rng(12), 0.08))
    fixed = run_detectors(store, "m1", reference + H, H, reference="ref", write=False, config={"drift": {
        "tests": {"ks_p": {"threshold": 0.05, "min_effect": 0}, "chisquare": {"threshold": 0.05, "min_effect": 0}},
        "multiple_testing": "none"}})
    assert _by(fixed, "ks_p", "x").status == "alert" and _by(fixed, "chisquare", "c").status == "alert"
    assert _by(fixed, "ks_p", "x").detail["threshold_method"] == "fixed"

    cal = run_detectors(store, "m1", reference + H, H, reference="ref", write=False, config={"drift": {
        "tests": {"ks_p": {"threshold": "calibrated", "min_effect": 0},
                  "chisquare": {"threshold": "calibrated", "min_effect": 0}, "psi": "calibrated"},
        "multiple_testing": "none"}})
    for test, subject in (("ks_p", "x"), ("chisquare", "c"), ("psi", "x"), ("psi", "c")):
        r = _by(cal, test, subject)
        assert r.status == "ok", (test, subject, r.value, r.threshold, r.detail)
        assert r.detail["threshold_method"] == "calibrated:chunks"
        assert r.detail["calibration"]["chunks"] >= calibration.MIN_CHUNKS
        assert r.detail["calibration"]["chunk_size"] == calibration.chunk_size_bucket(PER_HOUR)
        assert r.detail["calibration"]["window_n"] == PER_HOUR
    # the p-value threshold sits far below the fixed 0.05 (the hours' own variability), PSI's far below 0.2
    assert _by(cal, "ks_p", "x").threshold < 1e-3 and _by(cal, "psi", "x").threshold < 0.1
    assert _by(cal, "ks_p", "x").detail["primary"] is True and "primary" not in _by(cal, "psi", "x").detail


def test_an_injected_psi_shift_alerts_and_the_chunks_are_cached(store: ChdbStore, reference: _dt.datetime,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    insert_predictions(store, start=reference, seconds=3599, features=_hour(np.random.default_rng(13), 0.5))
    cfg = {"drift": {"tests": {"psi": "calibrated"}}}
    rep = run_detectors(store, "m1", reference + H, H, reference="ref", write=False, config=cfg)
    x = _by(rep, "psi", "x")
    assert x.value >= 0.2 and x.status == "alert" and x.detail["threshold_method"] == "calibrated:chunks"
    assert _by(rep, "psi", "c").status == "alert"
    scans: list[int] = []
    real = calibration.chunk_bins

    def counted(*a: Any, **k: Any) -> Any:
        scans.append(1)
        return real(*a, **k)

    monkeypatch.setattr(calibration, "chunk_bins", counted)
    again = run_detectors(store, "m1", reference + H, H, reference="ref", write=False, config=cfg)
    assert not scans and _by(again, "psi", "x").threshold == x.threshold      # the second run reads no chunks


def test_without_chunks_history_then_sampling_calibrate(store: ChdbStore) -> None:
    """A rolling previous-window reference has one chunk: sampling first, then the model's own history."""
    rng = np.random.default_rng(3)
    for i in range(12):
        insert_predictions(store, start=T0 + i * H, seconds=3599, features=_hour(rng, 0.0, 800))
    cfg = {"drift": {"tests": {"psi": "calibrated", "js": None}}}
    first = run_detectors(store, "m1", T0 + 2 * H, H, config=cfg)
    r = _by(first, "psi", "x")
    assert r.detail["threshold_method"] == "calibrated:sampling" and r.status == "ok"
    assert "one chunk" in r.detail["calibration"]["chunks_skipped"]
    assert _by(first, "js", "x").detail["threshold_method"] == "fixed"
    for i in range(3, 12):
        last = run_detectors(store, "m1", T0 + i * H, H, config=cfg)
    r = _by(last, "psi", "x")
    assert r.detail["threshold_method"] == "calibrated:history", r.detail
    assert r.detail["calibration"]["history"] >= calibration.MIN_HISTORY
    # the history threshold never goes under the sampling floor
    assert r.threshold >= r.detail["calibration"]["floor"] - 1e-12


def test_chunk_counts_on_the_grid_equal_counts_by_comparison(store: ChdbStore, reference: _dt.datetime) -> None:
    from collector.sql import sql
    from detectors.drift_sql import chunk_bins, window_source
    from detectors.reference import load_profile

    prof = load_profile(store, "m1", "ref")
    assert prof is not None
    fp = prof.features["x"]
    assert fp.grid is not None
    src = window_source("m1", prof.window_start, prof.window_end)
    chunk = sql("toHour(ts) % 5")
    by_grid = chunk_bins(store, src, {"x": fp.edges}, chunk, grids={"x": fp.grid})["x"]
    by_edges = chunk_bins(store, src, {"x": fp.edges}, chunk)["x"]
    assert sorted(by_grid) == list(range(5)) and sum(c.sum() for c in by_grid.values()) == len(HOUR_SHIFTS) * PER_HOUR
    assert all(np.array_equal(by_grid[k], by_edges[k]) for k in by_grid)
