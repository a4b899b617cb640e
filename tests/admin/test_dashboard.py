"""The dashboard in headless Chromium: it loads, keeps the token out of the URL, and updates live."""
from __future__ import annotations

import os
import shutil

import pytest
import requests

from tests.helpers.basics import write_config
from tests.helpers.ops import GUNICORN_CONF, TOKEN, ensure_debian_packages

# Installing chromium on first use may take a while; the test itself takes a few seconds.
pytestmark = pytest.mark.timeout(600)

CONFIG = f"""
    name: dash
    version: "3"
    admin: {{token: {TOKEN}}}
    server: {{access_log: false}}
    endpoints:
      hello: {{path: /hello, mock: {{json: {{hello: world}}}}}}
      orders: {{path: /orders, methods: [GET, POST], mock: {{status: 201, json: {{id: 1}}}}}}
    plugins:
      audit:
        script: audit.py
        endpoints: [orders]
        circuit_breaker: {{failure_threshold: 1000}}
"""
AUDIT = "def before_request(request):\n    raise RuntimeError('audit log is down')\n"
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--window-size=1280,1400")


@pytest.fixture
def browser(tmp_path):
    chromium = ensure_debian_packages("chromium", ["chromium", "chromium-driver"])
    driver_path = shutil.which("chromedriver") or ensure_debian_packages("chromedriver", ["chromium-driver"])
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    driver = webdriver.Chrome(service=Service(executable_path=driver_path, log_output=os.devnull),
                              options=options)
    driver.set_page_load_timeout(20)
    yield driver
    driver.quit()


def text_of(driver, element_id: str) -> str:
    return driver.find_element("id", element_id).text


def test_dashboard_shows_endpoints_traffic_and_config_errors_live(tmp_path, gunicorn, browser):
    from selenium.webdriver.support.ui import WebDriverWait

    (tmp_path / "audit.py").write_text(AUDIT)
    config = write_config(tmp_path, CONFIG)
    server = gunicorn(config, workers=2, extra=GUNICORN_CONF)
    wait = WebDriverWait(browser, 15, poll_frequency=0.1)
    browser.get(f"{server.url}/_backworks/")
    field = browser.find_element("name", "token")
    field.send_keys(TOKEN)
    field.submit()
    wait.until(lambda d: d.title == "dash: Backworks dashboard")
    wait.until(lambda d: d.find_element("tag name", "body").get_attribute("data-updated"))
    assert "token" not in browser.current_url
    rows = [r.text for r in browser.find_elements("css selector", "#endpoints tbody tr")]
    assert rows[0].startswith("hello GET /hello mock") and rows[1].startswith("orders GET POST /orders mock")
    assert not browser.find_element("id", "no-plugins").is_displayed()

    before = int(text_of(browser, "total-requests"))
    for _ in range(25):
        assert requests.get(server.url + "/hello", timeout=5).status_code == 200
    for _ in range(5):
        assert requests.post(server.url + "/orders", timeout=5).status_code == 201
    wait.until(lambda d: int(text_of(d, "total-requests")) >= before + 30)
    wait.until(lambda d: float(text_of(d, "request-rate")) > 0 and float(text_of(d, "latency-mean")) > 0)
    hello_row = browser.find_element("css selector", "#endpoints tbody tr").text
    assert hello_row.endswith("25 0")
    wait.until(lambda d: "/hello" in text_of(d, "recent") or "/orders" in text_of(d, "recent"))
    wait.until(lambda d: "error 5" in text_of(d, "plugins"))
    plugin_row = browser.find_element("css selector", "#plugins tbody tr").text
    assert plugin_row.startswith("audit healthy closed inline 5 error 5")

    config.write_text(CONFIG.replace("methods: [GET, POST]", "methods: [GET, PUSH]"))
    wait.until(lambda d: d.find_element("id", "config-error").is_displayed())
    assert "endpoints.orders.methods" in text_of(browser, "config-error-text")
    assert requests.post(server.url + "/orders", timeout=5).status_code == 201  # still the old config
    browser.save_screenshot(str(tmp_path / "dashboard.png"))
    assert (tmp_path / "dashboard.png").stat().st_size > 10_000

    browser.get(f"{server.url}/_backworks/")  # a fresh load: the tab still knows the token
    wait.until(lambda d: d.title == "dash: Backworks dashboard")
    wait.until(lambda d: d.find_element("tag name", "body").get_attribute("data-updated"))


def test_dashboard_asks_for_the_token_in_a_fresh_tab(tmp_path, gunicorn, browser):
    (tmp_path / "audit.py").write_text(AUDIT)
    server = gunicorn(write_config(tmp_path, CONFIG), workers=1, extra=GUNICORN_CONF)
    browser.get(f"{server.url}/_backworks/")
    assert browser.title == "Backworks admin: token required"
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    # Submitting loads a new page: elements of the old one go stale, so read them only through waits.
    wait = WebDriverWait(browser, 15, ignored_exceptions=(NoSuchElementException, StaleElementReferenceException))
    field = browser.find_element("name", "token")
    field.send_keys("wrong")
    field.submit()
    wait.until(lambda d: "That token is wrong." in d.find_element("id", "why").text)
    field = browser.find_element("name", "token")
    field.send_keys(TOKEN)
    field.submit()
    wait.until(lambda d: d.title == "dash: Backworks dashboard")
    assert "token" not in browser.current_url
