"""The scheduler assembled from settings: SLO files, notifiers, and jobs that fail alone."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from collector.store import ChdbStore, Store
from driftline.config import Settings
from driftline.scheduler import Scheduler
from driftline.server import create_app
from slo_engine import verify_signature
from tests.slo_data import T0, Receiver, minutes


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def test_serve_settings_load_slos_and_a_tick_pages_through_the_signed_webhook(store: ChdbStore, receiver: Receiver,
                                                                              tmp_path: Path) -> None:
    spec = tmp_path / "slos.yaml"
    spec.write_text("version: driftline/v1\nslos:\n"
                    "  - {name: avail, model: m1, objective: 99.9, window: 30d, sli: {availability: {}}}\n")
    settings = Settings(slo_files=str(spec), webhook_url=receiver.url + "/hook", webhook_secret="s3cret",
                        notify_allow="127.0.0.1", scheduler_interval_s=3600)
    app = create_app(settings, store=store)
    assert [s.name for s in app.state.slo_specs] == ["avail"]
    minutes(store, T0 - _dt.timedelta(minutes=90), 90, lambda i: 0.5 if i >= 80 else 0.0, requests=4000)
    out = app.state.scheduler.tick(T0)
    assert out["slo"]["slos"] == 1 and out["slo"]["sent"] >= 1, out
    path, headers, body = receiver.requests[-1]
    assert path == "/hook"
    assert verify_signature(b"s3cret", body, headers["x-driftline-timestamp"], headers["x-driftline-signature"],
                            now=int(headers["x-driftline-timestamp"]))
    assert b"avail" in body
    # the same minute again: no second trigger (dedup)
    n = len(receiver.requests)
    app.state.scheduler.tick(T0)
    assert len(receiver.requests) == n


def test_a_failing_job_does_not_stop_the_others(store: ChdbStore) -> None:
    ran: list[str] = []

    def broken(_store: Store, _now: _dt.datetime) -> None:
        raise RuntimeError("boom")

    def fine(_store: Store, now: _dt.datetime) -> dict[str, bool]:
        ran.append(now.isoformat())
        return {"ok": True}

    sch = Scheduler(store, {"broken": broken, "fine": fine}, interval_s=0.05)
    out = sch.tick(T0)
    assert out["broken"] == {"error": "RuntimeError: boom"} and out["fine"] == {"ok": True}
    sch.start()
    import time

    deadline = time.monotonic() + 10
    while len(ran) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    sch.stop()
    assert len(ran) >= 3 and sch.stats["broken"].failures >= 3 and sch.stats["fine"].runs >= 3
    with pytest.raises(ValueError, match="interval_s"):
        Scheduler(store, {}, interval_s=0)


def test_webhook_without_secret_is_refused(store: ChdbStore) -> None:
    with pytest.raises(ValueError, match="webhook_secret"):
        create_app(Settings(webhook_url="https://hooks.example/x"), store=store)


def test_detectors_job_runs_each_model_once_per_window_and_finds_the_drift(store: ChdbStore) -> None:
    import random

    from collector.writer import EventWriter
    from driftline.scheduler import detectors_job
    from serving_shim.contract import validate_events
    from tests import factories as f

    now = _dt.datetime.now(_dt.UTC)
    end = _dt.datetime.fromtimestamp(now.timestamp() - now.timestamp() % 60, _dt.UTC)
    rng = random.Random(3)
    raw = []
    for i in range(800):  # previous window: x ~ N(0, 1); current window: x ~ N(3, 1)
        current = i % 2 == 0
        ts = end - _dt.timedelta(seconds=rng.uniform(1, 59) + (0 if current else 60))
        ev = f.prediction(i, ts=ts)
        ev["features"] = {"x": rng.gauss(3 if current else 0, 1), "y": rng.gauss(0, 1)}
        raw.append(ev)
    good, errors = validate_events("prediction", raw)
    assert not errors
    EventWriter(store).write("prediction", good)
    job = detectors_job(window_s=60, every_s=60, config={"drift": {"tests": {"psi": 0.2}}})
    out = job(store, now)
    assert list(out) == ["m1"] and out["m1"]["reference"].startswith("previous:")
    assert "drift:x:psi" in out["m1"]["alerts"] and "drift:y:psi" not in out["m1"]["alerts"]
    assert job(store, now) == {}  # the same window again: nothing to do
    rows = store.rows("SELECT subject, status FROM {db}.detector_results FINAL "
                      "WHERE detector = 'drift' AND test = 'psi'")
    assert {r["subject"]: r["status"] for r in rows}.get("x") == "alert"


def test_the_served_scheduler_runs_the_detectors_with_the_configured_settings(store: ChdbStore,
                                                                              tmp_path: Path) -> None:
    import json
    import random

    from collector.writer import EventWriter
    from serving_shim.contract import validate_events
    from tests import factories as f

    conf = tmp_path / "detectors.yaml"
    conf.write_text("drift: {threshold: calibrated, tests: {psi: null}}\ndetectors: [drift]\n")
    settings = Settings.from_env({"DRIFTLINE_DETECTOR_CONFIG": str(conf), "DRIFTLINE_DETECTOR_WINDOW_S": "60",
                                  "DRIFTLINE_DETECTOR_EVERY_S": "60"})
    assert settings.detectors() == {"drift": {"threshold": "calibrated", "tests": {"psi": None}},
                                    "detectors": ["drift"]}
    app = create_app(settings, store=store)
    now = _dt.datetime.now(_dt.UTC)
    end = _dt.datetime.fromtimestamp(now.timestamp() - now.timestamp() % 60, _dt.UTC)
    rng = random.Random(5)
    raw = []
    for i in range(600):
        ev = f.prediction(i, ts=end - _dt.timedelta(seconds=rng.uniform(1, 59) + (0 if i % 2 else 60)))
        ev["features"] = {"x": rng.gauss(0, 1)}
        raw.append(ev)
    good, errors = validate_events("prediction", raw)
    assert not errors
    EventWriter(store).write("prediction", good)
    out = app.state.scheduler.tick(now)
    assert out["detectors"]["m1"]["results"] >= 1, out
    rows = store.rows("SELECT test, detail FROM {db}.detector_results FINAL WHERE detector = 'drift' "
                      "AND subject = 'x'")
    assert {r["test"] for r in rows} == {"psi"}                              # the configured tests only
    assert json.loads(rows[0]["detail"])["threshold_method"].startswith("calibrated:"), rows[0]["detail"]


def test_scheduled_runs_default_to_size_aware_tests_with_calibrated_thresholds() -> None:
    from detectors.runner import check_config

    cfg = check_config(Settings.from_env({}).detectors())
    assert cfg.drift.auto and cfg.drift.calibrate and cfg.drift.multiple_testing == "bh"


@pytest.mark.parametrize(("doc", "named"), [('{"drift": {"tests": {"nope": 1}}}', "nope"),
                                            ('{"multivariate": {"bogus": 1}}', "bogus"),
                                            ('{"drift": {"multiple_testing": "maybe"}}', "multiple_testing"),
                                            ("[1, 2]", "DRIFTLINE_DETECTOR_CONFIG")])
def test_a_bad_detector_configuration_is_refused_at_start_naming_the_field(doc: str, named: str,
                                                                          tmp_path: Path) -> None:
    spec = doc if doc.startswith("{") else str(tmp_path / "d.yaml")
    if not doc.startswith("{"):
        (tmp_path / "d.yaml").write_text(doc)
    with pytest.raises(ValueError, match=named):
        Settings.from_env({"DRIFTLINE_DETECTOR_CONFIG": spec})


def test_serve_with_an_internal_webhook_url_says_why_and_exits_without_a_traceback(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "DRIFTLINE_WEBHOOK_URL": "http://[64:ff9b::a9fe:a9fe]/hook", "DRIFTLINE_WEBHOOK_SECRET": "k"}
    p = subprocess.run([sys.executable, "-m", "driftline", "serve", "--store", str(tmp_path / "s"), "--port", "0"],
                       env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 2, p.stderr
    assert "cannot start" in p.stderr and "169.254.169.254" in p.stderr and "allow-list" in p.stderr
    assert "Traceback" not in p.stderr
