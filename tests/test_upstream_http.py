"""Issue 15, hostile upstreams: a 502 or 504 JSON answer, never a smuggled header or a hung request."""
from __future__ import annotations

import http.client
import re
import socket
import threading
import time

import pytest
import requests
from urllib3.exceptions import ProtocolError

from backworks.app import create_app
from tests.helpers.basics import free_port, write_config
from tests.helpers.fake_upstream import FakeUpstream, listening_socket

pytestmark = pytest.mark.timeout(120, method="thread")


class RawUpstream:
    """A raw TCP server that answers every request with fixed bytes, at once or dripped a byte at a time."""

    def __init__(self, head: bytes, body: bytes = b"", drip_s: float = 0.0):
        self.head = head
        self.body = body
        self.drip_s = drip_s
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.requests = 0
        self.sock = listening_socket(self.port)
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.recv(65536)
                self.requests += 1
                conn.sendall(self.head)
                if not self.drip_s:
                    conn.sendall(self.body)
                    time.sleep(0.5)  # let the proxy read before the close
                    return
                for byte in self.body:
                    conn.sendall(bytes([byte]))
                    time.sleep(self.drip_s)
            except OSError:
                return  # the proxy cut the connection: what the deadline is for

    def stop(self) -> None:
        """Stop accepting."""
        self.sock.close()


@pytest.fixture
def raw_upstream():
    """Factory: raw_upstream(head, body=b"", drip_s=0) -> a running RawUpstream, stopped after the test."""
    started = []

    def start(head: bytes, body: bytes = b"", drip_s: float = 0.0) -> RawUpstream:
        server = RawUpstream(head, body, drip_s)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def config_text(url: str, upstream_extra: str = "", proxy_extra: str = "") -> str:
    return f"""
server: {{watch: false, access_log: false}}
upstreams:
  api: {{targets: [{{url: "{url}"}}], read_timeout_ms: 5000, retries: 0 {upstream_extra}}}
endpoints:
  pub:
    path: /pub/{{rest:path}}
    mode: proxy
    proxy: {{upstream: api, strip_prefix: /pub, add_prefix: /v2/public {proxy_extra}}}
"""


@pytest.fixture
def make_client(tmp_path):
    """Factory: make_client(config text) -> a test client, its runtime closed after the test."""
    apps = []

    def make(text: str):
        app = create_app(write_config(tmp_path, text))
        apps.append(app)
        return app.test_client()

    yield make
    for app in apps:
        app.extensions["backworks"].runtime.close()


def invalid_message(up: RawUpstream, reason: str) -> str:
    return f"upstream 'api' ({up.url}) sent an invalid response: {reason}"


OK_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"


def test_upstream_header_with_bare_cr_is_refused_with_502_not_split_into_two(raw_upstream, make_client):
    up = raw_upstream(OK_HEAD + b"X-A: a\rInjected: yes\r\nContent-Length: 2\r\n\r\n", b"ok")
    reply = make_client(config_text(up.url)).get("/pub/x")
    assert reply.status_code == 502
    assert "Injected" not in reply.headers
    assert reply.json["error"]["code"] == "upstream_invalid_response"
    assert reply.json["error"]["message"] == invalid_message(up, r"malformed header line 'X-A: a\rInjected: yes'")


def test_upstream_header_with_nul_byte_is_refused_with_502(raw_upstream, make_client):
    up = raw_upstream(OK_HEAD + b"X-A: a\x00b\r\nContent-Length: 2\r\n\r\n", b"ok")
    reply = make_client(config_text(up.url)).get("/pub/x")
    assert reply.status_code == 502
    assert reply.json["error"]["message"] == invalid_message(up, r"malformed header line 'X-A: a\x00b'")


@pytest.mark.parametrize("line, shown", [
    (b"Bad Name: v", "Bad Name: v"),                 # a space in the name
    (b"X-A : v", "X-A : v"),                          # a space before the colon
    (b" folded", " folded"),                          # obsolete line folding
    (b"X-\xff: v", r"X-\xff: v"),                     # a name outside token characters
])
def test_upstream_header_outside_field_syntax_is_refused(raw_upstream, make_client, line, shown):
    up = raw_upstream(OK_HEAD + line + b"\r\nContent-Length: 2\r\n\r\n", b"ok")
    reply = make_client(config_text(up.url)).get("/pub/x")
    assert reply.status_code == 502
    assert reply.json["error"]["message"] == invalid_message(up, f"malformed header line '{shown}'")


def test_malformed_credential_header_is_named_without_its_value(raw_upstream, make_client):
    up = raw_upstream(OK_HEAD + b"Set-Cookie: session=s3cr3t-value\x00\r\nContent-Length: 2\r\n\r\n", b"ok")
    reply = make_client(config_text(up.url)).get("/pub/x")
    assert reply.status_code == 502
    assert reply.json["error"]["message"] == invalid_message(up, "malformed header line 'Set-Cookie: ***'")


@pytest.mark.parametrize("framing, reason", [
    (b"Transfer-Encoding: chunked\r\nContent-Length: 3\r\n",
     "both Transfer-Encoding and Content-Length (a request smuggling risk)"),
    (b"Content-Length: 2\r\nContent-Length: 3\r\n", "Content-Length '2, 3' (one decimal number expected)"),
    (b"Content-Length: 2x\r\n", "Content-Length '2x' (one decimal number expected)"),
    (b"Transfer-Encoding: gzip\r\n", "Transfer-Encoding 'gzip' (only chunked is accepted)"),
])
def test_upstream_ambiguous_framing_is_refused(raw_upstream, make_client, framing, reason):
    up = raw_upstream(OK_HEAD + framing + b"\r\n", b"2\r\nok\r\n0\r\n\r\n")
    reply = make_client(config_text(up.url)).get("/pub/x")
    assert reply.status_code == 502
    assert reply.json["error"]["message"] == invalid_message(up, reason)


def test_upstream_valid_headers_with_obs_text_pass_unchanged(raw_upstream, make_client):
    up = raw_upstream(OK_HEAD + b"X-Latin: caf\xe9\r\nX-Empty:\r\nContent-Length: 2\r\n\r\n", b"ok")
    reply = make_client(config_text(up.url)).get("/pub/x")
    assert reply.status_code == 200 and reply.data == b"ok"
    assert reply.headers["X-Latin"] == "caf\xe9"


def test_invalid_upstream_response_is_counted_in_metrics(raw_upstream, make_client):
    up = raw_upstream(OK_HEAD + b"X-A: a\rB: c\r\nContent-Length: 2\r\n\r\n", b"ok")
    client = make_client(config_text(up.url))
    assert [client.get("/pub/x").status_code for _ in range(2)] == [502, 502]
    text = client.get("/metrics").get_data(as_text=True)
    line = f'backworks_upstream_requests_total{{outcome="invalid_response",target="{up.url}",upstream="api"}}'
    assert re.search(re.escape(line) + r" 2\.0$", text, re.MULTILINE), text


def test_slow_drip_upstream_is_cut_at_total_timeout_with_504(raw_upstream, make_client):
    up = raw_upstream(OK_HEAD + b"Content-Length: 100\r\n\r\n", b"x" * 100, drip_s=1.0)
    client = make_client(config_text(up.url, ", total_timeout_ms: 1500"))
    reply = client.get("/pub/x")
    assert reply.status_code == 504
    assert reply.json["error"] == {
        "code": "upstream_timeout", "request_id": reply.headers["X-Request-Id"],
        "message": f"upstream 'api' ({up.url}) did not finish its response within 1500 ms (total_timeout_ms)"}


def test_slow_drip_of_headers_is_cut_at_total_timeout_with_504(raw_upstream, make_client):
    up = raw_upstream(b"", OK_HEAD + b"Content-Length: 2\r\n\r\nok", drip_s=0.5)
    reply = make_client(config_text(up.url, ", total_timeout_ms: 1500")).get("/pub/x")
    assert reply.status_code == 504
    assert reply.json["error"]["code"] == "upstream_timeout"


def test_slow_drip_after_the_status_was_sent_is_cut_off_at_total_timeout(raw_upstream, make_client, caplog):
    # once a first byte went to the client the status is out: the deadline can only cut the body short
    up = raw_upstream(OK_HEAD + b"Content-Length: 1000000\r\n\r\n", b"x" * 100, drip_s=1.0)
    reply = make_client(config_text(up.url, ", total_timeout_ms: 1500")).get("/pub/x")
    assert reply.status_code == 200
    with pytest.raises(ProtocolError):
        reply.get_data()
    assert f"upstream api ({up.url}) failed while streaming the response: total_timeout_ms passed; the response " \
           "is cut off" in caplog.text


def test_total_timeout_ms_null_turns_the_deadline_off(tmp_path):
    from backworks.config.load import load_config

    config = load_config(write_config(tmp_path, config_text("http://127.0.0.1:1", ", total_timeout_ms: null")))
    assert config.data["upstreams"]["api"]["total_timeout_ms"] is None
    config = load_config(write_config(tmp_path, config_text("http://127.0.0.1:1")))
    assert config.data["upstreams"]["api"]["total_timeout_ms"] == 60000


@pytest.fixture
def echo_upstream():
    up = FakeUpstream("echo")
    yield up
    up.stop()


@pytest.mark.parametrize("path", [
    "/pub/x/../../private/secret",
    "/pub/x/%2e%2e/%2E%2E/private/secret",
    "/pub/x/..%2F..%2Fprivate/secret",
    "/pub/x/..%5C..%5Cprivate",
    "/pub/..;/private/secret",
    "/pub/./x",
    "/pub/x/..",
])
def test_dot_segments_are_refused_before_forwarding(echo_upstream, make_client, path):
    client = make_client(config_text(echo_upstream.url))
    reply = client.get(path)
    assert reply.status_code == 400
    assert reply.json["error"] == {
        "code": "invalid_path",
        "message": "the request path has a '.' or '..' segment; it is not forwarded (the upstream would "
                   "resolve it, possibly outside the proxied prefix)"}
    assert echo_upstream.seen == []


def test_paths_with_dots_inside_segments_and_encoded_slashes_still_forward(echo_upstream, make_client):
    client = make_client(config_text(echo_upstream.url))
    for path in ("/pub/file.v2.json", "/pub/...x", "/pub/group%2Fproject"):
        assert client.get(path).status_code == 200
    assert [seen["raw_uri"] for seen in echo_upstream.seen] == [
        "/v2/public/file.v2.json", "/v2/public/...x", "/v2/public/group%2Fproject"]


def raw_get(port: int, target: str) -> tuple[int, dict, bytes]:
    """GET a raw request target (http.client sends it as given, dot segments included)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", target)
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


@pytest.mark.parametrize("worker_class", ["sync", "gthread"])
def test_hostile_upstreams_under_gunicorn(tmp_path, gunicorn, raw_upstream, echo_upstream, worker_class):
    bad = raw_upstream(OK_HEAD + b"X-A: a\rInjected: yes\r\nX-B: a\x00b\r\nContent-Length: 2\r\n\r\n", b"ok")
    drip = raw_upstream(OK_HEAD + b"Content-Length: 100\r\n\r\n", b"x" * 100, drip_s=1.0)
    path = write_config(tmp_path, f"""
server: {{watch: false}}
upstreams:
  bad: {{targets: [{{url: "{bad.url}"}}], retries: 0}}
  drip: {{targets: [{{url: "{drip.url}"}}], read_timeout_ms: 5000, total_timeout_ms: 2000}}
  echo: {{targets: [{{url: "{echo_upstream.url}"}}]}}
endpoints:
  bad: {{path: "/bad", mode: proxy, proxy: {{upstream: bad}}}}
  drip: {{path: "/drip", mode: proxy, proxy: {{upstream: drip}}}}
  pub:
    {{path: "/pub/{{rest:path}}", mode: proxy, proxy: {{upstream: echo, strip_prefix: /pub, add_prefix: /v2/public}}}}
""")
    server = gunicorn(path, workers=1, worker_class=worker_class)
    status, headers, body = raw_get(server.port, "/bad")
    assert status == 502 and "Injected" not in headers and b"upstream_invalid_response" in body
    resp = requests.get(server.url + "/drip", timeout=30)
    assert resp.status_code == 504
    assert resp.json()["error"]["message"].endswith("did not finish its response within 2000 ms (total_timeout_ms)")
    status, _, body = raw_get(server.port, "/pub/x/../../private/secret")
    assert status == 400 and b"invalid_path" in body
    assert echo_upstream.seen == []
