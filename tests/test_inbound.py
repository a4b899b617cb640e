"""Issue 15, hostile input: a JSON 4xx, never a 500, a traceback, a forged log line or a stuck worker."""
from __future__ import annotations

import ast
import io
import logging
import os
import re
import socket

import pytest

from backworks import inbound
from backworks.app import create_app
from backworks.config.load import load_config
from backworks.database.records import Field, Invalid
from backworks.errors import ConfigError
from tests.helpers.basics import ROOT, write_config

pytestmark = pytest.mark.timeout(120, method="thread")

CONFIG = """
server: {watch: false, max_body_bytes: 1000000}
database: {url: "sqlite:///{db}"}
endpoints:
  echo:
    path: /echo
    methods: [POST]
    mock:
      json: {ok: true}
      responses:
        - when: {json: {a: 1}}
          json: {one: true}
  things:
    path: /things
    mode: database
    database:
      table: things
      fields:
        name: {type: string}
        at: {type: datetime}
"""
JSON = {"Content-Type": "application/json"}


@pytest.fixture
def app(tmp_path):
    app = create_app(write_config(tmp_path, CONFIG.replace("{db}", str(tmp_path / "t.db"))))
    yield app
    app.extensions["backworks"].runtime.close()


@pytest.fixture
def client(app):
    return app.test_client()


def error_of(reply) -> tuple[int, str, str]:
    error = reply.json["error"]
    return reply.status_code, error["code"], error["message"]


def no_traceback(caplog) -> bool:
    return "Traceback" not in caplog.text and not any(r.exc_info for r in caplog.records)


# -- request bodies: every decode failure is a 400 -------------------------------------------------------

def test_deeply_nested_json_gets_400(client, caplog):
    reply = client.post("/echo", data=b"[" * 100000 + b"]" * 100000, headers=JSON)
    assert error_of(reply) == (400, "invalid_json", "request body is JSON nested too deeply")
    assert no_traceback(caplog)


def test_5000_digit_integer_in_json_gets_400(client, caplog):
    reply = client.post("/echo", data=b"1" * 5000, headers=JSON)
    assert error_of(reply) == (400, "invalid_json", "request body has a number over 4300 digits long")
    assert no_traceback(caplog)


def test_lone_surrogate_in_json_gets_400(client, caplog):
    reply = client.post("/echo", data=b'{"a": "\\ud800"}', headers=JSON)
    assert error_of(reply) == (400, "invalid_json", "request body is not valid JSON: a \\u escape encodes a "
                                                    "lone surrogate (not a Unicode character)")
    assert no_traceback(caplog)


def test_surrogate_pair_in_json_is_a_character_and_passes(client):
    reply = client.post("/things", data=b'{"name": "\\ud83d\\ude00"}', headers=JSON)
    assert reply.status_code == 201 and reply.json["name"] == "\U0001F600"


def test_broken_body_stream_gets_400(client, caplog):
    class Broken(io.RawIOBase):
        def readinto(self, buffer):
            raise OSError("chunk size 'zz' is not hexadecimal")  # what a server's chunked reader raises

    reply = client.post("/echo", headers=JSON, environ_overrides={"wsgi.input": Broken(),
                                                                  "CONTENT_LENGTH": "", "wsgi.input_terminated": True,
                                                                  "HTTP_TRANSFER_ENCODING": "chunked"})
    assert error_of(reply) == (400, "incomplete_body", "the request body could not be read to its end (OSError)")
    assert no_traceback(caplog)


# -- hosts and database values --------------------------------------------------------------------------

LONG_HOST = "a" * 64 + ".example"


def test_host_label_over_63_characters_gets_400_on_404(client, caplog):
    reply = client.get("/nothing-here", headers={"Host": LONG_HOST})
    assert error_of(reply) == (400, "bad_host", "the Host header is not a valid host name")
    assert no_traceback(caplog)


def test_host_label_over_63_characters_gets_400_on_405(client, caplog):
    reply = client.delete("/echo", headers={"Host": LONG_HOST})
    assert error_of(reply) == (400, "bad_host", "the Host header is not a valid host name")
    assert no_traceback(caplog)


def test_host_label_over_63_characters_gets_json_400_on_flask_routes(client, caplog):
    reply = client.get("/readyz/nothing", headers={"Host": LONG_HOST})
    assert reply.status_code == 400 and reply.json["error"]["code"] == "bad_request"
    assert no_traceback(caplog)


def test_datetime_with_offset_near_year_one_gets_400_on_write(client, caplog):
    reply = client.post("/things", data=b'{"at": "0001-01-01T00:00:00+01:00"}', headers=JSON)
    assert error_of(reply) == (400, "validation_failed", "invalid things record: at: is out of range once "
                                                         "converted to UTC, got '0001-01-01T00:00:00+01:00'")
    assert no_traceback(caplog)


def test_datetime_with_offset_near_year_one_gets_400_as_filter(client, caplog):
    reply = client.get("/things?at=0001-01-01T00:00:00%2B01:00")
    assert reply.status_code == 400 and reply.json["error"]["code"] == "invalid_query"
    assert "is out of range once converted to UTC" in reply.json["error"]["message"]
    assert no_traceback(caplog)


def test_lone_surrogate_in_database_string_is_invalid():
    # reaches a field only from a plugin's request dict: the JSON parser refuses it from a client
    with pytest.raises(Invalid, match=r"^must be valid Unicode text \(it contains a lone surrogate\)$"):
        Field("name", {"type": "string"}).check("a\ud800")
    with pytest.raises(Invalid, match="lone surrogate"):
        Field("name", {"type": "string"}).parse("\udfff")


# -- the last resort: no other exception class becomes a 500 for bad input -----------------------------

@pytest.mark.parametrize("exc, expected", [
    (UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed"),
     (400, "invalid_encoding", "the request contains text that is not valid Unicode")),
    (RecursionError("maximum recursion depth exceeded"),
     (400, "too_deeply_nested", "the request contains data nested too deeply")),
    (OverflowError("date value out of range"),
     (400, "value_out_of_range", "the request contains a value out of range")),
    (ValueError("Exceeds the limit (4300 digits) for integer string conversion"),
     (400, "value_out_of_range", "the request contains a number with too many digits")),
])
def test_input_decode_errors_anywhere_get_400_without_traceback(app, client, monkeypatch, caplog, exc, expected):
    def fail(request):
        raise exc

    monkeypatch.setattr(app.extensions["backworks"].runtime.endpoints["things"].mode, "handle", fail)
    reply = client.get("/things")
    assert error_of(reply) == expected
    assert no_traceback(caplog)


def test_a_server_bug_is_still_a_500_with_its_traceback_logged(app, client, monkeypatch, caplog):
    def fail(request):
        raise KeyError("bug")

    monkeypatch.setattr(app.extensions["backworks"].runtime.endpoints["things"].mode, "handle", fail)
    reply = client.get("/things")
    assert reply.status_code == 500 and reply.json["error"]["code"] == "internal_error"
    assert any(r.exc_info for r in caplog.records)


# -- 413 at once on a declared Content-Length ----------------------------------------------------------

def test_declared_content_length_over_limit_gets_413_without_reading_the_body(client):
    class Unread(io.RawIOBase):
        reads = 0

        def readinto(self, buffer):
            Unread.reads += 1
            return 0

    reply = client.post("/echo", headers=JSON, environ_overrides={"wsgi.input": Unread(), "CONTENT_LENGTH": "5000000",
                                                                  "REMOTE_ADDR": "203.0.113.9"})
    assert error_of(reply) == (413, "payload_too_large",
                               "request body is 5000000 bytes; the limit is 1000000 (server.max_body_bytes)")
    assert Unread.reads == 0


def test_413_to_a_trusted_proxy_drains_the_body_after_the_answer(client):
    # nginx (a trusted peer) sends a buffered body at full speed: read it after answering, so nginx sees
    # the 413 rather than a reset connection
    events = []

    class Sent(io.RawIOBase):
        left = 3 * 65536

        def readinto(self, buffer):
            events.append("read")
            size = min(len(buffer), Sent.left)
            Sent.left -= size
            return size

    reply = client.post("/echo", headers=JSON, buffered=False,
                        environ_overrides={"wsgi.input": Sent(), "CONTENT_LENGTH": "5000000"})
    events.append("answered")
    assert reply.status_code == 413 and b"payload_too_large" in reply.get_data()
    reply.close()
    assert events[0] == "answered" and events.count("read") >= 3 and Sent.left == 0


def send_head_only(port: int, head: bytes) -> bytes:
    """Send a request head (no body), read until the server closes; one waiting for the body times this out."""
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        sock.sendall(head)
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return data
            data += chunk


def send_raw(port: int, raw: bytes, half_close: bool = False) -> bytes:
    """Send raw bytes (optionally closing our sending side) and read the whole answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        sock.sendall(raw)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        data = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except OSError:
                break
            if not chunk:
                break
            data += chunk
            if b"\r\n\r\n" in data and b'"}}' in data:
                break
        return data


@pytest.mark.parametrize("worker_class", ["sync", "gthread"])
def test_hostile_bodies_under_gunicorn(tmp_path, gunicorn, worker_class):
    # a direct client (not a trusted proxy): its refused body is never read, the connection just closes
    text = CONFIG.replace("{db}", str(tmp_path / "t.db")).replace("max_body_bytes: 1000000", "max_body_bytes: "
                                                                  "1000000, trusted_proxies: []")
    server = gunicorn(write_config(tmp_path, text), workers=1, worker_class=worker_class)
    answer = send_head_only(server.port, b"POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Type: "
                                         b"application/json\r\nContent-Length: 64000000\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 413 ") and answer.endswith(b"(server.max_body_bytes)\"}}")
    bad_chunk = send_raw(server.port, b"POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json"
                                      b"\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                                      b"zz\r\n{}\r\n0\r\n\r\n")
    assert bad_chunk.startswith(b"HTTP/1.1 400 "), bad_chunk
    assert b'"code":"incomplete_body"' in bad_chunk
    cut = send_raw(server.port, b"POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                                b"Transfer-Encoding: chunked\r\n\r\n10\r\n{\"a\": 1", half_close=True)
    assert cut.startswith(b"HTTP/1.1 400 "), cut
    assert b'"code":"incomplete_body"' in cut
    long_host = send_raw(server.port, b"GET /nothing HTTP/1.1\r\nHost: " + LONG_HOST.encode() +
                         b"\r\nConnection: close\r\n\r\n")
    assert long_host.startswith(b"HTTP/1.1 400 ") and b'"code":"bad_host"' in long_host
    assert "Traceback" not in server.output()


# -- logs ------------------------------------------------------------------------------------------------

def access_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "backworks.access"]


def test_newline_in_path_is_escaped_in_the_access_log(client, caplog):
    caplog.set_level(logging.INFO, logger="backworks.access")
    client.get("/x%0aGET /forged 200 0.1ms endpoint=admin")
    (line,) = access_lines(caplog)
    assert "\n" not in line
    assert line.startswith("GET /x\\x0aGET /forged 200 0.1ms endpoint=admin 404 ")


def test_control_characters_in_method_are_escaped_in_the_access_log(client, caplog):
    caplog.set_level(logging.INFO, logger="backworks.access")
    client.open("/echo", method="GET\rX")
    (line,) = access_lines(caplog)
    assert line.startswith("GET\\x0dX /echo 405 ")


@pytest.mark.parametrize("supplied", ["abc\nGET /forged", "has space", "x" * 129, "caf\u00e9", ""])
def test_insane_request_id_is_replaced_by_a_generated_one(client, caplog, supplied):
    caplog.set_level(logging.INFO, logger="backworks.access")
    reply = client.post("/echo", environ_overrides={"HTTP_X_REQUEST_ID": supplied})
    assert re.fullmatch(r"[0-9a-f]{32}", reply.headers["X-Request-Id"])
    (line,) = access_lines(caplog)
    assert line.endswith(f"id={reply.headers['X-Request-Id']}")


def test_sane_request_id_is_kept(client):
    supplied = "req-7f3a:2024/05=ok@edge." + "x" * 103
    reply = client.post("/echo", headers={"X-Request-Id": supplied})
    assert reply.headers["X-Request-Id"] == supplied


def test_log_safe_escapes_every_control_character():
    from backworks.logtext import log_safe

    assert log_safe("a\r\nb\x00c\x1b[31m\x7f\u2028d") == "a\\x0d\\x0ab\\x00c\\x1b[31m\\x7f\\u2028d"
    assert log_safe("plain /path?q=é") == "plain /path?q=é"


# -- config: alias bombs, size, environment overrides ---------------------------------------------------

def alias_bomb(levels: int) -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, levels + 1)]
    return "\n".join(lines) + "\nendpoints: {a: {path: /a}}\n"


def test_yaml_alias_bomb_is_refused_with_file_line_and_hint(tmp_path):
    path = write_config(tmp_path, alias_bomb(9))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.problems == [f"{path}:5: YAML aliases expand the config by 4412961486 values; the limit "
                                   f"is 100000 (an alias bomb?) (write the repeated blocks out, or nest aliases less)"]


def test_yaml_recursive_alias_is_refused(tmp_path):
    path = write_config(tmp_path, "loop: &a [*a]\nendpoints: {a: {path: /a}}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.problems == [f"{path}:1: a YAML alias refers to a block that contains it (a recursive "
                                   f"structure); the config must be a tree"]


def test_yaml_aliases_within_limits_still_work(tmp_path):
    path = write_config(tmp_path, "upstreams:\n  a: &u {targets: [{url: 'http://127.0.0.1:1'}], read_timeout_ms: 100}"
                                  "\n  b: *u\n")
    assert load_config(path).data["upstreams"]["b"]["read_timeout_ms"] == 100


def test_config_file_over_4_mib_is_refused_before_parsing(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text("name: x\n" + "#" * (4 * 1024 * 1024) + "\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.problems == [f"{path}:1: the config file is {path.stat().st_size} bytes; the limit is "
                                   f"4194304 bytes (keep large mock bodies in files (mock.file) instead of inline)"]


def test_env_override_cannot_inject_an_endpoint(tmp_path, monkeypatch):
    monkeypatch.setenv("BACKWORKS__ENDPOINTS__EVIL__PATH", "/evil")
    monkeypatch.setenv("BACKWORKS__ENDPOINTS__EVIL__MOCK__BODY", "pwned")
    path = write_config(tmp_path, "endpoints: {a: {path: /a}}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.problems == [
        f"{path}: BACKWORKS__ENDPOINTS__EVIL__MOCK__BODY: there is no endpoints.evil in the config file; "
        f"environment variables can only change settings it already has (allowed: a)",
        f"{path}: BACKWORKS__ENDPOINTS__EVIL__PATH: there is no endpoints.evil in the config file; "
        f"environment variables can only change settings it already has (allowed: a)"]


def test_env_override_cannot_set_a_mapping_or_a_list(tmp_path, monkeypatch):
    monkeypatch.setenv("BACKWORKS__ENDPOINTS", "{evil: {path: /evil}}")
    monkeypatch.setenv("BACKWORKS__SERVER__TRUSTED_PROXIES", "0.0.0.0/0")
    path = write_config(tmp_path, "endpoints: {a: {path: /a}}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    only = "environment variables can only set a single value (a number, a string, true or false)"
    assert info.value.problems == [f"{path}: BACKWORKS__ENDPOINTS: endpoints is not a single setting; {only}",
                                   f"{path}: BACKWORKS__SERVER__TRUSTED_PROXIES: server.trusted_proxies is not "
                                   f"a single setting; {only}"]


def test_env_override_still_sets_existing_scalars_in_list_form_endpoints(tmp_path, monkeypatch):
    monkeypatch.setenv("BACKWORKS__ENDPOINTS__HELLO__MOCK__STATUS", "201")
    monkeypatch.setenv("BACKWORKS__ADMIN__TOKEN", "t0k")
    monkeypatch.setenv("BACKWORKS__ENDPOINTS__USERS__DESCRIPTION", "named from its path")
    path = write_config(tmp_path, "endpoints:\n  - {name: hello, path: /hello, mock: {status: 200}}\n"
                                  "  - {path: /users}\n")
    config = load_config(path)
    assert config.data["endpoints"]["hello"]["mock"]["status"] == 201
    assert config.data["endpoints"]["users"]["description"] == "named from its path"
    assert config.data["admin"]["token"] == "t0k"


# -- every non-nginx way to run Backworks binds loopback ------------------------------------------------

def test_backworks_serve_binds_loopback_by_default():
    from backworks.cli.main import serve

    assert next(p for p in serve.params if p.name == "host").default == "127.0.0.1"


def test_run_script_binds_loopback_by_default():
    script = (ROOT / "scripts/run.sh").read_text()
    defaults = re.findall(r"\$\{BIND:-([^}]*)\}", script)
    assert defaults and all(d.startswith("127.0.0.1:") for d in defaults), defaults
    assert re.search(r'--bind "(\$BIND|\$\{BIND:-127\.0\.0\.1:\d+\})"', script)


@pytest.mark.parametrize("conf", ["gunicorn.conf.py"])
def test_gunicorn_config_files_bind_loopback_by_default(conf):
    path = ROOT / conf
    if not path.exists():
        pytest.skip(f"{conf} is not in this tree")
    binds = [node for node in ast.walk(ast.parse(path.read_text()))
             if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "bind" for t in node.targets)]
    assert binds, f"{conf} sets no bind"
    for node in binds:
        default = node.value.args[1].value  # os.environ.get("BACKWORKS_BIND", default)
        assert default.startswith(("127.0.0.1:", "[::1]:", "unix:")), default


def test_deployment_docs_say_why_nginx_is_required():
    page = (ROOT / "docs" / "deployment.md").read_text()
    assert "nginx in front is required, not optional" in page and "slowloris" in page


# -- admin: no cross-origin changes, no foreign Host ----------------------------------------------------

@pytest.fixture
def dev_client(tmp_path):
    app = create_app(write_config(tmp_path, "server: {watch: false}\nendpoints: {a: {path: /a}}\n"),
                     options={"dev_server": True})
    yield app.test_client()
    app.extensions["backworks"].runtime.close()


LOOPBACK = {"REMOTE_ADDR": "127.0.0.1"}
RELOAD = "/_backworks/api/reload"


def test_cross_origin_post_to_reload_is_refused_for_a_tokenless_loopback_client(dev_client):
    reply = dev_client.post(RELOAD, headers={"Origin": "http://evil.example"}, environ_base=LOOPBACK)
    assert error_of(reply) == (403, "cross_origin", "admin changes must come from the dashboard's own origin "
                                                    "(this request came from another site)")


@pytest.mark.parametrize("site", ["cross-site", "same-site"])
def test_post_with_sec_fetch_site_from_another_site_is_refused(dev_client, site):
    reply = dev_client.post(RELOAD, headers={"Sec-Fetch-Site": site}, environ_base=LOOPBACK)
    assert reply.status_code == 403 and reply.json["error"]["code"] == "cross_origin"


def test_null_origin_post_is_refused(dev_client):
    reply = dev_client.post(RELOAD, headers={"Origin": "null"}, environ_base=LOOPBACK)
    assert reply.status_code == 403


@pytest.mark.parametrize("headers", [{}, {"Origin": "http://localhost"}, {"Sec-Fetch-Site": "same-origin"},
                                     {"Origin": "http://evil.example", "Sec-Fetch-Site": "same-origin"}])
def test_same_origin_or_non_browser_post_to_reload_is_allowed(dev_client, headers):
    assert dev_client.post(RELOAD, headers=headers, environ_base=LOOPBACK).status_code == 200


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8000", "127.0.0.1.nip.io"])
def test_foreign_host_is_refused_for_a_tokenless_loopback_client(dev_client, host):
    for reply in (dev_client.get("/_backworks/api/status", headers={"Host": host}, environ_base=LOOPBACK),
                  dev_client.post(RELOAD, headers={"Host": host}, environ_base=LOOPBACK)):
        assert error_of(reply) == (403, "foreign_host", "without admin.token the admin API answers only to "
                                                        "loopback host names (localhost, 127.0.0.1, [::1]) in "
                                                        "the Host header")


@pytest.mark.parametrize("host", ["localhost:8000", "127.0.0.1:8000", "[::1]:8000", "app.localhost"])
def test_loopback_hosts_are_accepted_for_a_tokenless_loopback_client(dev_client, host):
    reply = dev_client.get("/_backworks/api/status", headers={"Host": host}, environ_base=LOOPBACK)
    assert reply.status_code == 200


def test_cross_origin_post_is_refused_even_with_the_token(tmp_path):
    app = create_app(write_config(tmp_path, "server: {watch: false}\nadmin: {token: s3cret}\n"
                                            "endpoints: {a: {path: /a}}\n"))
    client = app.test_client()
    auth = {"Authorization": "Bearer s3cret"}
    reply = client.post(RELOAD, headers={**auth, "Origin": "https://evil.example", "Host": "api.example"})
    assert reply.status_code == 403 and reply.json["error"]["code"] == "cross_origin"
    ok = client.post(RELOAD, headers={**auth, "Origin": "https://api.example", "Host": "api.example"})
    assert ok.status_code == 200
    app.extensions["backworks"].runtime.close()


def test_newline_in_a_script_log_line_is_escaped(caplog):
    from backworks.sandbox.logs import ScriptLog

    caplog.set_level(logging.INFO, logger="backworks.plugin")
    ScriptLog("audit.py").info("path %s", "/x\nINFO backworks.access: forged")
    assert [r.getMessage() for r in caplog.records] == ["audit.py: path /x\\x0aINFO backworks.access: forged"]


def test_body_cut_short_before_a_proxy_gets_400(tmp_path, caplog):
    class Short(io.RawIOBase):
        def readinto(self, buffer):
            return 0  # the client went away after the head

    app = create_app(write_config(tmp_path, "server: {watch: false}\nupstreams:\n"
                                            "  api: {targets: [{url: 'http://127.0.0.1:9'}]}\n"
                                            "endpoints: {p: {path: /p, mode: proxy, methods: [POST], "
                                            "proxy: {upstream: api}}}\n"))
    reply = app.test_client().post("/p", environ_overrides={"wsgi.input": Short(), "CONTENT_LENGTH": "10"})
    assert error_of(reply) == (400, "incomplete_body",
                               "the request body could not be read to its end (ClientDisconnected)")
    assert no_traceback(caplog)
    app.extensions["backworks"].runtime.close()


def test_env_override_sets_an_existing_key_of_free_form_plugin_config_only(tmp_path, monkeypatch):
    (tmp_path / "p.py").write_text("def before_request(request):\n    return None\n")
    path = write_config(tmp_path, """
        endpoints:
          hello: {path: /hello, mock: {body: hi}}
        plugins:
          limit: {script: p.py, config: {limit: 120, nested: {depth: 1}}}
    """)
    monkeypatch.setenv("BACKWORKS__PLUGINS__LIMIT__CONFIG__LIMIT", "5")
    monkeypatch.setenv("BACKWORKS__PLUGINS__LIMIT__CONFIG__NESTED__DEPTH", "2")
    assert load_config(path).data["plugins"]["limit"]["config"] == {"limit": 5, "nested": {"depth": 2}}
    monkeypatch.setenv("BACKWORKS__PLUGINS__LIMIT__CONFIG__EXTRA", "x")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.problems == [
        f"{path}: BACKWORKS__PLUGINS__LIMIT__CONFIG__EXTRA: there is no plugins.limit.config.extra in the config "
        "file; environment variables can only change settings it already has"]


# Request ids made at the gateway: random, unique across batches and across a fork.
def test_new_request_ids_are_32_hex_digits_and_unique_across_batches():
    ids = [inbound.new_request_id() for _ in range(3 * inbound.ID_BATCH + 7)]
    assert all(re.fullmatch(r"[0-9a-f]{32}", value) for value in ids)
    assert len(set(ids)) == len(ids)


def test_a_forked_child_hands_out_none_of_its_parents_pending_ids():
    inbound.new_request_id()  # the batch now holds ids this process has not handed out yet
    pending = set(inbound._fresh_ids)
    assert pending
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: write its next ids and leave without running pytest's exit handlers
        os.close(read_end)
        os.write(write_end, "".join(inbound.new_request_id() for _ in range(10)).encode())
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        text = pipe.read().decode()
    os.waitpid(pid, 0)
    child_ids = {text[at:at + 32] for at in range(0, len(text), 32)}
    assert len(child_ids) == 10
    assert not child_ids & pending


def test_a_sane_supplied_id_is_kept_and_an_insane_one_replaced():
    key = "HTTP_X_REQUEST_ID"
    assert inbound.request_id({key: "edge-1:ok"}, key) == "edge-1:ok"
    assert re.fullmatch(r"[0-9a-f]{32}", inbound.request_id({key: "two words"}, key))
    assert re.fullmatch(r"[0-9a-f]{32}", inbound.request_id({}, key))
