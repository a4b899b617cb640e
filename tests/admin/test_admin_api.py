"""The admin API: access rules, status, endpoints, recent requests (redacted), stats, reload, plugins."""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from backworks.app import create_app
from tests.helpers.basics import free_port, write_config
from tests.helpers.ops import TOKEN

CONFIG = f"""
    name: shop
    version: "2.1"
    server: {{access_log: false, watch: false}}
    admin: {{token: {TOKEN}, recent_requests: 3}}
    endpoints:
      hello:
        path: /hello/{{name}}
        description: Greets.
        mock: {{json: {{hi: "{{{{ path.name }}}}"}}}}
      broken: {{path: /broken, mock: {{status: 503, json: {{down: true}}}}}}
"""
AUTH = {"Authorization": f"Bearer {TOKEN}"}
MISSING = "the admin API needs the header Authorization: Bearer <admin.token>"


@pytest.fixture
def config_path(tmp_path):
    return write_config(tmp_path, CONFIG)


@pytest.fixture
def client(config_path):
    return create_app(config_path).test_client()


def test_admin_without_token_answers_401_with_a_challenge(client):
    resp = client.get("/_backworks/api/status")
    assert resp.status_code == 401
    assert resp.json == {"error": {"code": "unauthorized", "message": MISSING}}
    assert resp.headers["WWW-Authenticate"] == 'Bearer realm="backworks admin"'


@pytest.mark.parametrize("header", [f"Bearer {TOKEN}x", "Bearer wrong", f"Basic {TOKEN}"])
def test_admin_with_wrong_token_answers_401(client, header):
    resp = client.get("/_backworks/api/endpoints", headers={"Authorization": header})
    assert resp.status_code == 401
    expected = MISSING if header.startswith("Basic") else "the admin token is wrong"
    assert resp.json["error"]["message"] == expected


def test_admin_post_routes_need_the_token_too(client):
    assert client.post("/_backworks/api/reload").status_code == 401
    assert client.post("/_backworks/api/plugins/x/reset").status_code == 401


def test_token_posted_by_the_login_form_opens_only_the_dashboard_page(client):
    page = client.post("/_backworks/", data={"token": TOKEN})
    assert page.status_code == 200 and b'id="endpoints"' in page.data
    assert page.headers["Cache-Control"] == "no-store"
    assert client.post("/_backworks/", data={"token": "wrong"}).status_code == 401
    assert client.post("/_backworks/api/reload", data={"token": TOKEN}).status_code == 401


def test_token_in_a_url_opens_nothing(client):
    # a token in a URL lands in access logs and browser history: never accepted there
    assert client.get(f"/_backworks/?token={TOKEN}").status_code == 401
    assert client.get(f"/_backworks/api/status?token={TOKEN}").status_code == 401


def test_login_form_posts_the_token(client):
    page = client.get("/_backworks/", headers={"Accept": "text/html"})
    assert page.status_code == 401
    assert b'<form method="post" id="login">' in page.data and b'method="get"' not in page.data


def test_dashboard_without_token_shows_a_token_form_to_browsers(client):
    resp = client.get("/_backworks/", headers={"Accept": "text/html"})
    assert resp.status_code == 401
    assert b'name="token"' in resp.data
    assert client.get("/_backworks/").json["error"]["code"] == "unauthorized"


def test_admin_is_off_without_a_token(tmp_path):
    client = create_app(write_config(tmp_path, "endpoints: {a: {path: /a, mock: {json: 1}}}")).test_client()
    for path in ("/_backworks/api/status", "/_backworks/", "/_backworks/static/dashboard.js"):
        resp = client.get(path)
        assert resp.status_code == 404
        assert resp.json["error"]["code"] == "admin_disabled"


def test_dev_server_without_token_serves_direct_loopback_clients_only(tmp_path):
    app = create_app(write_config(tmp_path, "endpoints: {a: {path: /a, mock: {json: 1}}}"),
                     options={"dev_server": True})
    client = app.test_client()
    assert client.get("/_backworks/api/status", environ_base={"REMOTE_ADDR": "127.0.0.1"}).status_code == 200
    assert client.get("/_backworks/api/status", environ_base={"REMOTE_ADDR": "::1"}).status_code == 200
    assert client.get("/_backworks/", environ_base={"REMOTE_ADDR": "127.0.0.1"}).status_code == 200
    assert client.get("/_backworks/api/status", environ_base={"REMOTE_ADDR": "192.168.1.20"}).status_code == 404
    proxied = client.get("/_backworks/api/status", headers={"X-Forwarded-For": "203.0.113.7"},
                         environ_base={"REMOTE_ADDR": "127.0.0.1"})
    assert proxied.status_code == 404


def test_dev_server_with_a_token_still_requires_it(config_path):
    client = create_app(config_path, options={"dev_server": True}).test_client()
    assert client.get("/_backworks/api/status", environ_base={"REMOTE_ADDR": "127.0.0.1"}).status_code == 401


def test_status_names_config_version_reloads_and_pid(client, config_path):
    data = client.get("/_backworks/api/status", headers=AUTH).json
    assert data["name"] == "shop" and data["version"] == "2.1"
    assert data["config_path"] == str(config_path)
    assert data["reloads"] == 0 and data["last_reload_error"] is None
    assert isinstance(data["pid"], int) and data["loaded_at"] > 0


def test_endpoints_list_name_path_methods_mode(client):
    assert client.get("/_backworks/api/endpoints", headers=AUTH).json["endpoints"] == [
        {"name": "hello", "path": "/hello/{name}", "methods": ["GET"], "mode": "mock", "description": "Greets."},
        {"name": "broken", "path": "/broken", "methods": ["GET"], "mode": "mock", "description": ""},
    ]


def test_recent_requests_redact_credentials(client):
    client.set_cookie("sid", "abc")
    client.get("/hello/ann?api_key=k1&page=2&access_token=t1",
               headers={"Authorization": "Bearer user-secret", "X-Api-Key": "k2", "User-Agent": "probe"})
    row = client.get("/_backworks/api/requests", headers=AUTH).json["requests"][0]
    assert row["path"] == "/hello/ann" and row["status"] == 200 and row["endpoint"] == "hello"
    assert row["query"] == "api_key=[REDACTED]&page=2&access_token=[REDACTED]"
    assert row["headers"]["authorization"] == "[REDACTED]"
    assert row["headers"]["cookie"] == "[REDACTED]"
    assert row["headers"]["x-api-key"] == "[REDACTED]"
    assert row["headers"]["user-agent"] == "probe"
    assert "user-secret" not in str(row) and "k1" not in str(row) and "sid=abc" not in str(row)


def test_recent_requests_are_bounded_newest_first(client):
    for name in ("a", "b", "c", "d", "e"):
        client.get(f"/hello/{name}")
    data = client.get("/_backworks/api/requests", headers=AUTH).json
    assert data["capacity"] == 3
    assert [r["path"] for r in data["requests"]] == ["/hello/e", "/hello/d", "/hello/c"]


def test_recent_requests_reject_a_bad_limit(client):
    resp = client.get("/_backworks/api/requests?limit=abc", headers=AUTH)
    assert resp.status_code == 400
    assert resp.json["error"] == {"code": "invalid_parameter", "message": "limit must be an integer from 1 to 1000"}


def test_forwarded_headers_count_only_from_trusted_proxies(tmp_path):
    config = CONFIG.replace("watch: false}", "watch: false, trusted_proxies: [10.0.0.1]}")
    client = create_app(write_config(tmp_path, config)).test_client()
    forwarded = {"X-Forwarded-For": "198.51.100.4", "X-Forwarded-Proto": "https"}
    client.get("/hello/a", headers=forwarded, environ_base={"REMOTE_ADDR": "10.0.0.1"})
    client.get("/hello/b", headers=forwarded, environ_base={"REMOTE_ADDR": "10.0.0.99"})
    rows = client.get("/_backworks/api/requests", headers=AUTH).json["requests"]
    assert [(r["client_ip"], r["scheme"]) for r in rows] == [("10.0.0.99", "http"), ("198.51.100.4", "https")]


def test_stats_count_requests_by_endpoint(client):
    before = client.get("/_backworks/api/stats", headers=AUTH).json
    client.get("/hello/x")
    client.get("/broken")
    after = client.get("/_backworks/api/stats", headers=AUTH).json
    assert after["endpoints"]["hello"]["requests"] - before["endpoints"].get("hello", {"requests": 0})["requests"] == 1
    assert after["endpoints"]["broken"]["errors"] - before["endpoints"].get("broken", {"errors": 0})["errors"] == 1
    assert after["latency"]["count"] - before["latency"]["count"] == 2
    assert after["latency"]["buckets"][-1][0] == "+Inf"


def test_reload_applies_a_good_config(client, config_path):
    config_path.write_text(config_path.read_text().replace("Greets.", "Says hello."))
    resp = client.post("/_backworks/api/reload", headers=AUTH)
    assert resp.status_code == 200
    assert resp.json == {"ok": True, "reloads": 1, "endpoints": 2, "workers": "this process"}
    endpoints = client.get("/_backworks/api/endpoints", headers=AUTH).json["endpoints"]
    assert endpoints[0]["description"] == "Says hello."


def test_reload_refuses_a_broken_config_and_keeps_serving(client, config_path):
    config_path.write_text(config_path.read_text().replace("mock: {status: 503", "mock: {status: 999"))
    resp = client.post("/_backworks/api/reload", headers=AUTH)
    assert resp.status_code == 422
    error = resp.json["error"]
    assert error["code"] == "config_invalid"
    assert error["message"] == "the config was not reloaded; the previous one keeps serving"
    assert len(error["details"]) == 1
    assert error["details"][0].startswith(f"{config_path}:")
    assert "endpoints.broken.mock.status: max value is 599" in error["details"][0]
    assert client.get("/broken").status_code == 503
    status = client.get("/_backworks/api/status", headers=AUTH).json
    assert status["last_reload_error"] == error["details"][0]


def test_plugins_are_empty_without_plugins_and_reset_of_unknown_is_404(client):
    assert client.get("/_backworks/api/plugins", headers=AUTH).json["plugins"] == []
    resp = client.post("/_backworks/api/plugins/nope/reset", headers=AUTH)
    assert resp.status_code == 404
    assert resp.json["error"] == {"code": "not_found", "message": "no plugin named 'nope'"}


def test_custom_admin_path(tmp_path):
    client = create_app(write_config(tmp_path, CONFIG.replace("recent_requests: 3", "path: /ops"))).test_client()
    assert client.get("/ops/api/status", headers=AUTH).status_code == 200
    assert client.get("/_backworks/api/status", headers=AUTH).status_code == 404


def test_readyz_checks_the_database_when_database_endpoints_exist(tmp_path, monkeypatch):
    app = create_app(write_config(tmp_path, f"""
        admin: {{token: {TOKEN}}}
        database: {{url: "sqlite:///{tmp_path}/shop.db"}}
        endpoints:
          items:
            path: /items
            mode: database
            database: {{table: items, fields: {{name: {{type: string}}}}}}
    """))
    client = app.test_client()
    resp = client.get("/readyz")
    assert resp.status_code == 200 and resp.json == {"status": "ready"}
    assert client.get("/_backworks/api/ready", headers=AUTH).json["checks"]["database"] == \
        {"ok": True, "dialect": "sqlite"}
    unreachable = sa.create_engine(f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/none")
    runtime = app.extensions["backworks"].runtime
    monkeypatch.setattr(runtime.ctx.peek("database"), "engine", unreachable)
    resp = client.get("/readyz")
    assert resp.status_code == 503
    assert resp.json == {"status": "not_ready", "reasons": ["database_unreachable"]}
    details = client.get("/_backworks/api/ready", headers=AUTH)
    assert details.status_code == 503 and details.json["checks"]["database"]["ok"] is False
    assert details.json["checks"]["database"]["error"].startswith("database unreachable: OperationalError")


def test_healthz_and_readyz_without_database(client):
    assert client.get("/healthz").json["status"] == "ok"
    resp = client.get("/readyz")
    assert resp.status_code == 200
    assert resp.json == {"status": "ready"}
    assert client.get("/_backworks/api/ready", headers=AUTH).json == {
        "status": "ready", "checks": {"config": {"ok": True, "endpoints": 2, "last_reload_error": None}}}


def test_plugins_show_breaker_and_health_and_reset_closes_the_breaker(tmp_path):
    (tmp_path / "flaky.py").write_text("def before_request(request):\n    raise ValueError('down')\n\n"
                                       "def health_check():\n    return False\n")
    client = create_app(write_config(tmp_path, CONFIG + """
    plugins:
      admin_flaky:
        script: flaky.py
        critical: true
        circuit_breaker: {failure_threshold: 2, recovery_s: 600}
    """)).test_client()
    for _ in range(3):
        assert client.get("/hello/x").status_code == 200
    (plugin,) = client.get("/_backworks/api/plugins", headers=AUTH).json["plugins"]
    assert plugin["name"] == "admin_flaky"
    assert plugin["breaker"]["state"] == "open"
    assert plugin["health"]["healthy"] is False and plugin["health"]["health_check"] == "unhealthy"
    assert plugin["calls_all_workers"]["error"] == 2
    assert client.get("/readyz").status_code == 503
    resp = client.post("/_backworks/api/plugins/admin_flaky/reset", headers=AUTH)
    assert resp.status_code == 200 and resp.json["ok"] is True
    (plugin,) = client.get("/_backworks/api/plugins", headers=AUTH).json["plugins"]
    assert plugin["breaker"]["state"] == "closed"


def test_dashboard_path_without_slash_redirects(client):
    resp = client.get("/_backworks")
    assert resp.status_code == 308
    assert resp.headers["Location"].endswith("/_backworks/")
