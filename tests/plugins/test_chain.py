"""A fail-closed plugin whose breaker is open keeps refusing requests: its open breaker is no free pass."""
from __future__ import annotations

import pytest

from tests.helpers.plugins import plugin_app, plugin_status

pytestmark = pytest.mark.timeout(120, method="thread")

BROKEN_CHECK = """
def before_request(request):
    if request["headers"].get("x-key") != "ok":
        raise ValueError("the key store is down")
"""
BROKEN_AFTER = """
def after_response(request, response):
    raise ValueError("cannot sign")
"""


def test_open_breaker_of_a_closed_plugin_answers_503_instead_of_skipping_it(tmp_path):
    plugins = {"auth": {"on_error": "closed", "circuit_breaker": {"failure_threshold": 2, "recovery_s": 60}}}
    app, client = plugin_app(tmp_path, {"auth": BROKEN_CHECK}, plugins)
    for _ in range(2):
        assert client.get("/echo").status_code == 503
    assert plugin_status(app, "auth")["breaker"]["state"] == "open"
    skipped = client.get("/echo")
    assert skipped.status_code == 503
    assert skipped.json["error"]["code"] == "plugin_failed"
    assert skipped.json["error"]["message"] == "plugin auth failed: breaker_open"
    assert client.get("/echo", headers={"x-key": "ok"}).status_code == 503  # not called while open


def test_open_breaker_of_a_closed_after_response_plugin_answers_503(tmp_path):
    plugins = {"signer": {"on_error": "closed",
                          "circuit_breaker": {"failure_threshold": 1, "recovery_s": 60}}}
    app, client = plugin_app(tmp_path, {"signer": BROKEN_AFTER}, plugins)
    assert client.get("/echo").status_code == 503
    assert plugin_status(app, "signer")["breaker"]["state"] == "open"
    again = client.get("/echo")
    assert (again.status_code, again.json["error"]["message"]) == (503, "plugin signer failed: breaker_open")


def test_open_breaker_of_an_open_plugin_still_skips_it(tmp_path):
    plugins = {"auth": {"circuit_breaker": {"failure_threshold": 1, "recovery_s": 60}}}
    app, client = plugin_app(tmp_path, {"auth": BROKEN_CHECK}, plugins)
    assert client.get("/echo").status_code == 200
    assert plugin_status(app, "auth")["breaker"]["state"] == "open"
    assert client.get("/echo").status_code == 200
