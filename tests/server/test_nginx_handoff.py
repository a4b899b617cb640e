"""nginx carries the upstream leg (proxy.nginx_handoff) through the shipped site, with real nginx and gunicorn."""
from __future__ import annotations

import hashlib
import time

import pytest
import requests

from backworks.config.load import load_config
from backworks.modes.handoff_upstreams import NginxUpstreams
from tests.helpers.basics import free_port, write_config
from tests.helpers.fake_upstream import FakeUpstream, KeepAliveUpstream
from tests.helpers.ops import TOKEN, sample
from tests.server.test_deployment import Nginx, SystemdService, nginx_binary  # noqa: F401 (a fixture)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def config(up: str, dead: str, kept: str) -> str:
    return f"""
    name: handoff
    server: {{watch: false}}
    admin: {{token: {TOKEN}}}
    upstreams:
      api: {{targets: [{{url: "{up}"}}]}}
      gone: {{targets: [{{url: "{dead}"}}], retries: 0}}
      kept: {{targets: [{{url: "{kept}"}}]}}
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
      kept:
        path: /kept/{{rest:path}}
        proxy: {{upstream: kept, strip_prefix: /kept, nginx_handoff: true}}
        mode: proxy
    """


@pytest.fixture(scope="module")
def kept_up():
    server = KeepAliveUpstream()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def site(nginx_binary, tmp_path_factory, kept_up):  # noqa: F811
    tmp = tmp_path_factory.mktemp("handoff")
    up = FakeUpstream("up")
    service = SystemdService(tmp, write_config(tmp, config(up.url, f"http://127.0.0.1:{free_port()}", kept_up.url)))
    proxy = Nginx(nginx_binary, tmp / "nginx", service.socket_path)  # without the generated file
    try:
        service.wait_until_healthy(proxy.url)
        yield proxy, up, service
    finally:
        proxy.stop()
        service.stop()
        up.stop()


def handed_off(proxy, upstream: str = "api") -> float:
    """How many requests Backworks handed to nginx so far (its metric)."""
    text = requests.get(proxy.url + "/metrics", timeout=10).text
    return sample(text, "backworks_upstream_requests_total", upstream=upstream, outcome="handoff")


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


@pytest.fixture(scope="module")
def blocked(site, kept_up, nginx_binary, tmp_path_factory):  # noqa: F811
    """Two more nginx in front of the same gunicorn: one with the config's generated blocks, one with stale ones."""
    _, _, service = site
    tmp = tmp_path_factory.mktemp("handoff-blocks")
    current = NginxUpstreams.of(load_config(service.config))
    stale_config = write_config(tmp, service.config.read_text().replace("kept: {targets:",
                                                                        "kept: {pool_size: 7, targets:"))
    stale = NginxUpstreams.of(load_config(stale_config))
    assert stale.digest != current.digest and stale.names == current.names
    kept = Nginx(nginx_binary, tmp / "kept", service.socket_path, current.text(str(service.config)))
    old = Nginx(nginx_binary, tmp / "stale", service.socket_path, stale.text(str(stale_config)))
    try:
        yield kept, old, kept_up, service
    finally:
        kept.stop()
        old.stop()


def test_with_the_configs_blocks_nginx_keeps_upstream_connections_alive(blocked):
    kept, _, up, _ = blocked
    before, connections = handed_off(kept, "kept"), up.connections
    answers = [requests.get(kept.url + f"/kept/k/{i}?q=1", headers={"X-Request-Id": f"kept-{i}"}, timeout=10)
               for i in range(20)]
    posted = requests.post(kept.url + "/kept/k", data=b"body" * 1000, timeout=10)
    assert [a.status_code for a in answers] == [200] * 20 and posted.status_code == 200
    assert handed_off(kept, "kept") == before + 21
    assert up.connections - connections <= 2  # 21 exchanges, one nginx worker, one request at a time
    seen = answers[-1].json()
    assert seen["raw_uri"] == "/k/19?q=1" and answers[-1].headers["X-Request-Id"] == "kept-19"
    assert dict(seen["headers"])["Host"] == up.url.removeprefix("http://")  # not the block's name
    assert (posted.json()["method"], posted.json()["body_size"]) == ("POST", 4000)


def test_with_stale_blocks_nginx_is_handed_the_address_and_backworks_says_so(blocked):
    _, old, up, service = blocked
    before, connections = handed_off(old, "kept"), up.connections
    answers = [requests.get(old.url + f"/kept/stale/{i}", timeout=10) for i in range(10)]
    assert [a.status_code for a in answers] == [200] * 10
    assert handed_off(old, "kept") == before + 10
    assert up.connections - connections == 10  # a new connection per request: the stale block is not named
    deadline = time.monotonic() + 5
    while "are not those of this config" not in service.output() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "nginx's upstream blocks (digest " in service.output()


def test_without_the_generated_file_the_site_hands_off_with_a_connection_per_request(site, kept_up):
    proxy, _, _ = site
    before, connections = handed_off(proxy, "kept"), kept_up.connections
    answers = [requests.get(proxy.url + f"/kept/none/{i}", timeout=10) for i in range(5)]
    assert [a.status_code for a in answers] == [200] * 5
    assert handed_off(proxy, "kept") == before + 5
    assert kept_up.connections - connections == 5
