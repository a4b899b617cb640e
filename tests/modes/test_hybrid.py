"""Hybrid mode: the upstream first, then mock or replay when it fails, times out or its breaker is open."""
from __future__ import annotations

import time

import pytest

from backworks.app import create_app
from backworks.errors import ConfigError
from tests.helpers.basics import free_port, write_config
from tests.helpers.fake_upstream import FakeUpstream


@pytest.fixture
def make_client(tmp_path):
    apps = []

    def make(text: str):
        app = create_app(write_config(tmp_path, "server: {watch: false, access_log: false}\n" + text))
        apps.append(app)
        return app.test_client()

    yield make
    for app in apps:
        app.extensions["backworks"].runtime.close()


@pytest.fixture
def upstream():
    server = FakeUpstream("real")
    yield server
    server.stop()


def with_mock(url: str, upstream_extra: str = "", hybrid: str = "") -> str:
    return f"""
upstreams:
  api: {{targets: [{{url: "{url}"}}], read_timeout_ms: 300, retries: 0 {upstream_extra}}}
endpoints:
  stock:
    path: /stock/{{rest:path}}
    mode: hybrid
    hybrid: {{fallback: mock {hybrid}}}
    proxy: {{upstream: api, strip_prefix: /stock}}
    mock: {{status: 200, json: {{source: mock}}}}
"""


def test_a_working_upstream_answers_without_the_fallback_header(make_client, upstream):
    reply = make_client(with_mock(upstream.url)).get("/stock/x")
    assert reply.get_json()["upstream"] == "real"
    assert "X-Backworks-Fallback" not in reply.headers


def test_a_refused_upstream_falls_back_to_the_mock(make_client):
    reply = make_client(with_mock(f"http://127.0.0.1:{free_port()}")).get("/stock/x")
    assert reply.status_code == 200
    assert reply.get_json() == {"source": "mock"}
    assert reply.headers["X-Backworks-Fallback"] == "mock; reason=upstream_unreachable"


def test_a_slow_upstream_falls_back_on_timeout(make_client, upstream):
    reply = make_client(with_mock(upstream.url)).get("/stock/slow?s=2")
    assert reply.get_json() == {"source": "mock"}
    assert reply.headers["X-Backworks-Fallback"] == "mock; reason=upstream_timeout"


def test_an_open_breaker_falls_back_without_trying_the_upstream(make_client):
    client = make_client(with_mock(f"http://127.0.0.1:{free_port()}",
                                   ", circuit_breaker: {failure_threshold: 1, recovery_s: 60}"))
    client.get("/stock/x")
    started = time.monotonic()
    reply = client.get("/stock/x")
    assert reply.headers["X-Backworks-Fallback"] == "mock; reason=upstream_unavailable"
    assert time.monotonic() - started < 0.2


def test_listed_upstream_statuses_also_fall_back(make_client, upstream):
    client = make_client(with_mock(upstream.url, hybrid=", fallback_on_status: [500, 503], header: X-Fallback"))
    reply = client.get("/stock/status/503")
    assert reply.get_json() == {"source": "mock"}
    assert reply.headers["X-Fallback"] == "mock; reason=upstream_status_503"
    assert client.get("/stock/status/404").get_json() == {"upstream": "real"}


def test_capture_then_replay_serves_recorded_answers_once_the_upstream_is_gone(make_client):
    port = free_port()
    text = f"""
upstreams:
  api: {{targets: [{{url: "http://127.0.0.1:{port}"}}], read_timeout_ms: 500, retries: 0}}
endpoints:
  stock:
    path: /stock/{{rest:path}}
    mode: hybrid
    hybrid: {{primary: capture, fallback: replay, upstream: api}}
"""
    client = make_client(text)
    upstream = FakeUpstream("real", port=port)
    try:
        live = client.get("/stock/item?id=4")
        assert live.get_json()["upstream"] == "real"
        time.sleep(0.3)  # the capture writer stores it off the request path
    finally:
        upstream.stop()
    replayed = client.get("/stock/item?id=4")
    assert replayed.status_code == 200
    assert replayed.get_json() == live.get_json()
    assert replayed.headers["X-Backworks-Fallback"] == "replay; reason=upstream_unreachable"
    missing = client.get("/stock/other")
    assert missing.status_code == 502
    assert missing.get_json()["error"]["message"] == (
        f"upstream 'api' (http://127.0.0.1:{port}) is unreachable: connection refused; the replay fallback "
        f"had no answer: no recorded exchange matches GET /stock/other (matching on method, path, query, body)")


def test_hybrid_with_a_mock_fallback_needs_a_mock_block(tmp_path):
    path = write_config(tmp_path, """
upstreams:
  api: {targets: [{url: "http://127.0.0.1:9"}]}
endpoints:
  stock:
    path: /stock
    mode: hybrid
    hybrid: {upstream: api}
""")
    with pytest.raises(ConfigError) as caught:
        create_app(path)
    assert caught.value.problems == [f"{path}:8: endpoints.stock.hybrid.fallback: needs a 'mock:' block beside "
                                     f"'hybrid:' with the fallback answer"]
