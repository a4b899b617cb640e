"""A hook that changes nothing is never `invalid`, whatever the client (or the handler) put in the JSON.

The server's own values reach hooks only as JSON can carry them: NaN, Infinity, a float overflowing to
Infinity or a lone-surrogate escape in a request body is the client's error (400); in a reply, hooks get such
a body as text. Integers up to the interpreter's digit limit pass both ways. Before, a client could trip any
plugin's breaker with {"a": NaN} (503 for every client once open, with on_error: closed).
"""
from __future__ import annotations

import json

import pytest

from tests.helpers.plugins import plugin_app, plugin_status

pytestmark = pytest.mark.timeout(120, method="thread")

SAME = """
def before_request(request):
    return request

def after_response(request, response):
    return response
"""
ENDPOINTS = {
    "items": {"path": "/items/{id}", "methods": ["POST"], "mock": {"json": {"ok": True}}},
    "odd": {"path": "/odd", "mock": {"body": '{"a": NaN, "b": 1e999}', "content_type": "application/json"}},
    "big": {"path": "/big", "mock": {"body": '{"n": ' + "7" * 4000 + "}", "content_type": "application/json"}},
    "deep": {"path": "/deep", "mock": {"body": "[" * 40 + "]" * 40, "content_type": "application/json"}},
    "huge": {"path": "/huge", "mock": {"body": "[" + "1," * 400_000 + "1]", "content_type": "application/json"}},
}
NOT_JSON = ['{"a": NaN}', "[Infinity]", "[-Infinity]", "[1e999]", "[-2E+400]", "[" + "9" * 400 + ".5]",
            '["\\ud800"]', '{"\\udfff": 1}', "[1" + "0" * 250 + "e99]",  # a long mantissa, a short exponent
            '{"a": 1e999}'.encode("utf-16"), '{"a": "\\ud800"}'.encode("utf-16-le"),  # JSON is UTF-8 only
            b'{"a": "\xed\xa0\x80"}']  # a surrogate encoded as if UTF-8
JSON = ['{"a": 1.5e308}', "[1e-999]", '{"n": ' + "9" * 4000 + "}", '{"a": -0.0, "b": true, "c": 1}', "[0]",
        '["\\ud83d\\ude00"]', "[" * 40 + "]" * 40,  # deeper than a hook may build: the server's own
        '["' + "x" * 1_200_000 + '"]',  # larger than a hook may return
        "[" + ",".join(["9" * 4300] * 225) + "]",  # big integers count their digits, not more
        "\ufeff[1]", "[" + "1" * 308 + ".9]"]


@pytest.fixture(scope="module")
def app_client(tmp_path_factory):
    plugins = {"same": {"on_error": "closed", "circuit_breaker": {"failure_threshold": 1, "recovery_s": 600}}}
    return plugin_app(tmp_path_factory.mktemp("unchanged"), {"same": SAME}, plugins, ENDPOINTS,
                      {"server": {"watch": False, "access_log": False, "max_body_bytes": 4_000_000}})


@pytest.mark.parametrize("body", NOT_JSON)
def test_what_json_cannot_carry_is_the_clients_400_and_no_hook_failure(app_client, body):
    app, client = app_client
    answer = client.post("/items/7", data=body, content_type="application/json")
    assert answer.status_code == 400, answer.data
    assert answer.json["error"]["code"] == "invalid_json"
    assert plugin_status(app, "same")["breaker"]["state"] == "closed"


@pytest.mark.parametrize("body", JSON)
def test_a_hook_returning_a_json_request_unchanged_is_ok(app_client, body):
    app, client = app_client
    answer = client.post("/items/7", data=body, content_type="application/json")
    assert (answer.status_code, answer.json) == (200, {"ok": True})
    assert plugin_status(app, "same")["breaker"]["state"] == "closed"


@pytest.mark.parametrize("path", ["/odd", "/big", "/deep", "/huge"])
def test_a_hook_returning_a_reply_unchanged_is_ok_whatever_json_it_holds(app_client, path):
    app, client = app_client
    answer = client.get(path)
    assert answer.status_code == 200
    assert answer.data == app.extensions["backworks"].runtime.endpoints[path[1:]].spec.data["mock"]["body"].encode()
    assert plugin_status(app, "same")["breaker"]["state"] == "closed"
    if path == "/big":
        assert json.loads(answer.data)["n"] == int("7" * 4000)
