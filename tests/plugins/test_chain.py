"""A fail-closed plugin whose breaker is open keeps refusing requests: its open breaker is no free pass."""
from __future__ import annotations

import logging
import time

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


CHECK = """
def before_request(request):
    if request["headers"].get("authorization") != "Bearer ok":
        return {"response": {"status": 401, "json": {"error": "no"}}}
    return None
"""
# A C call that never returns (`==` of two 64-level shared lists: 2**64 steps): the sandbox process is killed
# at the hard deadline in every call, and the other plugins sharing it lose their process.
KILLER = ("def before_request(request):\n    a = []\n    b = []\n    for i in range(64):\n        a = [a, a]\n"
          "        b = [b, b]\n    return None if a == b else None\n")


def test_a_neighbour_killing_the_shared_sandbox_process_never_opens_an_innocent_plugins_breaker(tmp_path):
    breaker = {"failure_threshold": 2, "recovery_s": 60}
    plugins = {"auth": {"on_error": "closed", "isolation": "process", "order": 1, "circuit_breaker": breaker},
               "killer": {"isolation": "process", "order": 2, "circuit_breaker": dict(breaker, failure_threshold=4)}}
    app, client = plugin_app(tmp_path, {"auth": CHECK, "killer": KILLER}, plugins)
    answers = []
    deadline = time.monotonic() + 30
    while plugin_status(app, "killer")["breaker"]["state"] != "open" and time.monotonic() < deadline:
        answers.append(client.get("/echo", headers={"Authorization": "Bearer ok"}))
        auth = plugin_status(app, "auth")["breaker"]
        assert (auth["state"], auth["consecutive_failures"]) == ("closed", 0)  # never charged for the killer
        time.sleep(0.02)
    assert plugin_status(app, "killer")["breaker"]["state"] == "open"  # the one to blame
    refused = [r.json["error"]["message"] for r in answers if r.status_code != 200]
    assert refused and set(refused) == {"plugin auth failed: skipped"}  # fails closed, not as its own failure
    later = client.get("/echo", headers={"Authorization": "Bearer ok"})
    while later.status_code != 200 and time.monotonic() < deadline:  # the replacement process boots meanwhile
        time.sleep(0.05)
        later = client.get("/echo", headers={"Authorization": "Bearer ok"})
    assert later.status_code == 200
    assert client.get("/echo").status_code == 401  # auth runs again


@pytest.mark.parametrize("script, hook", [(BROKEN_CHECK, "before_request"), (BROKEN_AFTER, "after_response")])
def test_the_access_log_names_the_hook_an_open_breaker_refused(tmp_path, caplog, script, hook):
    plugins = {"p": {"on_error": "closed", "circuit_breaker": {"failure_threshold": 1, "recovery_s": 60}}}
    app, client = plugin_app(tmp_path, {"p": script}, plugins, extra={"server": {"watch": False, "access_log": True}})
    assert client.get("/echo").status_code == 503  # the failure that opens the breaker
    with caplog.at_level(logging.INFO, logger="backworks.access"):
        refused = client.get("/echo")
    assert refused.json["error"]["message"] == "plugin p failed: breaker_open"
    assert f"plugins=p.{hook}:breaker_open" in caplog.text
