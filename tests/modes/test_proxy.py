"""Proxy mode against real upstream HTTP servers on free loopback ports."""
from __future__ import annotations

import hashlib
import os
import threading
import time

import pytest
import requests

from backworks.app import create_app
from backworks.errors import ConfigError
from backworks.upstreams import Upstream, public_url
from tests.helpers.basics import free_port, write_config
from tests.helpers.fake_upstream import DyingUpstream, FakeUpstream


@pytest.fixture
def upstreams():
    """Factory: upstreams(n) -> list of running FakeUpstream servers, stopped after the test."""
    started = []

    def start(count: int = 1) -> list:
        servers = [FakeUpstream(f"up{i}") for i in range(count)]
        started.extend(servers)
        return servers

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def make_client(tmp_path):
    """Factory: make_client(yaml, server=", extra: fields") -> test client of a Backworks app, closed after."""
    apps = []

    def make(text: str, server: str = ""):
        app = create_app(write_config(tmp_path, f"server: {{watch: false, access_log: false{server}}}\n" + text))
        apps.append(app)
        return app.test_client()

    yield make
    for app in apps:
        app.extensions["backworks"].runtime.close()


def one_upstream(url: str, extra: str = "", endpoint: str = "") -> str:
    return f"""
upstreams:
  api: {{targets: [{{url: "{url}"}}], read_timeout_ms: 400, retry_backoff_ms: 1 {extra}}}
endpoints:
  api:
    path: /api/{{rest:path}}
    mode: proxy
    proxy: {{upstream: api, strip_prefix: /api {endpoint}}}
"""


def test_proxy_forwards_method_path_query_and_binary_body_exactly(upstreams, make_client):
    (up,) = upstreams()
    client = make_client(one_upstream(up.url, endpoint=", add_prefix: /v2"))
    body = b"\xff\xfe\x00not utf-8\x80"
    reply = client.put("/api/a%2Fb/c?z=1&a=%20x&a=2", data=body, content_type="application/octet-stream")
    assert reply.status_code == 200
    seen = reply.get_json()
    assert seen["method"] == "PUT"
    assert seen["raw_uri"] == "/v2/a%2Fb/c?z=1&a=%20x&a=2"
    assert seen["body_hex"] == body.hex()


def test_proxy_keeps_repeated_response_headers_and_drops_hop_by_hop_ones(upstreams, make_client):
    (up,) = upstreams()
    client = make_client(one_upstream(up.url))
    reply = client.get("/api/cookies")
    assert reply.headers.getlist("Set-Cookie") == ["a=1", "b=2"]
    assert reply.headers.getlist("X-Repeat") == ["one", "two"]
    assert "X-Secret-Hop" not in reply.headers  # named by the upstream's Connection header
    assert "Connection" not in reply.headers


def test_proxy_removes_hop_by_hop_request_headers_and_applies_header_rules(upstreams, make_client):
    (up,) = upstreams()
    client = make_client(one_upstream(up.url, endpoint=", set_headers: {X-Api-Key: k1, X-Client: ours}, "
                                                        "remove_headers: [X-Drop]"))
    reply = client.get("/api/x", headers={"Connection": "keep-alive, X-Hop-Only", "X-Hop-Only": "1",
                                          "TE": "trailers", "X-Drop": "gone", "X-Client": "theirs",
                                          "X-Keep": "kept", "Proxy-Authorization": "Basic eA=="})
    names = {k.lower(): v for k, v in reply.get_json()["headers"]}
    for hop in ("x-hop-only", "te", "x-drop", "proxy-authorization"):
        assert hop not in names
    assert names.get("connection") != "keep-alive, X-Hop-Only"
    assert names["x-keep"] == "kept"
    assert names["x-api-key"] == "k1"
    assert names["x-client"] == "ours"


@pytest.mark.parametrize("sent", [None, "client-id-42", "has spaces", "x" * 129, "tab\tin"])
def test_the_upstream_gets_the_request_id_the_client_is_answered_with(upstreams, make_client, sent):
    (up,) = upstreams()
    client = make_client(one_upstream(up.url))
    reply = client.get("/api/x", headers={"X-Request-Id": sent} if sent else {})
    names = {k.lower(): v for k, v in reply.get_json()["headers"]}
    answered = reply.headers["X-Request-Id"]
    assert answered == sent if sent == "client-id-42" else answered != sent
    if sent is None:
        assert "x-request-id" not in names  # nothing added to what the client sent
    else:
        assert names["x-request-id"] == answered  # a malformed id never reaches the upstream


def test_proxy_appends_to_forwarded_for_only_from_a_trusted_peer(upstreams, make_client):
    (up,) = upstreams()
    client = make_client(one_upstream(up.url))
    spoof = {"X-Forwarded-For": "6.6.6.6", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.test"}

    trusted = dict(client.get("/api/x", headers=spoof).get_json()["headers"])
    assert trusted["X-Forwarded-For"] == "6.6.6.6, 127.0.0.1"
    assert trusted["X-Forwarded-Proto"] == "https"
    assert trusted["X-Forwarded-Host"] == "evil.test"

    untrusted = client.get("/api/x", headers={**spoof, "Host": "shop.test"},
                           environ_base={"REMOTE_ADDR": "10.1.2.3"})
    names = dict(untrusted.get_json()["headers"])
    assert names["X-Forwarded-For"] == "10.1.2.3"
    assert names["X-Forwarded-Proto"] == "http"
    assert names["X-Forwarded-Host"] == "shop.test"


def test_proxy_trusts_a_unix_socket_peer_like_nginx_on_the_same_host(upstreams, make_client):
    (up,) = upstreams()
    client = make_client(one_upstream(up.url))
    response = client.get("/api/x", headers={"X-Forwarded-For": "203.0.113.9"}, environ_base={"REMOTE_ADDR": ""})
    assert dict(response.get_json()["headers"])["X-Forwarded-For"] == "203.0.113.9"


@pytest.mark.parametrize("host_header, expected", [("upstream", "upstream"), ("client", "shop.test")])
def test_proxy_sends_the_host_header_as_configured(upstreams, make_client, host_header, expected):
    (up,) = upstreams()
    client = make_client(one_upstream(up.url, extra=f", host_header: {host_header}"))
    names = dict(client.get("/api/x", headers={"Host": "shop.test"}).get_json()["headers"])
    assert names["Host"] == (f"127.0.0.1:{up.port}" if expected == "upstream" else expected)


def test_proxy_passes_a_binary_response_untouched(upstreams, make_client):
    (up,) = upstreams()
    reply = make_client(one_upstream(up.url)).get("/api/binary")
    assert reply.data == bytes(range(256)) * 4
    assert reply.headers["Content-Type"] == "application/octet-stream"


def test_refused_upstream_answers_502_naming_it_without_credentials(make_client):
    port = free_port()
    client = make_client(one_upstream(f"http://admin:s3cret@127.0.0.1:{port}/base"))
    reply = client.get("/api/x")
    assert reply.status_code == 502
    error = reply.get_json()["error"]
    assert error["code"] == "upstream_unreachable"
    assert error["message"] == (f"upstream 'api' (http://127.0.0.1:{port}/base) is unreachable: "
                                f"connection refused")
    assert "s3cret" not in reply.get_data(as_text=True)


def test_slow_upstream_answers_504(upstreams, make_client):
    (up,) = upstreams()
    client = make_client(one_upstream(up.url, extra=", retries: 0"))
    started = time.monotonic()
    reply = client.get("/api/slow?s=2")
    assert reply.status_code == 504
    assert reply.get_json()["error"]["message"] == f"upstream 'api' ({up.url}) did not answer within 400 ms"
    assert time.monotonic() - started < 1.5


def test_open_breaker_answers_503_without_calling_the_upstream(make_client):
    client = make_client(one_upstream(f"http://127.0.0.1:{free_port()}",
                                      extra=", retries: 0, circuit_breaker: {failure_threshold: 2, recovery_s: 60}"))
    assert [client.get("/api/x").status_code for _ in range(2)] == [502, 502]
    reply = client.get("/api/x")
    assert reply.status_code == 503
    assert reply.get_json()["error"] == {
        "code": "upstream_unavailable", "request_id": reply.headers["X-Request-Id"],
        "message": "upstream 'api' has no available target (1 target(s): 1 with the circuit breaker open)"}


def test_breaker_lets_one_trial_through_after_recovery(upstreams, make_client):
    port = free_port()
    client = make_client(one_upstream(f"http://127.0.0.1:{port}",
                                      extra=", retries: 0, circuit_breaker: {failure_threshold: 1, recovery_s: 0.2}"))
    assert client.get("/api/x").status_code == 502
    assert client.get("/api/x").status_code == 503
    late = FakeUpstream("late", port=port)  # the upstream comes up
    try:
        time.sleep(0.25)
        assert client.get("/api/x").status_code == 200
        assert client.get("/api/x").status_code == 200
    finally:
        late.stop()


def balanced(urls, balance: str, weights=None) -> str:
    targets = ", ".join(f"{{url: \"{u}\", weight: {w}}}" for u, w in zip(urls, weights or [1] * len(urls), strict=True))
    return f"""
upstreams:
  api: {{targets: [{targets}], balance: {balance}, retry_backoff_ms: 1, read_timeout_ms: 2000}}
endpoints:
  api: {{path: "/api/{{rest:path}}", mode: proxy, proxy: {{upstream: api, strip_prefix: /api}}}}
"""


def test_round_robin_spreads_requests_evenly(upstreams, make_client):
    servers = upstreams(3)
    client = make_client(balanced([s.url for s in servers], "round_robin"))
    names = [client.get("/api/x").get_json()["upstream"] for _ in range(9)]
    assert sorted(names) == ["up0"] * 3 + ["up1"] * 3 + ["up2"] * 3


def test_weighted_balance_follows_the_weights(upstreams, make_client):
    servers = upstreams(2)
    client = make_client(balanced([s.url for s in servers], "weighted", [3, 1]))
    names = [client.get("/api/x").get_json()["upstream"] for _ in range(8)]
    assert names.count("up0") == 6 and names.count("up1") == 2


def test_least_connections_prefers_the_idle_target():
    upstream = Upstream("api", {
        "targets": [{"url": "http://127.0.0.1:1"}, {"url": "http://127.0.0.1:2"}], "balance": "least_connections",
        "connect_timeout_ms": 100, "read_timeout_ms": 100, "retries": 0, "retry_backoff_ms": 0, "pool_size": 1,
        "host_header": "upstream", "health_check": None,
        "circuit_breaker": {"failure_threshold": 5, "recovery_s": 1}})
    busy, idle = upstream.targets
    busy.active = 3
    assert {upstream.pick() for _ in range(4)} == {idle}


def test_get_is_retried_on_the_next_target_but_post_is_not(upstreams, make_client):
    (alive,) = upstreams()
    dead = f"http://127.0.0.1:{free_port()}"
    client = make_client(balanced([dead, alive.url], "round_robin"))
    assert [client.get("/api/x").status_code for _ in range(4)] == [200] * 4
    statuses = [client.post("/api/x", data=b"{}").status_code for _ in range(2)]
    assert sorted(statuses) == [200, 502]


def test_health_checks_take_a_failing_target_out_and_bring_it_back(upstreams, make_client):
    sick, well = upstreams(2)
    text = balanced([sick.url, well.url], "round_robin").replace(
        "read_timeout_ms: 2000", "read_timeout_ms: 2000, health_check: {path: /health, interval_s: 0.05, "
                                 "unhealthy_after: 2, healthy_after: 2}")
    client = make_client(text)
    client.get("/api/x")  # starts the health-check thread in this process
    sick.app.sick = True
    assert wait_for(lambda: {client.get("/api/x").get_json()["upstream"] for _ in range(4)} == {"up1"})
    sick.app.sick = False
    assert wait_for(lambda: {client.get("/api/x").get_json()["upstream"] for _ in range(4)} == {"up0", "up1"})


def test_all_targets_failing_health_checks_answer_503(upstreams, make_client):
    (up,) = upstreams()
    client = make_client(one_upstream(up.url, extra=", health_check: {path: /health, interval_s: 0.05, "
                                                    "unhealthy_after: 1}"))
    assert client.get("/api/x").status_code == 200
    up.app.sick = True
    assert wait_for(lambda: client.get("/api/x").status_code == 503)
    assert client.get("/api/x").get_json()["error"]["message"] == (
        "upstream 'api' has no available target (1 target(s): 1 failing health checks)")


def wait_for(check, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


def test_declared_body_over_the_limit_gets_413_before_forwarding(upstreams, make_client):
    (up,) = upstreams()
    client = make_client(one_upstream(up.url), server=", max_body_bytes: 10")
    reply = client.post("/api/x", data=b"x" * 11)
    assert reply.status_code == 413
    assert reply.get_json()["error"]["message"] == (
        "request body is 11 bytes; the limit is 10 (server.max_body_bytes)")
    assert up.seen == []


def test_unknown_upstream_is_a_config_error(tmp_path):
    path = write_config(tmp_path, """
upstreams:
  catalog: {targets: [{url: "http://127.0.0.1:9"}]}
endpoints:
  p: {path: /p, mode: proxy, proxy: {upstream: catalogue}}
""")
    with pytest.raises(ConfigError) as caught:
        create_app(path)
    assert caught.value.problems == [f"{path}:5: endpoints.p.proxy.upstream: unknown upstream 'catalogue' "
                                     f"(did you mean 'catalog'?)"]


def test_public_url_drops_user_and_password():
    assert public_url("https://user:pw@api.test:8443/v1/") == "https://api.test:8443/v1"


GUNICORN_CONFIG = """
server: {{max_body_bytes: 8000000, access_log: false}}
upstreams:
  api: {{targets: [{{url: "{url}"}}], read_timeout_ms: 10000}}
endpoints:
  api: {{path: "/api/{{rest:path}}", mode: proxy, proxy: {{upstream: api, strip_prefix: /api}}}}
"""


def _worker_rss_kb(server) -> int:
    """Peak resident memory (VmHWM) of the gunicorn worker, in KiB."""
    children = open(f"/proc/{server.proc.pid}/task/{server.proc.pid}/children").read().split()
    return max(int(next(line for line in open(f"/proc/{pid}/status") if line.startswith("VmHWM")).split()[1])
               for pid in children)


def test_large_bodies_stream_both_ways_under_gunicorn(upstreams, gunicorn, tmp_path):
    (up,) = upstreams()
    server = gunicorn(write_config(tmp_path, GUNICORN_CONFIG.format(url=up.url)), workers=1)
    assert requests.get(server.url + "/api/warm-up", timeout=10).status_code == 200
    peak_before = _worker_rss_kb(server)
    payload = os.urandom(6 * 1024 * 1024)
    sent = requests.post(server.url + "/api/upload", data=payload, timeout=30).json()
    assert sent["body_size"] == len(payload)
    assert sent["body_sha"] == hashlib.sha256(payload).hexdigest()
    chunked = requests.post(server.url + "/api/upload", data=iter([payload[:3000000], payload[3000000:]]),
                            timeout=30).json()
    assert chunked["body_sha"] == hashlib.sha256(payload).hexdigest()
    size = 64 * 1024 * 1024
    received = 0
    with requests.get(server.url + f"/api/big?n={size}", stream=True, timeout=30) as reply:
        for chunk in reply.iter_content(1024 * 1024):
            received += len(chunk)
    assert received == size
    assert _worker_rss_kb(server) - peak_before < 16 * 1024  # far below the 70 MiB that went through


def test_chunked_upload_over_the_limit_gets_413_under_gunicorn(upstreams, gunicorn, tmp_path):
    (up,) = upstreams()
    server = gunicorn(write_config(tmp_path, GUNICORN_CONFIG.format(url=up.url).replace("8000000", "100000")),
                      workers=1)
    reply = requests.post(server.url + "/api/upload", data=iter([b"x" * 60000] * 5), timeout=30)
    assert reply.status_code == 413
    assert reply.json()["error"]["message"] == (
        "request body is over the limit of 100000 bytes (server.max_body_bytes)")


def test_proxy_under_gunicorn_answers_concurrent_clients(upstreams, gunicorn, tmp_path):
    (up,) = upstreams()
    server = gunicorn(write_config(tmp_path, GUNICORN_CONFIG.format(url=up.url)), workers=2)
    results = []

    def hit(n):
        with requests.Session() as session:
            for i in range(20):
                results.append(session.get(f"{server.url}/api/item/{n}-{i}?q={i}", timeout=10).json()["raw_uri"])

    threads = [threading.Thread(target=hit, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(results) == sorted(f"/item/{n}-{i}?q={i}" for n in range(4) for i in range(20))


def test_head_gets_the_upstream_headers_and_no_body(upstreams, make_client):
    (up,) = upstreams()
    reply = make_client(one_upstream(up.url)).head("/api/binary")
    assert reply.status_code == 200
    assert reply.headers["Content-Length"] == "1024"
    assert reply.data == b""


def test_health_checks_run_in_every_gunicorn_worker(upstreams, gunicorn, tmp_path):
    sick, well = upstreams(2)
    sick.app.sick = True
    text = balanced([sick.url, well.url], "round_robin").replace(
        "read_timeout_ms: 2000", "read_timeout_ms: 2000, health_check: {path: /health, interval_s: 0.1, "
                                 "unhealthy_after: 1}")
    server = gunicorn(write_config(tmp_path, text), workers=2)

    def only_the_healthy_target_answers() -> bool:
        # a new connection per request, so both workers get some (and start their checks on the first)
        names = {requests.get(server.url + "/api/x", timeout=10, headers={"Connection": "close"}).json()["upstream"]
                 for _ in range(10)}
        return names == {"up1"}

    assert wait_for(only_the_healthy_target_answers, timeout=10)


def test_an_upstream_that_hangs_up_without_answering_gets_502(make_client):
    dying = DyingUpstream("close")
    try:
        reply = make_client(one_upstream(dying.url, extra=", retries: 0")).get("/api/x")
    finally:
        dying.stop()
    assert reply.status_code == 502
    error = reply.get_json()["error"]
    assert error["code"] == "upstream_error"
    assert error["message"].startswith(f"upstream 'api' ({dying.url}) failed: ")


def test_an_upstream_dying_mid_body_breaks_the_client_connection_under_gunicorn(gunicorn, tmp_path):
    dying = DyingUpstream("partial")
    try:
        server = gunicorn(write_config(tmp_path, GUNICORN_CONFIG.format(url=dying.url)), workers=1)
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            with requests.get(server.url + "/api/big", stream=True, timeout=10) as reply:
                assert reply.status_code == 200
                for _ in reply.iter_content(65536):
                    pass
        assert requests.get(server.url + "/healthz", timeout=10).status_code == 200
    finally:
        dying.stop()
