"""The hook protocol (issue 13, section 5): what a hook returns is valid HTTP or an `invalid` that fails open."""
from __future__ import annotations

import pytest

from tests.helpers.plugins import ECHO, plugin_app, plugin_status

pytestmark = pytest.mark.timeout(120, method="thread")  # the inline sandbox owns SIGALRM

JSON_ANSWER = {"path": "/data", "mock": {"status": 200, "json": {"ok": True, "items": [1, 2, 3]}}}


_OPEN: list = []


@pytest.fixture(autouse=True)
def _close_apps():
    """Stop each test's sandbox children (a child left to the garbage collector warns in a later test)."""
    yield
    while _OPEN:
        _OPEN.pop().extensions["backworks"].runtime.close()


def _app(tmp_path, source: str, isolation: str):
    endpoints = {"echo": ECHO, "data": JSON_ANSWER}
    app, client = plugin_app(tmp_path, {"p": source}, {"p": {"isolation": isolation}}, endpoints)
    _OPEN.append(app)
    return app, client


@pytest.mark.parametrize("isolation", ["inline", "process"])
def test_short_circuit_with_header_pairs_answers_them(tmp_path, isolation):
    source = ("def before_request(request):\n    return {'response': {'status': 201, 'headers': "
              "[['Set-Cookie', 'a=1'], ['Set-Cookie', 'b=2'], ['X-One', '1']], 'body': 'made'}}\n")
    app, client = _app(tmp_path, source, isolation)
    response = client.get("/echo")
    assert response.status_code == 201
    assert response.headers.getlist("Set-Cookie") == ["a=1", "b=2"]
    assert response.headers["X-One"] == "1"
    assert response.data == b"made"


@pytest.mark.parametrize("isolation", ["inline", "process"])
def test_after_response_header_pairs_replace_the_headers(tmp_path, isolation):
    source = ("def after_response(request, response):\n    return dict(response, headers=[['x-a', '1'], "
              "['content-type', 'application/json']])\n")
    app, client = _app(tmp_path, source, isolation)
    response = client.get("/data")
    assert (response.status_code, response.headers["X-A"]) == (200, "1")
    assert response.json == {"ok": True, "items": [1, 2, 3]}


@pytest.mark.parametrize("isolation", ["inline", "process"])
def test_content_length_from_a_hook_is_ignored(tmp_path, isolation):
    source = ("def after_response(request, response):\n    headers = dict(response['headers'])\n"
              "    headers['content-length'] = '7'\n    headers['Transfer-Encoding'] = 'chunked'\n"
              "    headers['connection'] = 'close'\n    headers['x-seen'] = 'yes'\n"
              "    return dict(response, headers=headers)\n")
    app, client = _app(tmp_path, source, isolation)
    response = client.get("/data")
    assert response.json == {"ok": True, "items": [1, 2, 3]}
    assert response.headers["Content-Length"] == str(len(response.data))
    assert "Transfer-Encoding" not in response.headers and "Connection" not in response.headers
    assert response.headers["X-Seen"] == "yes"
    assert plugin_status(app, "p")["failures"] == {}


@pytest.mark.parametrize("isolation", ["inline", "process"])
def test_request_content_length_from_a_hook_is_ignored(tmp_path, isolation):
    source = ("def before_request(request):\n    headers = dict(request['headers'], **{'content-length': '1', "
              "'x-tag': 'set'})\n    return dict(request, headers=headers)\n")
    app, client = _app(tmp_path, source, isolation)
    response = client.post("/echo", data="hello body")
    assert response.json == {"tag": "set", "body": "hello body"}


@pytest.mark.parametrize("status", [101, 100, 199, 600, 99])
def test_informational_and_out_of_range_statuses_are_invalid(tmp_path, status):
    source = f"def before_request(request):\n    return {{'response': {{'status': {status}, 'body': 'x'}}}}\n"
    app, client = _app(tmp_path, source, "inline")
    response = client.get("/echo")
    assert (response.status_code, response.json) == (200, {"tag": "none", "body": ""})
    assert plugin_status(app, "p")["failures"] == {"invalid": 1}


@pytest.mark.parametrize("isolation", ["inline", "process"])
@pytest.mark.parametrize("value", ["caf\\u00e9 \\u2603", "a\\x7fb", "a\\x01b", "\\ud800"])
def test_header_values_the_server_cannot_send_are_invalid(tmp_path, isolation, value):
    source = ("def after_response(request, response):\n"
              f"    return dict(response, headers={{'x-bad': '{value}'}})\n")
    app, client = _app(tmp_path, source, isolation)
    response = client.get("/data")
    assert (response.status_code, response.json) == (200, {"ok": True, "items": [1, 2, 3]})
    assert "X-Bad" not in response.headers
    assert plugin_status(app, "p")["failures"] == {"invalid": 1}


def test_latin1_header_values_are_sent(tmp_path):
    source = "def after_response(request, response):\n    return dict(response, headers={'x-ok': 'caf\\u00e9\\tok'})\n"
    app, client = _app(tmp_path, source, "inline")
    assert client.get("/data").headers["X-Ok"] == "caf\u00e9\tok"


def test_nan_in_json_is_invalid_not_sent(tmp_path):
    source = "def after_response(request, response):\n    return dict(response, json={'x': float('nan')})\n"
    app, client = _app(tmp_path, source, "inline")
    assert client.get("/data").json == {"ok": True, "items": [1, 2, 3]}
    assert plugin_status(app, "p")["failures"] == {"invalid": 1}


def test_a_conversion_error_after_validation_fails_open_as_invalid(tmp_path, monkeypatch, caplog):
    import backworks.plugins.chain as chain

    def broken(response):
        raise TypeError("not a mapping")

    monkeypatch.setattr(chain, "reply_from_response", broken)
    source = "def before_request(request):\n    return {'response': {'status': 200, 'body': 'x'}}\n"
    app, client = _app(tmp_path, source, "inline")
    response = client.get("/echo")
    assert (response.status_code, response.json) == (200, {"tag": "none", "body": ""})
    assert "plugin answer in before_request ignored: TypeError: not a mapping" in caplog.messages
