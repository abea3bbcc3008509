"""The dashboard in a real browser: ``streamlit run dashboard/app.py`` (headless, free port) against a real server
over a filled store, and Debian's headless Chromium driven by Selenium. Every page renders its charts with no
error element (``stException``); screenshots go to screenshots/ (ignored by git)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from collector.store import ChdbStore
from tests import dashboard_data as dd
from tests.processes import stop

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "screenshots"
# (url path, title, plotly charts at least)
PAGES = [("", "Executive overview", 2), ("oncall", "On-call", 3), ("debug", "Debug", 4),
         ("slos", "SLOs and alerts", 1)]
CHROME_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1600,2400"]


def _need(binary: str, package: str) -> str:
    path = shutil.which(binary)
    if path is None:
        pytest.fail(f"{binary} is not installed (scripts/setup.sh installs Debian's {package} as root)", pytrace=False)
    return path


@contextmanager
def _streamlit(api: str) -> Iterator[str]:
    """``streamlit run dashboard/app.py`` headless on a free port, reading ``api``."""
    port = dd.free_port()
    env = {**os.environ, "DRIFTLINE_API": api}
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "dashboard" / "app.py"), "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false",
         "--server.fileWatcherType", "none"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/_stcore/health", timeout=2).text == "ok":
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                pytest.fail(f"streamlit did not start: {log.read().decode()[-3000:]}", pytrace=False)
            time.sleep(0.3)
        yield base
    finally:
        stop(proc)
        log.close()


@pytest.fixture
def dashboard(store: ChdbStore) -> Iterator[str]:
    with dd.serve(store) as (api, app):
        dd.fill(lambda path, body: httpx.post(api + path, json=body, timeout=30).json(), store)
        dd.evaluate_alerts(store, app)
        with _streamlit(api) as base:
            yield base


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = _need("chromium", "chromium")
    profile = tempfile.mkdtemp(prefix="driftline-chromium-")
    for flag in [*CHROME_FLAGS, f"--user-data-dir={profile}"]:
        opts.add_argument(flag)
    driver = webdriver.Chrome(options=opts, service=Service(executable_path=_need("chromedriver", "chromium-driver")))
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _rendered(driver: WebDriver, title: str, charts: int) -> bool:
    from selenium.webdriver.common.by import By

    if driver.find_elements(By.CSS_SELECTOR, '[data-testid="stException"]'):
        return True  # fail fast: the caller checks
    running = driver.find_elements(By.CSS_SELECTOR, '[data-testid="stStatusWidget"]')
    heads = [h.text for h in driver.find_elements(By.CSS_SELECTOR, "h1")]
    plots = driver.find_elements(By.CSS_SELECTOR, ".js-plotly-plot .main-svg")
    return not running and any(title in h for h in heads) and len(plots) >= charts


def test_every_page_renders_without_error(dashboard: str, browser: WebDriver) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    SHOTS.mkdir(exist_ok=True)
    timings = {}
    for path, title, charts in PAGES:
        t0 = time.monotonic()
        browser.get(f"{dashboard}/{path}")
        WebDriverWait(browser, 60, poll_frequency=0.2).until(partial(_rendered, title=title, charts=charts))
        timings[path or "executive"] = time.monotonic() - t0
        time.sleep(0.5)  # let plotly finish drawing for the screenshot
        browser.save_screenshot(str(SHOTS / f"dashboard-{path or 'executive'}.png"))
        errors = browser.find_elements(By.CSS_SELECTOR, '[data-testid="stException"]')
        assert not errors, f"{path}: {[e.text[:500] for e in errors]}"
        body = browser.find_element(By.TAG_NAME, "body").text
        assert "Cannot reach the Driftline API" not in body and "Page not found" not in body
        if path == "":
            assert dd.AVAILABILITY in body and dd.COST_PER_1K in body
        if path == "oncall":
            assert "Version mismatch: serving v1, expected v2" in body
    print("first render (s):", {k: round(v, 2) for k, v in timings.items()})


def test_empty_store_and_unreachable_api(store: ChdbStore, browser: WebDriver) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    SHOTS.mkdir(exist_ok=True)

    def body_has(text: str) -> Callable[[WebDriver], bool]:
        return lambda d: text in d.find_element(By.TAG_NAME, "body").text

    with dd.serve(store) as (api, _), _streamlit(api) as base:
        browser.get(f"{base}/oncall")
        WebDriverWait(browser, 60, poll_frequency=0.2).until(body_has("No model has sent anything yet"))
        body = browser.find_element(By.TAG_NAME, "body").text
        assert f"curl -X POST {api}/v1/predictions" in body and "Upload a reference" in body
        assert not browser.find_elements(By.CSS_SELECTOR, '[data-testid="stException"]')
        browser.save_screenshot(str(SHOTS / "dashboard-empty.png"))
    with _streamlit(f"http://127.0.0.1:{dd.free_port()}") as base:
        browser.get(base)
        WebDriverWait(browser, 60, poll_frequency=0.2).until(body_has("Cannot reach the Driftline API"))
        assert not browser.find_elements(By.CSS_SELECTOR, '[data-testid="stException"]')
        browser.save_screenshot(str(SHOTS / "dashboard-unreachable.png"))
