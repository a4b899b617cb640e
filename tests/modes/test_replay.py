"""Replay mode: answers recorded by capture mode, after the upstream is gone."""
from __future__ import annotations

import time

import pytest

from backworks.app import create_app
from backworks.capture.store import CaptureStore
from backworks.config.load import load_config
from tests.helpers.basics import write_config
from tests.helpers.fake_upstream import FakeUpstream

CAPTURE = """
server: {{watch: false, access_log: false}}
upstreams:
  api: {{targets: [{{url: "{url}"}}]}}
endpoints:
  users:
    path: /users/{{rest:path}}
    mode: capture
    capture: {{upstream: api}}
"""

REPLAY = """
server: {{watch: false, access_log: false}}
endpoints:
  users:
    path: /users/{{rest:path}}
    mode: replay
    replay: {replay}
"""


@pytest.fixture
def recorded(tmp_path):
    """Record a few exchanges through a real upstream, then stop it; return the config folder."""
    upstream = FakeUpstream("live")
    path = write_config(tmp_path, CAPTURE.format(url=upstream.url), name="capture.yaml")
    app = create_app(path)
    client = app.test_client()
    client.get("/users/1?b=2&a=1")
    client.get("/users/2")
    client.post("/users/new", json={"name": "ann"})
    client.post("/users/new", json={"name": "bob"})
    client.get("/users/binary")
    store = CaptureStore.from_config(load_config(path))
    deadline = time.monotonic() + 5
    while len(store.rows()) < 5 and time.monotonic() < deadline:
        time.sleep(0.05)
    app.extensions["backworks"].runtime.close()
    upstream.stop()
    return tmp_path


@pytest.fixture
def replay(recorded):
    apps = []

    def make(block: str = "{}"):
        app = create_app(write_config(recorded, REPLAY.format(replay=block), name="replay.yaml"))
        apps.append(app)
        return app.test_client()

    yield make
    for app in apps:
        app.extensions["backworks"].runtime.close()


def test_replay_answers_what_was_recorded_with_the_query_in_any_order(replay):
    reply = replay().get("/users/1?a=1&b=2")
    assert reply.status_code == 200
    assert reply.get_json()["path"] == "/users/1"
    assert reply.get_json()["upstream"] == "live"
    assert reply.headers["X-Backworks-Replay"].isdigit()


def test_replay_matches_the_body(replay):
    client = replay()
    assert client.post("/users/new", json={"name": "bob"}).get_json()["body_size"] == len(b'{"name": "bob"}')
    reply = client.post("/users/new", json={"name": "cid"})
    assert reply.status_code == 404


def test_replay_serves_binary_bodies_byte_for_byte(replay):
    assert replay().get("/users/binary").data == bytes(range(256)) * 4


def test_unmatched_request_gets_a_404_saying_what_was_looked_for(replay):
    reply = replay().get("/users/3?x=1")
    assert reply.status_code == 404
    assert reply.get_json() == {"error": {
        "code": "no_recorded_exchange",
        "message": "no recorded exchange matches GET /users/3?x=1 (matching on method, path, query, body)",
        "details": {"method": "GET", "path": "/users/3", "query": "x=1",
                    "body_sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}}}


def test_replay_can_ignore_query_and_body(replay):
    client = replay("{match: [method, path]}")
    assert client.get("/users/1?other=yes").status_code == 200
    assert client.post("/users/new", data=b"anything").get_json()["body_size"] == len(b'{"name": "bob"}')


def test_replay_newest_recording_wins(replay):
    reply = replay("{match: [method, path]}").post("/users/new")
    assert "bob" in bytes.fromhex(reply.get_json()["body_hex"]).decode()


def test_replay_can_be_limited_to_one_recording_endpoint(replay):
    reply = replay("{endpoint: someone_else}").get("/users/2")
    assert reply.status_code == 404
