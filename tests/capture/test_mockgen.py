"""Mocks from capture: recorded exchanges become mock endpoints that a fresh config serves."""
from __future__ import annotations

import pytest
import yaml
from click.testing import CliRunner

from backworks.app import create_app
from backworks.capture.mockgen import path_template
from backworks.cli.main import cli
from backworks.config.load import load_config
from tests.helpers.recorded_exchanges import record


@pytest.mark.parametrize("path, template, params", [
    ("/users/42/orders/7", "/users/{user_id}/orders/{order_id}", [("user_id", "42"), ("order_id", "7")]),
    ("/files/0b7c0a2e-4d0e-4c1e-9a57-7b0c3c8d2f11", "/files/{file_id}",
     [("file_id", "0b7c0a2e-4d0e-4c1e-9a57-7b0c3c8d2f11")]),
    ("/users/me", "/users/me", []),
    ("/42/7", "/{id}/{id2}", [("id", "42"), ("id2", "7")]),
    ("/", "/", []),
])
def test_id_like_segments_become_params(path, template, params):
    assert path_template(path) == (template, params)


def test_a_segment_that_looks_like_route_syntax_is_skipped():
    assert path_template("/a/:id") is None


def test_mocks_from_capture_writes_a_config_that_serves_the_recordings(tmp_path):
    source = record(tmp_path, [
        ("GET", "/api/users/1", {}), ("GET", "/api/users/2", {}),
        ("GET", "/api/counter", {}), ("GET", "/api/counter", {}),
        ("GET", "/api/search?q=tea", {}), ("GET", "/api/search?q=pot", {}),
        ("GET", "/api/binary", {}), ("GET", "/api/templated", {"headers": {"X-Text": "{{ 7*7 }}"}}),
    ])
    out = tmp_path / "out" / "mocks.yaml"
    out.parent.mkdir()
    result = CliRunner().invoke(cli, ["mocks-from-capture", str(source), "--out", str(out)],
                                catch_exceptions=False)
    assert result.output == f"wrote 5 endpoint(s) from 8 exchange(s) to {out}\n"
    data = yaml.safe_load(out.read_text())
    assert [(e["path"], e["methods"]) for e in data["endpoints"].values()] == [
        ("/api/users/{user_id}", ["GET"]), ("/api/counter", ["GET"]), ("/api/search", ["GET"]),
        ("/api/binary", ["GET"]), ("/api/templated", ["GET"])]
    load_config(out)
    app = create_app(out)
    try:
        client = app.test_client()
        assert client.get("/api/users/2").get_json()["path"] == "/users/2"
        assert client.get("/api/users/1").get_json()["path"] == "/users/1"
        missing = client.get("/api/users/3")
        assert missing.status_code == 404
        assert missing.get_json() == {"error": {"code": "not_found", "message": "no recorded answer for this "
                                                                               "request"}}
        assert [client.get("/api/counter").get_json()["count"] for _ in range(3)] == [1, 2, 2]
        assert client.get("/api/search?q=pot").get_json()["query"] == "q=pot"
        assert client.get("/api/search?q=tea").get_json()["query"] == "q=tea"
        binary = client.get("/api/binary")
        assert binary.data == bytes(range(256)) * 4
        assert binary.headers["Content-Type"] == "application/octet-stream"
        templated = dict(client.get("/api/templated").get_json()["headers"])
        assert templated["X-Text"] == "{{ 7*7 }}"  # recorded text, never rendered as a template
    finally:
        app.extensions["backworks"].runtime.close()
