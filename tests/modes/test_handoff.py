"""proxy.nginx_handoff: which requests Backworks hands to nginx, and the X-Accel answer it gives (in process)."""
from __future__ import annotations

import logging
import textwrap
import time

import pytest

from backworks.app import create_app
from backworks.breaker import OPEN
from backworks.errors import ConfigError
from backworks.modes.handoff import CLEARED, SITE_CLEARS
from backworks.modes.proxy import HOP_BY_HOP
from tests.helpers.basics import ROOT, free_port, write_config
from tests.helpers.fake_upstream import FakeUpstream

OFFER = {"X-Backworks-Handoff": "1"}


@pytest.fixture
def up():
    server = FakeUpstream("up")
    yield server
    server.stop()


@pytest.fixture
def app_for(tmp_path):
    """Factory: app_for(proxy_fields, extra_yaml="", url=None) -> Flask app with one proxy endpoint /api/."""
    apps = []

    def make(url: str, fields: str = "", extra: str = ""):
        app = create_app(write_config(tmp_path, textwrap.dedent(f"""
            server: {{watch: false, access_log: false}}
            upstreams:
              api: {{targets: [{{url: "{url}"}}], retry_backoff_ms: 1}}
            endpoints:
              api:
                path: /api/{{rest:path}}
                mode: proxy
                proxy: {{upstream: api, strip_prefix: /api, nginx_handoff: true {fields}}}
        """) + extra))
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.extensions["backworks"].runtime.close()


def handoff_of(app):
    return app.extensions["backworks"].runtime.endpoints["api"].mode.handoff


def test_offered_request_is_answered_with_x_accel_redirect_and_the_header_values(up, app_for):
    app = app_for(up.url)
    reply = app.test_client().get("/api/items/a%2Fb?q=1&q=2", headers={
        **OFFER, "X-Forwarded-For": "203.0.113.9", "X-Real-IP": "203.0.113.9", "Host": "shop.example",
        "X-Request-Id": "rid-7", "Authorization": "Bearer t"})
    assert reply.status_code == 200 and reply.data == b""
    assert reply.headers["X-Accel-Redirect"] == "@backworks_upstream"
    assert reply.headers["X-Backworks-Url"] == f"{up.url}/items/a%2Fb?q=1&q=2"
    assert reply.headers["X-Backworks-Target"] == "0"
    assert reply.headers["X-Backworks-Host"] == up.url.removeprefix("http://")
    assert reply.headers["X-Backworks-Forwarded-For"] == "203.0.113.9, 127.0.0.1"
    assert reply.headers["X-Backworks-Forwarded-Proto"] == "http"
    assert reply.headers["X-Backworks-Forwarded-Host"] == "shop.example"
    assert reply.headers["X-Backworks-Real-Ip"] == "203.0.113.9"
    assert reply.headers["X-Backworks-Authorization"] == "Bearer t"
    assert reply.headers["X-Request-Id"] == "rid-7"
    assert up.seen == []


@pytest.mark.parametrize("headers, peer", [({}, "127.0.0.1"), (OFFER, "10.1.2.3"),
                                           ({"X-Backworks-Handoff": "yes"}, "127.0.0.1")],
                         ids=["not offered", "untrusted peer", "unknown offer"])
def test_requests_not_offered_by_a_trusted_nginx_are_proxied_by_backworks(up, app_for, headers, peer):
    reply = app_for(up.url).test_client().get("/api/x", headers=headers, environ_overrides={"REMOTE_ADDR": peer})
    assert reply.status_code == 200 and "X-Accel-Redirect" not in reply.headers
    assert reply.get_json()["path"] == "/x"
    assert not [k for k, _ in reply.get_json()["headers"] if k.lower().startswith("x-backworks")]


def test_without_the_option_the_offer_is_ignored(up, app_for):
    app = app_for(up.url, fields=", nginx_handoff: false")
    reply = app.test_client().get("/api/x", headers=OFFER)
    assert "X-Accel-Redirect" not in reply.headers and reply.get_json()["path"] == "/x"


def test_a_set_header_nginx_cannot_carry_keeps_the_request_with_backworks(up, app_for):
    reply = app_for(up.url, fields=", set_headers: {X-Api-Key: k1}").test_client().get("/api/x", headers=OFFER)
    assert "X-Accel-Redirect" not in reply.headers
    assert ["X-Api-Key", "k1"] in reply.get_json()["headers"]


def test_a_set_authorization_is_carried(up, app_for):
    reply = app_for(up.url, fields=", set_headers: {Authorization: Basic abc}").test_client().get(
        "/api/x", headers={**OFFER, "Authorization": "Bearer client"})
    assert reply.headers["X-Backworks-Authorization"] == "Basic abc"


def test_target_credentials_are_carried_as_authorization(up, app_for):
    url = up.url.replace("http://", "http://user:pw@")
    reply = app_for(url).test_client().get("/api/x", headers=OFFER)
    assert reply.headers["X-Backworks-Authorization"] == "Basic dXNlcjpwdw=="
    assert reply.headers["X-Backworks-Url"] == f"{up.url}/x"  # no credentials in the URL nginx gets


def test_remove_headers_hands_off_only_requests_without_that_header(up, app_for):
    client = app_for(up.url, fields=", remove_headers: [X-Debug]").test_client()
    assert client.get("/api/x", headers=OFFER).headers["X-Accel-Redirect"] == "@backworks_upstream"
    kept = client.get("/api/x", headers={**OFFER, "X-Debug": "1"})
    assert "X-Accel-Redirect" not in kept.headers
    assert "X-Debug" not in dict(kept.get_json()["headers"])


PLUGIN = """
def before_request(request):
    request["headers"]["{name}"] = "from-plugin"
    return request
"""


@pytest.mark.parametrize("name, handed", [("x-p", False), ("authorization", True), ("x-forwarded-host", True)])
def test_a_plugin_header_change_is_handed_off_only_when_nginx_can_carry_it(tmp_path, up, app_for, name, handed):
    (tmp_path / "p.py").write_text(PLUGIN.format(name=name))
    reply = app_for(up.url, extra="plugins: {p: {script: p.py}}\n").test_client().get("/api/x", headers=OFFER)
    assert ("X-Accel-Redirect" in reply.headers) is handed
    if handed:
        assert reply.headers[f"X-Backworks-{name.title().removeprefix('X-')}"] == "from-plugin"
    else:
        assert ["X-P", "from-plugin"] in reply.get_json()["headers"]


def test_an_after_response_hook_turns_the_hand_off_off(tmp_path, up, app_for, caplog):
    (tmp_path / "a.py").write_text("def after_response(request, response):\n    return response\n")
    with caplog.at_level(logging.WARNING, logger="backworks.modes.proxy"):
        app = app_for(up.url, extra="plugins: {a: {script: a.py}}\n")
    assert handoff_of(app) is None
    assert "endpoint api: nginx_handoff is off, Backworks proxies every request: after_response hooks of a need " \
           "the upstream's answer" in caplog.text
    assert "X-Accel-Redirect" not in app.test_client().get("/api/x", headers=OFFER).headers


@pytest.mark.parametrize("url, why", [
    ("https://127.0.0.1:9", "it is not http://"), ("http://localhost:9", "its host is a name, not an IP address")])
def test_targets_nginx_cannot_be_handed_turn_the_hand_off_off(app_for, caplog, url, why):
    with caplog.at_level(logging.WARNING, logger="backworks.modes.proxy"):
        app = app_for(url)
    assert handoff_of(app) is None and why in caplog.text


def test_an_open_breaker_keeps_requests_with_backworks(up, app_for):
    app = app_for(up.url)
    breaker = handoff_of(app).upstream.targets[0].breaker
    breaker.state, breaker.opened_at = OPEN, time.monotonic()
    reply = app.test_client().get("/api/x", headers=OFFER)
    assert "X-Accel-Redirect" not in reply.headers and reply.status_code == 503
    assert reply.get_json()["error"]["code"] == "upstream_unavailable"


def test_a_failed_hand_off_of_a_get_is_sent_again_by_backworks(up, app_for):
    reply = app_for(up.url).test_client().get("/api/again", headers={"X-Backworks-Handoff-Failed": "0 200 : 502"})
    assert reply.status_code == 200 and reply.get_json()["path"] == "/again"


def test_a_failed_hand_off_of_a_post_answers_502_without_sending_it(up, app_for):
    reply = app_for(up.url).test_client().post("/api/once", data=b"x", headers={
        "X-Backworks-Handoff-Failed": "0 200 : 504", "X-Request-Id": "r1"})
    assert reply.status_code == 504
    assert reply.get_json() == {"error": {
        "code": "upstream_timeout", "request_id": "r1",
        "message": f"upstream 'api' ({up.url}) did not answer in time when nginx sent the request (504; see "
                   f"nginx's error log); a POST is not sent twice"}}
    assert up.seen == []


def test_a_hybrid_endpoint_cannot_hand_off(tmp_path, up):
    path = write_config(tmp_path, f"""
        upstreams: {{api: {{targets: [{{url: "{up.url}"}}]}}}}
        endpoints:
          h:
            path: /h
            mode: hybrid
            hybrid: {{fallback: mock}}
            proxy: {{upstream: api, nginx_handoff: true}}
            mock: {{json: {{}}}}
    """)
    with pytest.raises(ConfigError) as caught:
        create_app(path)
    assert f"{path}:8: endpoints.h.proxy.nginx_handoff: a hybrid endpoint needs the upstream's answer to fall " \
           f"back, so nginx cannot send the request (remove nginx_handoff)" in caught.value.problems


def test_a_capture_block_has_no_nginx_handoff(tmp_path, up):
    path = write_config(tmp_path, f"""
        upstreams: {{api: {{targets: [{{url: "{up.url}"}}]}}}}
        capture: {{store: "sqlite:///{tmp_path}/c.db"}}
        endpoints:
          c: {{path: /c, mode: capture, capture: {{upstream: api, nginx_handoff: true}}}}
    """)
    with pytest.raises(ConfigError) as caught:
        create_app(path)
    assert any("endpoints.c.capture.nginx_handoff: unknown field" in p for p in caught.value.problems)


def test_ordinary_proxying_drops_x_accel_headers_of_the_upstream_and_hand_off_headers_of_the_client(up, app_for):
    client = app_for(up.url, fields=", nginx_handoff: false").test_client()
    reply = client.get("/api/accel")
    assert reply.data == b"upstream body"
    assert not [k for k in reply.headers.keys() if k.lower().startswith("x-accel-")]
    sent = client.get("/api/x", headers={**OFFER, "X-Backworks-Handoff-Failed": "0 502"}).get_json()["headers"]
    assert not [k for k, _ in sent if k.lower().startswith("x-backworks")]


def test_the_site_clears_every_header_backworks_drops_and_nginx_would_pass():
    site = (ROOT / "config" / "nginx" / "backworks.conf").read_text()
    location = site[site.index("location @backworks_upstream {"):site.index("location @backworks_upstream_failed")]
    cleared = {line.split()[1].lower() for line in location.splitlines()
               if line.strip().startswith("proxy_set_header") and line.strip().endswith('"";')}
    assert SITE_CLEARS <= cleared
    assert HOP_BY_HOP <= CLEARED


def test_a_dead_port_is_still_handed_off(app_for):
    url = f"http://127.0.0.1:{free_port()}"  # health is nginx's to find out: Backworks takes the request back
    reply = app_for(url).test_client().get("/api/x", headers=OFFER)
    assert reply.headers["X-Backworks-Url"] == f"{url}/x"


def test_nginx_with_the_configs_blocks_is_handed_a_url_naming_the_block(up, app_for):
    app = app_for(up.url + "/base")
    digest = handoff_of(app).blocks.digest
    reply = app.test_client().get("/api/items?q=1", headers={"X-Backworks-Handoff": digest})
    assert reply.headers["X-Backworks-Url"] == f"http://backworks_v4_127_0_0_1_{up.port}/base/items?q=1"
    assert reply.headers["X-Backworks-Host"] == up.url.removeprefix("http://")  # never the block's name


@pytest.mark.parametrize("offer", ["1", "ffffffffffffffff"], ids=["no blocks", "other blocks"])
def test_nginx_without_the_configs_blocks_is_handed_the_targets_address(up, app_for, offer):
    app = app_for(up.url + "/base")
    reply = app.test_client().get("/api/items?q=1", headers={"X-Backworks-Handoff": offer})
    assert reply.headers["X-Accel-Redirect"] == "@backworks_upstream"
    assert reply.headers["X-Backworks-Url"] == f"{up.url}/base/items?q=1"
