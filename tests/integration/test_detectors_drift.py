"""Drift through the store (real chDB): SQL counts and test values against numpy/scipy on raw data."""

from __future__ import annotations

import datetime as _dt
import json
import logging
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from collector.store import ChdbStore
from detectors.drift import DriftConfig, drift_results, summarize_window
from detectors.drift_sql import window_source
from detectors.reference import coarse_bins, load_profile, reference_from_window
from detectors.results import Result
from detectors.runner import run_detectors
from detectors.stattests import psi
from tests.detector_data import T0, insert_labels, insert_predictions

H = _dt.timedelta(hours=1)
#: the two_windows fixture: reference rows, current rows, the current rows' request ids
TwoWindows = tuple[list[dict[str, Any]], list[dict[str, Any]], list[str]]


def _rows(rng: np.random.Generator, n: int, shift: float, cats: list[str]) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        f: dict = {"x": float(np.round(rng.normal(shift, 1), 3)), "c": str(rng.choice(cats)), "k": 7.0, "allnull": None}
        if i % 10 == 0:
            del f["x"]            # absent
        elif i % 10 == 1:
            f["x"] = None         # explicit null
        elif i % 10 == 2:
            f["x"] = 0.0          # a real zero (rows read by key see 0 for an absent feature too)
        elif i % 10 == 3:
            f = dict(reversed(f.items()))  # the same features in another order: another layout
        out.append(f)
    return out


def _raw(rows: list[dict], name: str) -> np.ndarray:
    return np.array([r[name] for r in rows if isinstance(r.get(name), float)])


@pytest.fixture
def two_windows(store: ChdbStore) -> TwoWindows:
    rng = np.random.default_rng(5)
    ref = _rows(rng, 3000, 0.0, ["a", "b", "c"])
    cur = _rows(rng, 2000, 0.7, ["a", "b", "d"])
    insert_predictions(store, start=T0, seconds=3500, features=ref,
                       preds=[{"score": float(rng.random()), "label": "yes"} for _ in ref])
    rids = insert_predictions(store, start=T0 + H, seconds=3500, features=cur,
                              preds=[{"score": float(rng.random() ** 2), "label": ["yes", "no"][i % 2]}
                                     for i in range(len(cur))])
    return ref, cur, rids


@pytest.mark.parametrize("max_layouts", [4, 1,
                                         0])  # 0: every row read by key; 1: most rows by position, the rest by key
def test_sql_bin_counts_equal_numpy_on_the_raw_values(store: ChdbStore, two_windows: TwoWindows,
                                                      monkeypatch: pytest.MonkeyPatch, max_layouts: int) -> None:
    from detectors import drift_sql

    monkeypatch.setattr(drift_sql, "MAX_LAYOUTS", max_layouts)
    ref, cur, _ = two_windows
    lay = drift_sql.key_layouts(store, window_source("m1", T0, T0 + H))
    assert {ks for _, ks, _ in lay.groups} <= {("x", "k"), ("k", "x"), ("k",)}
    assert len(lay.groups) == min(max_layouts, 3) and sum(n for *_, n in lay.groups) + lay.rest_rows == len(ref)
    assert lay.present == {"x": sum(1 for r in ref if "x" in r and r["x"] is not None), "k": len(ref)}
    prof = reference_from_window(store, "m1", T0, T0 + H, name="w0")
    fp = prof.features["x"]
    full = np.concatenate([[-np.inf], fp.edges, [np.inf]])
    assert fp.n == len(_raw(ref, "x")) and prof.rows == 3000
    assert fp.counts.tolist() == np.histogram(_raw(ref, "x"), full)[0].tolist()
    assert fp.counts[0] == 0 and fp.counts[-1] == 0      # nothing below the reference min or above its max
    summary = summarize_window(store, window_source("m1", T0 + H, T0 + 2 * H), prof)
    assert summary.fine["x"].tolist() == np.histogram(_raw(cur, "x"), full)[0].tolist()
    assert summary.numeric["x"].n == len(_raw(cur, "x"))
    assert summary.nulls["x"] == sum(1 for r in cur if "x" in r and r["x"] is None)
    coarse = summarize_window(store, window_source("m1", T0 + H, T0 + 2 * H), prof, bins=10)   # comparison path
    e = coarse.edges["x"]
    assert len(e) <= 16 and coarse.fine["x"].tolist() == np.histogram(
        _raw(cur, "x"), np.concatenate([[-np.inf], e, [np.inf]]))[0].tolist()
    again = load_profile(store, "m1", "w0")
    assert again is not None and again.features["x"].counts.tolist() == fp.counts.tolist()


def test_numeric_tests_equal_independent_computations(store: ChdbStore, two_windows: TwoWindows) -> None:
    ref, cur, _ = two_windows
    prof = reference_from_window(store, "m1", T0, T0 + H, name="w0")
    fp = prof.features["x"]
    rep = run_detectors(store, "m1", T0 + 2 * H, H, reference="w0", config={"drift": {"tests": {
        "psi": {"threshold": 0.2, "smoothing": 1e-4}, "kl": None, "js": None, "ks": None, "wasserstein": None}}})
    got = {r.test: r for r in rep.results if r.detector == "drift" and r.subject == "x"}
    r_x, c_x = _raw(ref, "x"), _raw(cur, "x")
    e = coarse_bins(fp, 10)
    rc = np.histogram(r_x, np.concatenate([[-np.inf], e, [np.inf]]))[0]
    cc = np.histogram(c_x, np.concatenate([[-np.inf], e, [np.inf]]))[0]
    rp, cp = rc / rc.sum() + 1e-4, cc / cc.sum() + 1e-4
    rp, cp = rp / rp.sum(), cp / cp.sum()
    assert got["psi"].value == pytest.approx(float(np.sum((cp - rp) * np.log(cp / rp))), abs=1e-6)
    assert got["psi"].status == "alert" and got["psi"].threshold == 0.2
    assert got["kl"].value == pytest.approx(float(stats.entropy(rp, cp)), abs=1e-6)
    # KS at the 100-quantile grid vs the exact two-sample statistic: a lower bound within the largest bin mass
    full = np.concatenate([[-np.inf], fp.edges, [np.inf]])
    fr = np.cumsum(np.histogram(r_x, full)[0]) / len(r_x)
    fc = np.cumsum(np.histogram(c_x, full)[0]) / len(c_x)
    assert got["ks"].value == pytest.approx(float(np.abs(fr - fc).max()), abs=1e-6)
    exact = stats.ks_2samp(r_x, c_x).statistic
    assert got["ks"].value <= exact + 1e-9 and exact - got["ks"].value < 0.05
    # Wasserstein on bin midpoints vs scipy on the same midpoints, and close to scipy on the raw values
    bounds = np.concatenate([[min(r_x.min(), c_x.min())], fp.edges, [max(r_x.max(), c_x.max())]])
    mids = (bounds[:-1] + bounds[1:]) / 2
    want = stats.wasserstein_distance(mids, mids, np.histogram(r_x, full)[0], np.histogram(c_x, full)[0]) / r_x.std()
    assert got["wasserstein"].value == pytest.approx(want, abs=1e-6)
    assert got["wasserstein"].value == pytest.approx(stats.wasserstein_distance(r_x, c_x) / r_x.std(), abs=0.05)


def test_categorical_tests_other_bucket_new_and_vanished(store: ChdbStore, two_windows: TwoWindows) -> None:
    ref, cur, _ = two_windows
    rep = run_detectors(store, "m1", T0 + 2 * H, H, reference="previous", write=False)
    got = {r.test: r for r in rep.results if r.detector == "drift" and r.subject == "c"}
    rv = pd.Series([r["c"] for r in ref]).value_counts()
    cv = pd.Series([r["c"] for r in cur]).value_counts()
    cats = list(rv.index)
    table = np.vstack([rv[cats].to_numpy(), [cv.get(c, 0) for c in cats]])
    table = np.hstack([table, [[0], [len(cur) - table[1].sum()]]])   # "other": categories new to the reference
    assert got["chisquare"].value == pytest.approx(float(stats.chi2_contingency(table, correction=False).pvalue),
                                                   abs=1e-9)
    assert got["new_categories"].value == pytest.approx(cv["d"] / len(cur), abs=1e-12)
    assert got["new_categories"].detail["new"] == {"d": int(cv["d"])}
    assert got["vanished_categories"].value == pytest.approx(rv["c"] / len(ref), abs=1e-12)
    from detectors.stattests import Binned

    b = Binned(reference=table[0], current=table[1], kind="categorical")
    assert got["psi"].value == pytest.approx(psi(b), abs=1e-9) and got["psi"].status == "alert"


def test_prediction_and_label_drift(store: ChdbStore, two_windows: TwoWindows) -> None:
    _, cur, rids = two_windows
    ref_rids = [f"ref-{i}" for i in range(400)]
    insert_predictions(store, start=T0 + 2 * H, seconds=3000, features=[{"x": 1.0}] * 400,
                       preds=[{"label": "yes"}] * 400, request_ids=ref_rids)
    insert_labels(store, ref_rids, classes=["yes"] * 300 + ["no"] * 100)
    insert_labels(store, rids[:400], classes=["no"] * 400)
    insert_labels(store, rids[:400], classes=["yes"] * 300 + ["no"] * 100,       # later labels win (argMax ts)
                  ts=T0 + 3 * H)
    prof = reference_from_window(store, "m1", T0 + 2 * H, T0 + 3 * H, name="with-labels")
    assert prof.features["@label.class"].categories == ("yes", "no")
    rep = run_detectors(store, "m1", T0 + 2 * H, H, reference="with-labels", write=False)
    by = {(r.subject, r.test): r for r in rep.results if r.detector == "drift"}
    assert by[("@label.class", "psi")].value == pytest.approx(0.0, abs=1e-9)   # 300/100 both sides
    assert by[("@pred.label", "new_categories")].value == pytest.approx(0.5)   # "no" never predicted in the reference
    rep2 = run_detectors(store, "m1", T0 + 2 * H, H, reference="previous", write=False)
    assert {("@pred.score", "psi"), ("@pred.score", "ks")} <= {(r.subject, r.test) for r in rep2.results}


def test_redelivered_events_are_counted_once(store: ChdbStore) -> None:
    rng = np.random.default_rng(1)
    feats = [{"x": float(v)} for v in rng.normal(0, 1, 500)]
    ids = [f"e{i}" for i in range(500)]
    insert_predictions(store, start=T0, seconds=3000, features=feats, event_ids=ids)
    insert_predictions(store, start=T0, seconds=3000, features=feats, event_ids=ids)  # the same batch again
    prof = reference_from_window(store, "m1", T0, T0 + H, name="dup")
    assert prof.rows == 500 and prof.features["x"].n == 500 and int(prof.features["x"].counts.sum()) == 500


def _clean(results: Sequence[Result]) -> None:
    for r in results:
        assert r.value is None or math.isfinite(r.value), r
        json.dumps(r.as_dict(), allow_nan=False)


def test_bad_inputs_give_a_clear_status(store: ChdbStore, two_windows: TwoWindows) -> None:
    insert_predictions(store, start=T0 + H + _dt.timedelta(minutes=1), seconds=60,
                       features=[{"only_now": float(i)} for i in range(100)])
    rep = run_detectors(store, "m1", T0 + 2 * H, H, reference="previous")
    _clean(rep.results)
    by = {(r.detector, r.subject, r.test): r for r in rep.results}
    assert by[("drift", "only_now", "psi")].status == "not enough data"
    assert "not in the reference" in by[("drift", "only_now", "psi")].detail["reason"]
    assert by[("quality", "only_now", "schema")].status == "alert"
    assert by[("drift", "allnull", "psi")].status == "not enough data"
    assert "all-null" in by[("drift", "allnull", "psi")].detail["reason"]
    assert by[("drift", "k", "psi")].status == "ok" and by[("drift", "k", "psi")].value == 0.0  # constant feature
    assert by[("drift", "k", "wasserstein")].status == "not enough data"
    assert "constant" in by[("drift", "k", "wasserstein")].detail["reason"]
    empty = run_detectors(store, "m1", T0 + 10 * H, H, reference="w-missing")
    assert [r.status for r in empty.results if r.detector == "drift"] == ["error"]
    empty = run_detectors(store, "m1", T0 + 10 * H, H, reference="previous")
    _clean(empty.results)
    assert {r.status for r in empty.results} == {"not enough data"}
    stored = store.rows("SELECT status, value FROM {db}.detector_results FINAL WHERE window_end = %(e)s",
                        {"e": T0 + 10 * H})
    assert stored and all(r["value"] is None for r in stored)


def test_previous_window_reference_is_built_once(store: ChdbStore, two_windows: TwoWindows) -> None:
    run_detectors(store, "m1", T0 + 2 * H, H, write=False)
    run_detectors(store, "m1", T0 + 2 * H, H, write=False)
    n = store.scalar("SELECT uniqExact(built_at) FROM {db}.detector_references WHERE name LIKE 'previous:%'")
    assert n == 1


def test_psi_only_config_reads_fewer_bins_and_gives_the_same_psi(store: ChdbStore, two_windows: TwoWindows) -> None:
    prof = reference_from_window(store, "m1", T0, T0 + H, name="w0")
    src = window_source("m1", T0 + H, T0 + 2 * H)
    full = drift_results(prof, summarize_window(store, src, prof), DriftConfig.parse({"psi": None}), features={"x"})
    cheap = drift_results(prof, summarize_window(store, src, prof, bins=10), DriftConfig.parse({"psi": None}),
                          features={"x"})
    assert full[0].value == pytest.approx(cheap[0].value, abs=1e-12)


def test_grid_profiles_count_exactly_and_fall_back_when_they_do_not_resolve(store: ChdbStore) -> None:
    rng = np.random.default_rng(11)
    n = 6000
    ref = [{"g": float(v), "heavy": float(h)} for v, h in zip(rng.normal(3, 2, n), rng.normal(0, 1, n), strict=True)]
    for i in range(0, n, 7):
        del ref[i]["g"]                              # absent: reads as 0 in SQL, taken out of the counts
    ref[5]["heavy"] = 1e9                            # one outlier stretches the range: the grid cannot resolve it
    insert_predictions(store, start=T0, seconds=3500, features=ref,
                       preds=[{"score": float(s)} for s in rng.random(n)])
    prof = reference_from_window(store, "m1", T0, T0 + H, name="grid")
    assert prof is not None
    g, heavy, score = prof.features["g"], prof.features["heavy"], prof.features["@pred.score"]
    assert g.grid is not None and score.grid is not None and heavy.grid is None
    r_g = _raw(ref, "g")
    for fp, raw in ((g, r_g), (heavy, _raw(ref, "heavy"))):
        assert fp.n == raw.size and fp.lo == raw.min() and fp.hi == raw.max()
        assert fp.counts.tolist() == np.histogram(raw, np.concatenate([[-np.inf], fp.edges, [np.inf]]))[0].tolist()
        assert fp.mean == pytest.approx(raw.mean(), rel=1e-9) and fp.std == pytest.approx(raw.std(), rel=1e-9)
    assert np.allclose(np.quantile(r_g, [0.1, 0.5, 0.9]), g.quantiles[[9, 49, 89]], atol=0.05)
    loaded = load_profile(store, "m1", "grid")
    assert loaded is not None and loaded.features["g"].grid == g.grid
    # a window with values on the reference edges, below its min and above its max
    cur = [{"g": float(v)} for v in rng.normal(3.5, 2.5, 3000)]
    cur += [{"g": float(e)} for e in g.edges] + [{"g": float(np.nextafter(e, -np.inf))} for e in g.edges]
    cur += [{"g": g.lo - 100.0}, {"g": g.hi + 100.0}, {"other": 1.0}]
    insert_predictions(store, start=T0 + H, seconds=3500, features=cur)
    src = window_source("m1", T0 + H, T0 + 2 * H)
    c_g = _raw(cur, "g")
    for bins in (None, 10):
        s = summarize_window(store, src, prof, bins=bins)
        e = s.edges["g"]
        assert s.fine["g"].tolist() == np.histogram(c_g, np.concatenate([[-np.inf], e, [np.inf]]))[0].tolist()


def test_a_wide_model_with_many_layouts_is_counted_on_the_full_grid(store: ChdbStore) -> None:
    # 300 features, one missing per row (6 layouts: more than are read by position): the full-grid scan spells
    # out about 100 thresholds per feature, past ClickHouse's default 256 KiB per query
    rng = np.random.default_rng(11)
    names = [f"feature_{j:03d}" for j in range(300)]

    def rows(n: int, shift: float) -> list[dict]:
        out = []
        for i in range(n):
            f = {k: float(np.round(rng.normal(shift + j % 7, 1), 2)) for j, k in enumerate(names)}
            del f[names[i % 6]]
            out.append(f)
        return out

    ref, cur = rows(240, 0.0), rows(240, 0.3)
    insert_predictions(store, start=T0, seconds=3000, features=ref)
    insert_predictions(store, start=T0 + H, seconds=3000, features=cur)
    prof = reference_from_window(store, "m1", T0, T0 + H, name="wide", labels=False)
    summary = summarize_window(store, window_source("m1", T0 + H, T0 + 2 * H), prof)
    for k in (names[0], names[5], names[299]):
        full = np.concatenate([[-np.inf], prof.features[k].edges, [np.inf]])
        assert summary.fine[k].tolist() == np.histogram(_raw(cur, k), full)[0].tolist()
        assert summary.numeric[k].n == len(_raw(cur, k)) and summary.numeric[k].hi == _raw(cur, k).max()


def test_each_scan_logs_the_sql_it_ran_at_debug_on_driftline_sql(store: ChdbStore,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    from detectors import drift_sql
    from detectors.grid import Grid

    insert_predictions(store, start=T0, seconds=60, features=[{"x": float(i)} for i in range(10)] + [{"y": 1.0}])
    src = window_source("m1", T0, T0 + H)
    lay = drift_sql.key_layouts(store, src, limit=1)        # one layout by position, the other by key
    with caplog.at_level(logging.DEBUG, logger="driftline.sql"):
        counts, st = drift_sql.grid_counts(store, src, {"x": Grid(0.0, 10.0, cells=10)}, stats=["x"], layouts=lay)
    assert counts["x"].tolist() == [0] + [1] * 10 + [0] and st["x"].n == 10
    (rec,) = [r for r in caplog.records if r.name == "driftline.sql"]
    assert rec.levelno == logging.DEBUG
    logged = rec.getMessage()
    statement = drift_sql.scan_statement(src, {"x": Grid(0.0, 10.0, cells=10)}, ["x"], lay)
    assert statement is not None and store.sql(statement) in logged
    assert "UNION ALL" in logged and f"`{store.database}`.predictions FINAL" in logged
