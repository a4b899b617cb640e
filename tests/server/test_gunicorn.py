"""Real gunicorn serving the example config and a fault-injecting endpoint over HTTP."""
from __future__ import annotations

import http.client

import pytest
import requests

from tests.helpers.basics import ROOT, write_config


def test_gunicorn_serves_the_example_config(gunicorn):
    server = gunicorn(ROOT / "config/backworks.yaml", workers=2)
    hello = requests.get(server.url + "/hello/ann", timeout=5)
    assert hello.status_code == 200
    assert hello.json() == {"greeting": "hi ann"}
    assert hello.headers["X-Shop"] == "1"
    missing = requests.get(server.url + "/nope", timeout=5)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    wrong = requests.post(server.url + "/hello/ann", timeout=5)
    assert wrong.status_code == 405
    assert wrong.headers["Allow"] == "GET, HEAD"
    head = requests.head(server.url + "/products", timeout=5)
    assert head.status_code == 200 and head.content == b""
    assert "GET /hello/ann 200" in server.output()


def test_fault_reset_drops_the_connection_and_worker_keeps_serving(gunicorn, tmp_path):
    config = write_config(tmp_path, """
        endpoints:
          reset: {path: /reset, mock: {body: never, fault: {probability: 1, reset: true}}}
          ok: {path: /ok, mock: {body: fine}}
    """)
    server = gunicorn(config, workers=1)
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    connection.request("GET", "/reset")
    with pytest.raises((ConnectionResetError, http.client.RemoteDisconnected)):
        connection.getresponse()
    connection.close()
    assert requests.get(server.url + "/ok", timeout=5).text == "fine"
    assert "Traceback" not in server.output()
