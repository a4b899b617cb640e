"""nginx carries the upstream leg (proxy.nginx_handoff) through the shipped site, with real nginx and gunicorn."""
from __future__ import annotations

import hashlib
import time

import pytest
import requests

from tests.helpers.basics import free_port, write_config
from tests.helpers.fake_upstream import FakeUpstream
from tests.helpers.ops import TOKEN, sample
from tests.server.test_deployment import Nginx, SystemdService, nginx_binary  # noqa: F401 (a fixture)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def config(up: str, dead: str) -> str:
    return f"""
    name: handoff
    server: {{watch: false}}
    admin: {{token: {TOKEN}}}
    upstreams:
      api: {{targets: [{{url: "{up}"}}]}}
      gone: {{targets: [{{url: "{dead}"}}], retries: 0}}
    endpoints:
      handed:
        path: /api/{{rest:path}}
        proxy: {{upstream: api, strip_prefix: /api, nginx_handoff: true}}
        mode: proxy
      relayed:
        path: /plain/{{rest:path}}
        proxy: {{upstream: api, strip_prefix: /plain}}
        mode: proxy
      dead:
        path: /dead/{{rest:path}}
        proxy: {{upstream: gone, strip_prefix: /dead, nginx_handoff: true}}
        mode: proxy
    """


@pytest.fixture(scope="module")
def site(nginx_binary, tmp_path_factory):  # noqa: F811
    tmp = tmp_path_factory.mktemp("handoff")
    up = FakeUpstream("up")
    service = SystemdService(tmp, write_config(tmp, config(up.url, f"http://127.0.0.1:{free_port()}")))
    proxy = Nginx(nginx_binary, tmp / "nginx", service.socket_path)
    try:
        deadline = time.monotonic() + 20
        while requests.get(proxy.url + "/healthz", timeout=5).status_code != 200:
            assert service.proc.poll() is None, service.output()
            assert time.monotonic() < deadline, service.output()
            time.sleep(0.1)
        yield proxy, up, service
    finally:
        proxy.stop()
        service.stop()
        up.stop()


def handed_off(proxy) -> float:
    """How many requests Backworks handed to nginx so far (its metric)."""
    text = requests.get(proxy.url + "/metrics", timeout=10).text
    return sample(text, "backworks_upstream_requests_total", upstream="api", outcome="handoff")


def test_get_is_sent_by_nginx_with_the_headers_backworks_would_send(site):
    proxy, up, _ = site
    headers = {"X-Custom": "c1", "Authorization": "Bearer abc", "X-Forwarded-For": "203.0.113.9",
               "X-Request-Id": "req-handoff-1", "Accept-Encoding": "gzip"}
    before = handed_off(proxy)
    handed = requests.get(proxy.url + "/api/items/a%2Fb?q=1&q=%20two", headers=headers, timeout=10)
    assert handed_off(proxy) == before + 1
    relayed = requests.get(proxy.url + "/plain/items/a%2Fb?q=1&q=%20two", headers=headers, timeout=10)
    assert handed.status_code == relayed.status_code == 200
    assert handed.headers["X-Request-Id"] == "req-handoff-1"
    assert handed.headers["Content-Type"] == "application/json"
    sent_by_nginx, sent_by_backworks = handed.json(), relayed.json()
    assert sent_by_nginx["raw_uri"] == sent_by_backworks["raw_uri"] == "/items/a%2Fb?q=1&q=%20two"
    assert sorted(sent_by_nginx["headers"]) == sorted(sent_by_backworks["headers"])
    seen = dict(sent_by_nginx["headers"])
    assert seen["X-Forwarded-For"] == "203.0.113.9, 127.0.0.1"
    assert seen["Host"] == up.url.removeprefix("http://")
    assert "X-Backworks-Handoff" not in seen and "X-Real-Ip" in seen


def test_post_body_goes_through_nginx_byte_for_byte(site):
    proxy, _, _ = site
    body = bytes(range(256)) * 600  # 150 KiB, binary
    before = handed_off(proxy)
    resp = requests.post(proxy.url + "/api/upload?x=1", data=body, headers={"Content-Type": "application/octet-stream"},
                         timeout=10)
    assert handed_off(proxy) == before + 1
    seen = resp.json()
    assert (resp.status_code, seen["method"], seen["body_size"]) == (200, "POST", len(body))
    assert seen["body_sha"] == hashlib.sha256(body).hexdigest()


def test_dead_target_get_is_taken_back_by_backworks_with_its_own_502(site):
    proxy, _, service = site
    resp = requests.get(proxy.url + "/dead/x", headers={"X-Request-Id": "dead-get"}, timeout=15)
    assert resp.status_code == 502
    error = resp.json()["error"]
    assert error["code"] == "upstream_unreachable"
    assert error["message"].startswith("upstream 'gone' (http://127.0.0.1:")
    assert error["message"].endswith("is unreachable: connection refused")
    assert error["request_id"] == "dead-get"


def test_dead_target_post_gets_the_502_json_without_being_sent_twice(site):
    proxy, _, _ = site
    resp = requests.post(proxy.url + "/dead/x", data=b"once", headers={"X-Request-Id": "dead-post"}, timeout=15)
    assert resp.status_code == 502
    error = resp.json()["error"]
    assert error["code"] == "upstream_error"
    assert "failed when nginx sent the request (502; see nginx's error log); a POST is not sent twice" \
        in error["message"]
    assert error["request_id"] == "dead-post"


def test_clients_cannot_reach_the_named_location(site):
    proxy, up, _ = site
    count = len(up.seen)
    resp = requests.get(proxy.url + "/@backworks_upstream", timeout=10)
    assert resp.status_code == 404 and resp.json()["error"]["code"] == "not_found"
    assert len(up.seen) == count


def test_hand_off_headers_sent_by_a_client_are_replaced_by_nginx(site):
    proxy, _, _ = site
    forged = {"X-Backworks-Handoff": "0", "X-Backworks-Handoff-Failed": "0 200 : 502"}
    before = handed_off(proxy)
    resp = requests.post(proxy.url + "/api/forged", data=b"x", headers=forged, timeout=10)
    assert resp.status_code == 200  # neither refused as a failed hand-off nor kept from nginx
    assert handed_off(proxy) == before + 1
    names = {name.lower() for name, _ in resp.json()["headers"]}
    assert not names & {"x-backworks-handoff", "x-backworks-handoff-failed"}


@pytest.mark.parametrize("prefix", ["/api", "/plain"])
def test_an_upstream_cannot_give_nginx_an_x_accel_order(site, prefix):
    proxy, _, _ = site
    resp = requests.get(proxy.url + prefix + "/accel", timeout=10)
    assert (resp.status_code, resp.text) == (200, "upstream body")
    assert not [name for name in resp.headers if name.lower().startswith("x-accel-")]


def test_a_large_answer_streams_from_nginx_and_head_gets_no_body(site):
    proxy, _, _ = site
    before = handed_off(proxy)
    big = requests.get(proxy.url + "/api/big?n=3000000", timeout=30)
    assert big.status_code == 200 and len(big.content) == 3_000_000 and big.content == b"x" * 3_000_000
    head = requests.head(proxy.url + "/api/item", timeout=10)
    assert head.status_code == 200 and head.content == b"" and head.headers["Content-Type"] == "application/json"
    assert handed_off(proxy) == before + 2
