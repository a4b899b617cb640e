"""The gateway: matching, JSON errors, HEAD, limits, request ids, access log, reload."""
from __future__ import annotations

import json
import logging
import time

import pytest

from backworks import create_app
from tests.helpers.basics import write_config

CONFIG = """
server: {max_body_bytes: 64, max_header_count: 30}
endpoints:
  hello:
    path: /hello/{name}
    mock: {json: {greeting: "hi {{ path.name }}"}}
  echo:
    path: /echo
    methods: [POST]
    mock: {json: {got: "{{ json.value }}"}}
  files:
    path: /files/*rest
    mock: {body: "file {{ path.rest }}"}
"""


@pytest.fixture
def client(tmp_path):
    app = create_app(write_config(tmp_path, CONFIG))
    return app.test_client()


def test_path_params_reach_the_template(client):
    response = client.get("/hello/ann")
    assert response.status_code == 200
    assert response.get_json() == {"greeting": "hi ann"}


def test_catch_all_tail_matches_nested_segments(client):
    assert client.get("/files/a/b/c.txt").data == b"file a/b/c.txt"


def test_unknown_path_is_json_404(client):
    response = client.get("/nowhere")
    assert response.status_code == 404
    assert response.get_json() == {"error": {"code": "not_found", "message": "no endpoint matches GET /nowhere"}}


def test_wrong_method_is_405_with_allow(client):
    response = client.delete("/hello/ann")
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, HEAD"
    assert response.get_json()["error"]["code"] == "method_not_allowed"


def test_head_is_answered_for_get_routes_without_body(client):
    response = client.head("/hello/ann")
    assert response.status_code == 200
    assert response.data == b""
    assert response.headers["Content-Length"] == str(len(b'{"greeting":"hi ann"}'))


def test_body_over_limit_is_413(client):
    response = client.post("/echo", data=b"x" * 65, content_type="application/json")
    assert response.status_code == 413
    assert response.get_json()["error"] == {
        "code": "payload_too_large",
        "message": "request body is 65 bytes; the limit is 64 (server.max_body_bytes)"}


def test_broken_json_body_is_400(client):
    response = client.post("/echo", data=b'{"value": ', content_type="application/json")
    assert response.status_code == 400
    assert response.get_json()["error"] == {
        "code": "invalid_json", "message": "request body is not valid JSON: Expecting value at line 1 column 11"}


def test_valid_json_body_reaches_template(client):
    response = client.post("/echo", json={"value": "tea"})
    assert response.get_json() == {"got": "tea"}


def test_too_many_headers_is_431(client):
    headers = {f"X-H{i}": "1" for i in range(40)}
    response = client.get("/hello/ann", headers=headers)
    assert response.status_code == 431
    assert response.get_json()["error"]["code"] == "too_many_headers"


def test_request_id_is_echoed_or_generated(client):
    assert client.get("/hello/a", headers={"X-Request-Id": "abc-1"}).headers["X-Request-Id"] == "abc-1"
    generated = client.get("/hello/a").headers["X-Request-Id"]
    assert len(generated) == 32


def test_access_log_has_one_line_per_request(client, caplog):
    caplog.set_level(logging.INFO, logger="backworks.access")
    client.get("/hello/bob")
    lines = [r.getMessage() for r in caplog.records if r.name == "backworks.access"]
    assert len(lines) == 1
    assert lines[0].startswith("GET /hello/bob 200 ")
    assert "ms endpoint=hello mode=mock id=" in lines[0]


def test_internal_failure_is_json_500_without_traceback(client, monkeypatch):
    runtime = client.application.extensions["backworks"].runtime
    monkeypatch.setattr(runtime.endpoints["hello"].mode, "handle", lambda request: 1 / 0)
    response = client.get("/hello/x")
    assert response.status_code == 500
    body = response.get_json()
    assert body["error"]["code"] == "internal_error"
    assert "Traceback" not in response.get_data(as_text=True)
    assert "ZeroDivisionError" not in response.get_data(as_text=True)


def test_trusted_proxy_forwarded_for_gives_client_ip(tmp_path):
    app = create_app(write_config(tmp_path, """
        endpoints:
          ip: {path: /ip, mock: {body: "x"}}
    """))
    runtime = app.extensions["backworks"].runtime
    assert runtime.client_ip({"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_FOR": "9.9.9.9, 10.0.0.1"}) == "10.0.0.1"
    assert runtime.client_ip({"REMOTE_ADDR": "203.0.113.5", "HTTP_X_FORWARDED_FOR": "9.9.9.9"}) == "203.0.113.5"


def test_reload_swaps_config_and_refuses_broken_one(tmp_path):
    path = write_config(tmp_path, "endpoints:\n  a: {path: /a, mock: {body: one}}\n")
    app = create_app(path)
    client = app.test_client()
    backworks = app.extensions["backworks"]
    assert client.get("/a").data == b"one"
    path.write_text("endpoints:\n  a: {path: /a, mock: {body: two}}\n")
    assert backworks.reload("test") is True
    assert client.get("/a").data == b"two"
    path.write_text("endpoints:\n  a: {path: /a, mock: {status: 999}}\n")
    assert backworks.reload("test") is False
    assert "endpoints.a.mock.status: max value is 599, got 999" in backworks.last_error
    assert client.get("/a").data == b"two"


def test_file_change_is_picked_up_by_check_files(tmp_path):
    path = write_config(tmp_path, "endpoints:\n  a: {path: /a, mock: {body: one}}\n")
    app = create_app(path)
    backworks = app.extensions["backworks"]
    assert backworks.check_files() is False
    time.sleep(0.01)
    path.write_text("endpoints:\n  a: {path: /a, mock: {body: three}}\n")
    assert backworks.check_files() is True
    assert app.test_client().get("/a").data == b"three"


def test_healthz_and_readyz(client):
    assert client.get("/healthz").get_json()["status"] == "ok"
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.get_json()["status"] == "ready"


def test_readyz_runs_the_checks_the_modes_add_once_per_name(tmp_path, monkeypatch):
    from backworks.modes.mock import MockMode

    runs = []
    failing = {"ok": False, "error": "database unreachable: refused"}
    monkeypatch.setattr(MockMode, "readiness", lambda self: ("database", lambda: runs.append(1) or failing))
    client = create_app(write_config(tmp_path, CONFIG)).test_client()
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.get_json() == {"status": "not_ready", "reasons": ["database_unreachable"]}
    assert runs == [1]  # three mock endpoints, one shared check


def test_json_access_log_carries_the_request_fields(tmp_path, caplog):
    from backworks.app import JsonFormatter

    app = create_app(write_config(tmp_path, """
        server: {log_json: true}
        endpoints:
          a: {path: /a, mock: {body: x}}
    """))
    caplog.set_level(logging.INFO, logger="backworks.access")
    app.test_client().get("/a", headers={"X-Request-Id": "r-9"})
    (record,) = [r for r in caplog.records if r.name == "backworks.access"]
    payload = json.loads(JsonFormatter().format(record))
    assert payload["method"] == "GET" and payload["path"] == "/a" and payload["status"] == 200
    assert payload["endpoint"] == "a" and payload["mode"] == "mock" and payload["request_id"] == "r-9"
    assert payload["message"].startswith("GET /a 200 ")


def test_unmatched_and_wrong_method_still_get_json_errors_after_fast_routing(client):
    assert client.get("/hello/").status_code == 404
    assert client.put("/files/a/b").status_code == 405
    assert client.get("/hello/%C3%A9").get_json() == {"greeting": "hi é"}


def test_file_watcher_stops_when_its_app_is_gone(tmp_path):
    import gc
    import threading

    before = set(threading.enumerate())
    app = create_app(write_config(tmp_path, "endpoints:\n  a: {path: /a, mock: {body: x}}\n"))
    app.test_client().get("/a")
    (watcher,) = [t for t in set(threading.enumerate()) - before if t.name == "backworks-watcher"]
    del app
    gc.collect()
    watcher.join(timeout=2)
    assert not watcher.is_alive()
