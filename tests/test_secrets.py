"""The secrets policy (backworks/secrets.py): what is secret, and that no output shows it (issue 15)."""
from __future__ import annotations

import json
import logging
import time

import pytest
import yaml
from click.testing import CliRunner

from backworks import secrets
from backworks.app import create_app
from backworks.capture.har import export_har
from backworks.capture.mockgen import build_mocks
from backworks.capture.redact import headers_from_json
from backworks.capture.store import CaptureStore
from backworks.cli.main import cli
from backworks.config.load import load_config
from tests.helpers.basics import free_port, write_config
from tests.helpers.fake_upstream import FakeUpstream
from tests.helpers.ops import TOKEN

AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def upstream():
    server = FakeUpstream("up")
    yield server
    server.stop()


def wait_rows(store: CaptureStore, count: int) -> list:
    """Wait (bounded) until the writer thread stored `count` exchanges; return them."""
    deadline = time.monotonic() + 10
    rows: list = []
    while time.monotonic() < deadline:
        try:
            rows = store.rows()
        except Exception:
            rows = []
        if len(rows) >= count:
            return rows
        time.sleep(0.05)
    return rows


def capture_app(tmp_path, upstream_url: str, extra: str = ""):
    """(app, client, store) for a capture endpoint /rec/... in front of `upstream_url`."""
    path = write_config(tmp_path, f"""
        admin: {{token: {TOKEN}}}
        server: {{watch: false}}
        capture: {{store: "sqlite:///captures.db"}}
        upstreams:
          api: {{targets: [{{url: "{upstream_url}"}}], retries: 0, connect_timeout_ms: 500}}
        endpoints:
          rec:
            path: /rec/{{rest:path}}
            mode: capture
            capture: {{upstream: api, strip_prefix: /rec{extra}}}
    """)
    app = create_app(path)
    return app, app.test_client(), CaptureStore.from_config(load_config(path)), path


# --- the policy's names ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", [
    "Authorization", "Proxy-Authorization", "Cookie", "Set-Cookie", "X-Api-Key", "X-Auth-Token", "X-Access-Key",
    "X-Private-Key", "access_token", "refresh-token", "client_secret", "PASSWORD", "db_passphrase", "api_key",
    "apikey", "x_access_key", "ssh-private-key", "jwt", "session_id", "credentials", "key", "sig"])
def test_secret_names_are_recognised_whatever_the_case_and_separator(name):
    assert secrets.DEFAULT.is_secret_header(name) and secrets.DEFAULT.is_secret_param(name)


@pytest.mark.parametrize("name", ["Content-Type", "Accept", "X-Request-Id", "page", "user", "author", "q"])
def test_ordinary_names_are_not_secret(name):
    assert not secrets.DEFAULT.is_secret_header(name) and not secrets.DEFAULT.is_secret_field(name)


def test_configured_additions_join_the_defaults():
    policy = secrets.from_settings({"redact_headers": ["X-Tenant"], "redact_fields": ["pin"],
                                    "redact_query": ["code"]})
    assert policy.is_secret_header("x-tenant") and policy.is_secret_field("PIN") and policy.is_secret_param("code")
    assert not secrets.DEFAULT.is_secret_param("code")


@pytest.mark.parametrize("url, shown", [
    ("postgresql://bob:hunter2@db/x", "postgresql://bob:***@db/x"),
    ("postgresql://bob:p@ss/w0rd@db/x", "postgresql://bob:***@db/x"),
    ("redis://:pw@cache:6379/0", "redis://:***@cache:6379/0"),
    ("https://ghp_abcdef@github.com/x.git", "https://***@github.com/x.git"),
    ("http://h/v1?password=hunter2&q=1", "http://h/v1?password=***&q=1"),
    ("http://h/?api_key=abc&access_token=t#top", "http://h/?api_key=***&access_token=***#top"),
    ("https://host/users/@me", "https://host/users/@me"),
    ("postgresql://bob@db/x", "postgresql://bob@db/x"),
    ("https://app/cb#access_token=abc&state=1", "https://app/cb#access_token=***&state=1"),
    ("sqlite:///captures.db", "sqlite:///captures.db"),
])
def test_hide_url_hides_passwords_tokens_and_secret_query_values(url, shown):
    assert secrets.hide_url(url) == shown


def test_a_url_in_a_header_value_has_its_secrets_redacted_and_remembered():
    redaction = secrets.DEFAULT.redaction()
    assert redaction.headers([("Location", "https://app/cb#access_token=tok-in-location&state=1")]) == \
        [("Location", "https://app/cb#access_token=[REDACTED]&state=1")]
    assert redaction.text(b"echo tok-in-location") == b"echo [REDACTED]"


def test_config_values_are_secret_fields_url_passwords_and_basic_credentials_but_not_mock_data():
    data = {"admin": {"token": "admin-tok"}, "upstreams": {"a": {"targets": [{"url": "http://u:pw-1234@h/"}]}},
            "endpoints": {"e": {"mock": {"json": {"token": "demo-token"}}},
                          "p": {"proxy": {"set_headers": {"X-Api-Key": "hdr-key"}}}}}
    assert secrets.config_values(data) == {"admin-tok", "pw-1234", "hdr-key", "dTpwdy0xMjM0"}


def test_public_url_keeps_only_scheme_host_port_and_path():
    assert secrets.public_url("http://u:pw@api.test:8443/v1/?api_key=k") == "http://api.test:8443/v1"
    assert secrets.public_url("http://u:p@ss/w@api.test/v1") == "http://api.test/v1"


def test_error_text_keeps_the_first_line_without_sql_parameters():
    class Driver(Exception):
        pass

    class Wrapped(Exception):
        orig = Driver('duplicate key value violates unique constraint "k"\nDETAIL: Key (k)=(s3cret) exists')

    assert secrets.error_text(Wrapped("[parameters: ('s3cret',)]")) == \
        'Driver: duplicate key value violates unique constraint "k"'


# --- capture redaction ----------------------------------------------------------------------------------

def test_capture_redacts_query_keys_api_key_headers_form_and_text_bodies(tmp_path, upstream):
    app, client, store, _ = capture_app(tmp_path, upstream.url)
    try:
        client.get("/rec/q?api_key=k-query-1&access_token=t-query-2&page=3",
                   headers={"X-Api-Key": "k-header-3", "X-Auth-Token": "t-header-4"})
        client.post("/rec/login", data={"user": "ann", "password": "pw-form-5"})
        client.post("/rec/note", data=b"note: my key is k-header-3", content_type="text/plain",
                    headers={"X-Api-Key": "k-header-3"})
        rows = wait_rows(store, 3)
    finally:
        app.extensions["backworks"].runtime.close()
    dumped = repr(rows)
    for value in ("k-query-1", "t-query-2", "k-header-3", "t-header-4", "pw-form-5"):
        assert value not in dumped
    query_row, form_row, text_row = rows
    assert query_row["query"] == "api_key=[REDACTED]&access_token=[REDACTED]&page=3"
    assert query_row["url"] == "http://localhost/rec/q?api_key=[REDACTED]&access_token=[REDACTED]&page=3"
    headers = dict(headers_from_json(query_row["request_headers"]))
    assert headers["X-Api-Key"] == headers["X-Auth-Token"] == "[REDACTED]"
    assert form_row["request_body"] == b"user=ann&password=[REDACTED]"
    assert text_row["request_body"] == b"note: my key is [REDACTED]"


def test_capture_hides_a_config_secret_echoed_by_the_upstream(tmp_path, upstream, monkeypatch):
    monkeypatch.setenv("CATALOG_KEY", "catalog-key-from-env")
    app, client, store, _ = capture_app(tmp_path, upstream.url, ', set_headers: {X-Upstream: "${CATALOG_KEY}"}')
    try:
        assert "catalog-key-from-env" in client.get("/rec/echo").get_data(as_text=True)  # the client sees it
        (row,) = wait_rows(store, 1)
    finally:
        app.extensions["backworks"].runtime.close()
    assert b"catalog-key-from-env" not in row["response_body"]
    assert ["X-Upstream", "[REDACTED]"] in json.loads(row["response_body"])["headers"]


def test_har_export_and_mock_query_conditions_carry_no_secret():
    row = {"recorded_at": 0.0, "endpoint": "rec", "method": "GET", "url": "http://h/x?api_key=key-one&q=a",
           "path": "/x", "query": "api_key=key-one&q=a", "request_headers": '[["X-Api-Key", "key-two"]]',
           "request_body": b"",
           "request_body_size": 0, "request_body_hash": "", "status": 200,
           "response_headers": '[["Content-Type", "text/plain"], ["Set-Cookie", "sid=key-three"]]',
           "response_body": b"your key key-two", "response_body_size": 16, "duration_ms": 1.0, "upstream": "api"}
    other = {**row, "query": "api_key=key-one&q=b", "url": "http://h/x?api_key=key-one&q=b"}
    har = json.dumps(export_har([row]))
    mocks = json.dumps(build_mocks([row, other]))
    for value in ("key-one", "key-two", "key-three"):
        assert value not in har and value not in mocks
    responses = build_mocks([row, other])["endpoints"]["get_x"]["mock"]["responses"]
    assert [r["when"] for r in responses] == [{"query": {"q": "a"}}, {"query": {"q": "b"}}]
    assert all("headers" not in r for r in responses)  # a redacted Set-Cookie is left out


def test_capture_import_redacts_before_storing(tmp_path):
    store = CaptureStore(f"sqlite:///{tmp_path / 'c.db'}")
    store.insert([{"recorded_at": 0.0, "endpoint": "", "method": "GET", "url": "http://h/?token=t-imported",
                   "path": "/", "query": "token=t-imported", "request_headers": "[]", "request_body": b"",
                   "request_body_size": 0, "request_body_hash": "", "status": 200, "response_headers": "[]",
                   "response_body": b"t-imported", "response_body_size": 10, "duration_ms": 0.0,
                   "upstream": ""}])
    assert "t-imported" not in repr(store.rows())
    store.close()


def test_recent_requests_view_redacts_access_key_passphrase_jwt_and_key_headers(tmp_path):
    client = create_app(write_config(tmp_path, f"""
        admin: {{token: {TOKEN}}}
        server: {{watch: false}}
        endpoints: {{hello: {{path: /hello, mock: {{json: {{hi: 1}}}}}}}}
    """)).test_client()
    client.get("/hello?access_key=ak-1&passphrase=pp-2&jwt=jw-3&page=1",
               headers={"X-Access-Key": "xa-4", "X-Private-Key": "xp-5"})
    row = client.get("/_backworks/api/requests", headers=AUTH).json["requests"][0]
    assert row["query"] == "access_key=[REDACTED]&passphrase=[REDACTED]&jwt=[REDACTED]&page=1"
    assert row["headers"]["x-access-key"] == row["headers"]["x-private-key"] == "[REDACTED]"


# --- print-config, /readyz, logs, error bodies, metrics -------------------------------------------------

def test_print_config_masks_header_secrets_redis_and_query_passwords_and_odd_passwords(tmp_path, monkeypatch):
    monkeypatch.setenv("CATALOG_KEY", "catalog-k3y")
    path = write_config(tmp_path, """
        database: {url: "postgresql://bob:p@ss/w0rd@db/shop"}
        state: {url: "redis://:redis-pw@cache:6379/0"}
        capture: {store: "postgresql://db/captures?password=query-pw"}
        upstreams:
          catalog: {targets: [{url: "http://catalog.test/?api_key=query-key"}]}
        endpoints:
          c:
            path: /c/{rest:path}
            mode: proxy
            proxy: {upstream: catalog, set_headers: {X-Api-Key: "${CATALOG_KEY}", X-Plain: "k=${CATALOG_KEY}"}}
    """)
    result = CliRunner().invoke(cli, ["print-config", str(path)])
    assert result.exit_code == 0, result.output
    for value in ("catalog-k3y", "p@ss", "w0rd", "redis-pw", "query-pw", "query-key"):
        assert value not in result.output
    data = yaml.safe_load(result.output)
    assert data["database"]["url"] == "postgresql://bob:***@db/shop"
    assert data["state"]["url"] == "redis://:***@cache:6379/0"
    assert data["capture"]["store"] == "postgresql://db/captures?password=***"
    assert data["upstreams"]["catalog"]["targets"][0]["url"] == "http://catalog.test/?api_key=***"
    assert data["endpoints"]["c"]["proxy"]["set_headers"] == {"X-Api-Key": "***", "X-Plain": "k=***"}
    assert data["state"]["max_keys"] == 10000  # a number under a key-like name is a setting


def test_readyz_says_config_invalid_without_the_reload_error(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("SECRET_X", "hunter2")
    text = f"admin: {{token: {TOKEN}}}\nserver: {{watch: false}}\nendpoints: {{a: {{path: /a}}}}\n"
    path = write_config(tmp_path, text)
    app = create_app(path)
    client = app.test_client()
    path.write_text('mode: "${SECRET_X}"\n' + text)
    with caplog.at_level(logging.ERROR):
        assert app.extensions["backworks"].reload() is False
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json == {"status": "ready", "reasons": ["config_invalid"]}
    status = client.get("/_backworks/api/status", headers=AUTH).json
    assert "mode: unallowed value '***'" in status["last_reload_error"]  # details: admin API and log
    assert "hunter2" not in ready.get_data(as_text=True) + str(status) + caplog.text
    assert "unallowed value '***'" in caplog.text


def test_a_failed_capture_write_logs_no_sql_parameters(tmp_path, caplog):
    store = CaptureStore(f"sqlite:///{tmp_path / 'c.db'}")
    row = {"recorded_at": 0.0, "endpoint": "rec", "method": "GET", "url": "http://h/find-me-path?q=find-me-query",
           "path": "/find-me-path", "query": "q=find-me-query", "request_headers": [], "request_body": b"",
           "request_body_size": 0, "request_body_hash": "", "status": None, "response_headers": [],
           "response_body": b"", "response_body_size": 0, "duration_ms": 0.0, "upstream": "api"}
    with caplog.at_level(logging.WARNING, logger="backworks.capture.store"):
        store.record(row)  # the writer's insert fails: status is NOT NULL
        store.flush()
    assert ("could not record 1 exchange(s): IntegrityError: NOT NULL constraint failed: backworks_captures.status"
            in caplog.text)
    assert "find-me" not in caplog.text
    store.close()


def test_upstream_credentials_and_query_stay_out_of_502_bodies_and_metrics(tmp_path):
    dead = f"http://user:up-pass-1@127.0.0.1:{free_port()}/base?api_key=up-key-2"
    app, client, _, _ = capture_app(tmp_path, dead)
    try:
        reply = client.get("/rec/x")
        metrics_text = client.get("/metrics").get_data(as_text=True)
    finally:
        app.extensions["backworks"].runtime.close()
    assert reply.status_code == 502
    body = reply.get_data(as_text=True)
    assert f"(http://127.0.0.1:{dead.split(':')[3].split('/')[0]}/base)" in body
    for text in (body, metrics_text):
        assert "up-pass-1" not in text and "up-key-2" not in text and "api_key=" not in text


# --- generated mocks: `$` is never substituted ----------------------------------------------------------

def test_mocks_from_capture_escape_dollar_so_the_environment_never_leaks(tmp_path, upstream, monkeypatch):
    monkeypatch.setenv("ADMIN_TOKEN", "admin-token-value")
    monkeypatch.setenv("HOME", "/home/someone")
    app, client, store, path = capture_app(tmp_path, upstream.url)
    note = "hello ${ADMIN_TOKEN:-unset} and ${HOME} and $$"
    try:
        client.get("/rec/echo", headers={"X-Note": note})
        wait_rows(store, 1)
    finally:
        app.extensions["backworks"].runtime.close()
    out = tmp_path / "mocks.yaml"
    result = CliRunner().invoke(cli, ["mocks-from-capture", str(path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "$${HOME}" in out.read_text()
    mocks = create_app(out)
    try:
        served = mocks.test_client().get("/rec/echo").get_json()
    finally:
        mocks.extensions["backworks"].runtime.close()
    assert ["X-Note", note] in served["headers"]


@pytest.mark.parametrize("depth", [10, 5000, 200_000])
def test_a_json_body_nested_past_the_parser_is_still_redacted(depth):
    body = b'{"password": "hunter2-xyz", "deep": ' + b"[" * depth + b"]" * depth + b"}"
    redacted = secrets.DEFAULT.redaction().body(body, "application/json")
    assert b"hunter2-xyz" not in redacted
    assert redacted.startswith(b'{"password":')
