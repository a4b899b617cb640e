"""Capture mode: proxying while recording into SQLite and PostgreSQL, with redaction and filters."""
from __future__ import annotations

import json
import time
import uuid

import pytest
import requests

from backworks import metrics
from backworks.app import create_app
from backworks.capture.redact import headers_from_json
from backworks.capture.store import CaptureStore
from backworks.config.load import load_config
from backworks.errors import ConfigError
from tests.helpers.basics import write_config
from tests.helpers.fake_upstream import FakeUpstream


@pytest.fixture
def upstream():
    server = FakeUpstream("rec")
    yield server
    server.stop()


def capture_config(url: str, capture: str = "") -> str:
    return f"""
server: {{watch: false, access_log: false}}
capture: {{store: "sqlite:///captures.db", redact_headers: [X-Api-Key], redact_fields: [password, token]
          {capture}}}
upstreams:
  api: {{targets: [{{url: "{url}"}}], read_timeout_ms: 2000}}
endpoints:
  rec:
    path: /rec/{{rest:path}}
    mode: capture
    capture: {{upstream: api, strip_prefix: /rec}}
"""


@pytest.fixture
def recorder(tmp_path, upstream):
    """Factory: recorder(capture_fields) -> (test client, store reader); apps closed after the test."""
    apps = []

    def make(capture: str = "", url: str | None = None):
        path = write_config(tmp_path, capture_config(url or upstream.url, capture))
        app = create_app(path)
        apps.append(app)
        return app.test_client(), CaptureStore.from_config(load_config(path))

    yield make
    for app in apps:
        app.extensions["backworks"].runtime.close()


def stored(store: CaptureStore, count: int, timeout: float = 5.0) -> list:
    """Wait until the writer thread stored `count` exchanges; return them."""
    deadline = time.monotonic() + timeout
    rows = []
    while time.monotonic() < deadline:
        try:
            rows = store.rows()
        except Exception:
            rows = []
        if len(rows) >= count:
            return rows
        time.sleep(0.05)
    return rows


def test_capture_records_the_exchange_and_answers_like_the_proxy(recorder):
    client, store = recorder()
    reply = client.post("/rec/orders?b=2&a=1", json={"item": "tea"}, headers={"X-Trace": "t1"})
    assert reply.status_code == 200
    assert reply.get_json()["path"] == "/orders"
    (row,) = stored(store, 1)
    assert (row["endpoint"], row["method"], row["path"], row["query"], row["status"]) == \
        ("rec", "POST", "/rec/orders", "b=2&a=1", 200)
    assert row["url"] == "http://localhost/rec/orders?b=2&a=1"
    assert json.loads(row["request_body"]) == {"item": "tea"}
    assert ("X-Trace", "t1") in headers_from_json(row["request_headers"])
    assert json.loads(row["response_body"]) == reply.get_json()
    assert row["upstream"].startswith("api http://127.0.0.1:")
    assert row["duration_ms"] > 0


def test_capture_redacts_secret_headers_and_json_fields(recorder):
    client, store = recorder()
    client.set_cookie("sid", "1")
    client.post("/rec/login", json={"user": "ann", "password": "pw", "nested": [{"token": "t"}]},
                headers={"Authorization": "Bearer abc", "X-Api-Key": "k"})
    client.get("/rec/cookies")
    login, cookies = stored(store, 2)
    headers = dict(headers_from_json(login["request_headers"]))
    assert headers["Authorization"] == headers["Cookie"] == headers["X-Api-Key"] == "[REDACTED]"
    assert json.loads(login["request_body"]) == {"user": "ann", "password": "[REDACTED]",
                                                 "nested": [{"token": "[REDACTED]"}]}
    assert [v for k, v in headers_from_json(cookies["response_headers"]) if k == "Set-Cookie"] == \
        ["[REDACTED]", "[REDACTED]"]


def test_capture_cuts_bodies_at_the_cap_but_the_client_gets_everything(recorder):
    client, store = recorder(", max_body_bytes: 1000")
    reply = client.get("/rec/big?n=300000")
    assert len(reply.data) == 300000
    (row,) = stored(store, 1)
    assert len(row["response_body"]) == 1000
    assert row["response_body_size"] == 300000


def test_capture_include_exclude_and_methods_choose_what_is_recorded(recorder):
    client, store = recorder(', include: ["/rec/keep/*"], exclude: ["/rec/keep/secret*"], methods: [GET]')
    for path in ("/rec/keep/a", "/rec/other", "/rec/keep/secret-1"):
        assert client.get(path).status_code == 200
    assert client.post("/rec/keep/b").status_code == 200
    time.sleep(0.3)
    assert [(r["method"], r["path"]) for r in stored(store, 1)] == [("GET", "/rec/keep/a")]


def test_a_broken_store_never_fails_the_request(tmp_path, upstream):
    path = write_config(tmp_path, capture_config(upstream.url).replace(
        "sqlite:///captures.db", f"sqlite:///{tmp_path}/missing-dir/captures.db"))
    app = create_app(path)
    failed = metrics.CAPTURE_WRITES.labels("failed")
    before = failed._value.get()
    try:
        reply = app.test_client().get("/rec/x")
        assert reply.status_code == 200
        deadline = time.monotonic() + 5
        while failed._value.get() == before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert failed._value.get() == before + 1
    finally:
        app.extensions["backworks"].runtime.close()


def test_an_unsupported_store_is_a_config_error(tmp_path, upstream):
    path = write_config(tmp_path, capture_config(upstream.url).replace("sqlite:///captures.db",
                                                                       "mysql://db/captures"))
    with pytest.raises(ConfigError) as caught:
        create_app(path)
    assert caught.value.problems == [
        f"{path}:3: capture.store: unsupported store 'mysql://db/captures' (use sqlite:///file.db or "
        f"postgresql://user@host/db; needed by endpoint 'rec')"]


def test_capture_records_into_postgresql(tmp_path, upstream, postgres_url):
    table = f"captures_{uuid.uuid4().hex[:10]}"
    path = write_config(tmp_path, capture_config(upstream.url, f", table: {table}").replace(
        "sqlite:///captures.db", postgres_url))
    app = create_app(path)
    store = CaptureStore.from_config(load_config(path))
    try:
        client = app.test_client()
        client.put("/rec/items/7", data=b"\x00\xffbinary", headers={"Content-Type": "application/octet-stream"})
        client.get("/rec/items/7?x=1")
        rows = stored(store, 2)
        assert [(r["method"], r["path"], r["query"], r["status"]) for r in rows] == \
            [("PUT", "/rec/items/7", "", 200), ("GET", "/rec/items/7", "x=1", 200)]
        assert bytes(rows[0]["request_body"]) == b"\x00\xffbinary"
    finally:
        app.extensions["backworks"].runtime.close()
        store.drop()
        store.close()


def test_capture_under_gunicorn_records_every_request_from_every_worker(tmp_path, upstream, gunicorn):
    path = write_config(tmp_path, capture_config(upstream.url))
    server = gunicorn(path, workers=2)
    with requests.Session() as session:
        for i in range(40):
            assert session.get(f"{server.url}/rec/n/{i}", timeout=10).status_code == 200
    rows = stored(CaptureStore.from_config(load_config(path)), 40, timeout=10)
    assert sorted(int(r["path"].rsplit("/", 1)[1]) for r in rows) == list(range(40))


def test_a_json_body_cut_at_the_cap_still_has_its_secret_fields_redacted(recorder):
    client, store = recorder(", max_body_bytes: 60")
    small = {"user": "ann", "password": "s3cret-value-that-is-long", "pad": "x" * 200}
    client.post("/rec/login", json=small)  # read whole: parsed, redacted, then cut
    large = {"user": "ann", "password": "s3cret-value-that-is-long", "pad": "x" * 400_000}
    client.post("/rec/login", json=large)  # streamed: only its head is kept, redacted by pattern
    first, second = stored(store, 2)
    assert first["request_body"] == b'{"user":"ann","password":"[REDACTED]","pad":"xxxxxxxxxxxxxxxxxxxx'[:60]
    assert second["request_body"] == b'{"user": "ann", "password": "[REDACTED]", "pad": "xxxxxxxxxxx'[:60]
    assert second["request_body_size"] == len(json.dumps(large))
