"""The web UI of ``modelwatch serve``, in a real browser: Debian's chromium driven by Selenium through its chromedriver.

Screenshots of every page are written to the test's tmp dir and copied to ``$MODELWATCH_TEST_ARTIFACTS``
when that is set.
"""

from __future__ import annotations

import os
import re
import shutil
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from analyzer_data import HOSTILE_CATEGORY, HOSTILE_FEATURE, HOSTILE_MODEL, analysed_hostile
from modelwatch_analyzer.errors import ConfigError
from modelwatch_analyzer.service.serve import ServeOptions, Server
from modelwatch_analyzer.ui import pages
from modelwatch_analyzer.ui.server import CSP, UiApp, UiServer

TOKEN = "ui-test-token-7f3a"
TRACES = "https://tempo.example/trace/{trace_id}"


@pytest.fixture
def ui(store):
    analysed_hostile(store)
    server = UiServer(store, port=0, token=TOKEN, trace_url=TRACES)
    server.start()
    yield store, f"http://127.0.0.1:{server.port}"
    server.stop()


def _get(url: str, headers: dict[str, str] | None = None, method: str = "GET") -> tuple[int, Any, str]:
    req = urllib.request.Request(url, headers=headers or {}, method=method)

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    try:
        with urllib.request.build_opener(NoRedirect).open(req, timeout=30) as r:
            return r.status, r.headers, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read().decode()


def _browser():
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.skip("no chromium / chromedriver (apt-get install -y chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1600"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(driver), options=opts)  # the given driver: nothing is downloaded


def _shot(driver, tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.png"
    driver.save_screenshot(str(path))
    assert path.stat().st_size > 10_000
    keep = os.environ.get("MODELWATCH_TEST_ARTIFACTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(keep) / path.name)
    return path


def test_every_page_loads_in_chromium_with_charts_and_no_console_error_and_an_alert_reaches_its_traces(ui, tmp_path):
    store, base = ui
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    driver = _browser()

    def load(url: str | None, name: str, charts: int) -> None:
        if url is not None:
            driver.get(url)
        WebDriverWait(driver, 30).until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-charts") == "drawn")
        drawn = driver.find_elements(By.CSS_SELECTOR, "div.chart[data-drawn] canvas")
        assert len(drawn) >= charts, (name, len(drawn))
        assert driver.get_log("browser") == [], name  # no error, no CSP violation, no failed request
        assert driver.execute_script("return window.pwned") is None  # the hostile category ran nothing
        _shot(driver, tmp_path, name)

    try:
        load(f"{base}/?token={TOKEN}", "overview", 0)  # the token once: a cookie, then the address without it
        assert driver.current_url == f"{base}/" and driver.title == "models · modelwatch"
        driver.find_element(By.PARTIAL_LINK_TEXT, "credit</title>").click()
        load(None, "model", 3)  # drift over time, performance, prediction distribution
        text = driver.find_element(By.TAG_NAME, "main").text
        assert HOSTILE_FEATURE in text and "Drift over time" in text and "Alerts" in text
        # hover shows values: the legend holds the hovered window's numbers
        chart = driver.find_elements(By.CSS_SELECTOR, "div.chart[data-drawn] .u-over")[0]
        from selenium.webdriver.common.action_chains import ActionChains

        ActionChains(driver).move_to_element(chart).perform()
        assert any(re.search(r"\d", v.text) for v in driver.find_elements(By.CSS_SELECTOR, ".u-legend .u-value"))
        driver.get_log("browser")

        feature_link = driver.find_element(By.LINK_TEXT, HOSTILE_FEATURE).get_attribute("href")
        load(feature_link, "feature", 2)  # the statistic per window, reference vs current
        assert "Window ending" in driver.find_element(By.TAG_NAME, "main").text

        driver.back()
        WebDriverWait(driver, 30).until(ec.presence_of_element_located((By.CSS_SELECTOR, "a[href*='/alert/']")))
        alert_links = [a for a in driver.find_elements(By.CSS_SELECTOR, "a[href*='/alert/']")
                       if "drift" in a.text]
        alert_links[0].click()
        load(None, "alert", 0)
        out = [a.get_attribute("href") for a in driver.find_elements(By.CSS_SELECTOR, "a.trace")]
        ids = [h.rsplit("/", 1)[1] for h in out]
        assert ids and all(h == TRACES.format(trace_id=i) for h, i in zip(out, ids))
        stored = {r[0] for r in store.query(f"SELECT TraceId FROM {store.table('ml_predictions')}")}
        assert set(ids) <= stored  # the drill-down reaches stored predictions
        rows = driver.find_elements(By.CSS_SELECTOR, "table.predictions tr")
        assert len(rows) == len(ids) + 1 and "no longer stored" not in driver.page_source
    finally:
        driver.quit()


def test_the_ui_wants_the_token_is_read_only_and_sends_a_strict_csp(ui):
    _store, base = ui
    status, headers, body = _get(f"{base}/")
    assert status == 401 and "token" in body and headers["WWW-Authenticate"].startswith("Bearer")
    assert _get(f"{base}/", {"Authorization": "Bearer wrong"})[0] == 401
    assert _get(f"{base}/?token=wrong")[0] == 401
    status, headers, _ = _get(f"{base}/model/x%20y?token={TOKEN}&window=1")
    assert status == 303 and headers["Location"] == "/model/x%20y?window=1"
    for hostile in ("//evil.example/", "/a%0d%0aSet-Cookie:%20x=1"):  # no open redirect, no header injection
        status, headers, _ = _get(f"{base}{hostile}?token={TOKEN}")
        assert status == 303 and headers["Location"].startswith("/") and not headers["Location"].startswith("//")
        assert "\n" not in headers["Location"] and headers.get_all("Set-Cookie") == [headers["Set-Cookie"]]
    cookie = headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and TOKEN not in cookie
    status, headers, body = _get(f"{base}/", {"Cookie": cookie.split(";")[0]})
    assert status == 200 and headers["Content-Security-Policy"] == CSP and "script-src 'self'" in CSP
    assert "unsafe-inline" not in CSP and headers["X-Content-Type-Options"] == "nosniff"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        status, headers, _ = _get(f"{base}/", auth, method)
        assert status == 405 and headers["Allow"] == "GET, HEAD"
    assert _get(f"{base}/model/nope", auth)[0] == 404
    assert _get(f"{base}/static/../pyproject.toml", auth)[0] == 404  # files from a fixed list only
    assert _get(f"{base}/model/%ff%fe", auth)[0] == 404
    status, headers, js = _get(f"{base}/static/vendor/uPlot.iife.min.js")
    assert status == 200 and "uPlot" in js and headers["Content-Type"].startswith("text/javascript")
    # every name from the data is text: no element or attribute from it
    _status, _h, page = _get(f"{base}/model/{pages._q(HOSTILE_MODEL)}", auth)
    assert "<script>alert" not in page and "<img src=x" not in page and HOSTILE_CATEGORY not in page
    assert len(re.findall(r"<script", page)) == 2 + page.count('type="application/json"')


def test_serve_starts_the_ui_behind_its_token_and_refuses_a_bad_trace_url(store_dir):
    with pytest.raises(ConfigError, match="trace-url"):  # checked before a socket is opened
        UiApp(None, trace_url="javascript:alert(1)//{trace_id}")  # type: ignore[arg-type]
    server = Server(ServeOptions(url=f"chdb://{store_dir}", database="uiserve", grpc_port=0, http_port=0, ui_port=0,
                                 token=TOKEN, analyzer=False))
    try:
        base = f"http://127.0.0.1:{server.ui_port}"
        assert _get(f"{base}/")[0] == 401
        status, _h, body = _get(f"{base}/", {"Authorization": f"Bearer {TOKEN}"})
        assert status == 200 and "No model has sent predictions yet" in body
    finally:
        server.stop()


def test_a_model_page_picks_a_window_and_a_baseline(ui):
    from datetime import timedelta

    from analyzer_data import T0
    from modelwatch_analyzer.analysis import analyze, baseline
    from modelwatch_analyzer.analysis.window import Window

    store, base = ui
    second = baseline.from_window(store, Window(HOSTILE_MODEL, T0 + timedelta(hours=1), T0 + timedelta(hours=2)), "1")
    baseline.save(store, second)
    analyze.run(store, Window(HOSTILE_MODEL, T0 + timedelta(hours=5), T0 + timedelta(hours=6)), baseline=second)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    url = f"{base}/model/{pages._q(HOSTILE_MODEL)}"
    status, _h, page = _get(url, auth)
    assert status == 200 and "<h2>Baselines</h2>" in page and second.id in page
    status, _h, page = _get(f"{url}?baseline={second.id}", auth)
    assert status == 200 and f"?baseline={second.id}\" class=\"current\"" in page
    ends = re.findall(r"\?window=([^\"]+)\"", page)
    assert len(ends) == 1  # against the second baseline: the one window analysed with it
    status, _h, page = _get(f"{url}?window={ends[0]}", auth)
    assert status == 200 and 'class="current"' in page
    assert _get(f"{url}?baseline=nope", auth)[0] == 404
    assert _get(f"{url}?window=2001-01-01T00:00", auth)[0] == 404
