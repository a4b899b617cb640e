"""Plugins on a streaming (proxy) endpoint: hooks see headers, the body streams through untouched."""
from __future__ import annotations

import hashlib
import os

from tests.helpers.fake_upstream import FakeUpstream
from tests.helpers.plugins import plugin_app

HOOKS = """
def before_request(request):
    headers = dict(request["headers"])
    headers["x-plugin"] = "before"
    headers["x-saw-body"] = str(request["body"])
    return dict(request, headers=headers)

def after_response(request, response):
    headers = dict(response["headers"])
    headers["x-after"] = "yes"
    headers["x-had-body"] = str("body" in response or "json" in response)
    return dict(response, headers=headers)
"""


def proxy_app(tmp_path, upstream_url: str):
    endpoints = {"api": {"path": "/api/{rest:path}", "mode": "proxy",
                         "proxy": {"upstream": "api", "strip_prefix": "/api"}}}
    extra = {"server": {"watch": False, "access_log": False},
             "upstreams": {"api": {"targets": [{"url": upstream_url}]}}}
    return plugin_app(tmp_path, {"hooks": HOOKS}, {"hooks": {}}, endpoints, extra)


def test_before_request_on_a_proxy_endpoint_keeps_the_body_streaming_untouched(tmp_path):
    upstream = FakeUpstream()
    try:
        app, client = proxy_app(tmp_path, upstream.url)
        body = os.urandom(300_000)
        response = client.post("/api/upload", data=body, headers={"Content-Type": "application/octet-stream"})
        assert response.status_code == 200
        seen = response.get_json()
        assert (seen["body_size"], seen["body_sha"]) == (len(body), hashlib.sha256(body).hexdigest())
        headers = {k.lower(): v for k, v in seen["headers"]}
        assert headers["x-plugin"] == "before"
        assert headers["x-saw-body"] == "None"  # hooks on streaming endpoints get no body
        assert response.headers["X-After"] == "yes"
        app.extensions["backworks"].runtime.close()
    finally:
        upstream.stop()


def test_after_response_on_a_proxy_endpoint_keeps_a_binary_body(tmp_path):
    upstream = FakeUpstream()
    try:
        app, client = proxy_app(tmp_path, upstream.url)
        response = client.get("/api/file/binary")
        assert response.status_code == 200
        assert response.data == bytes(range(256)) * 4
        assert (response.headers["X-After"], response.headers["X-Had-Body"]) == ("yes", "False")
        app.extensions["backworks"].runtime.close()
    finally:
        upstream.stop()
