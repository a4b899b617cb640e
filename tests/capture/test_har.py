"""HAR 1.2 export and import, through the `backworks capture` commands."""
from __future__ import annotations

import base64
import json

from click.testing import CliRunner

from backworks.app import create_app
from backworks.cli.main import cli
from tests.helpers.basics import write_config
from tests.helpers.recorded_exchanges import record

EXCHANGES = [
    ("GET", "/api/users/1?b=2&a=1", {}),
    ("POST", "/api/users", {"json": {"name": "ann"}}),
    ("PUT", "/api/blob", {"data": b"\x00\xff\xfe", "content_type": "application/octet-stream"}),
    ("GET", "/api/binary", {}),
]


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_export_then_import_round_trips_every_exchange(tmp_path):
    source = record(tmp_path, EXCHANGES)
    first = tmp_path / "first.har"
    result = run("capture", "export", "--har", first, source)
    assert result.exit_code == 0, result.output
    assert result.output == f"exported 4 exchange(s) to {first}\n"
    har = json.loads(first.read_text())
    assert har["log"]["version"] == "1.2"
    entries = har["log"]["entries"]
    assert [(e["request"]["method"], e["request"]["url"]) for e in entries] == [
        ("GET", "http://localhost/api/users/1?b=2&a=1"), ("POST", "http://localhost/api/users"),
        ("PUT", "http://localhost/api/blob"), ("GET", "http://localhost/api/binary")]
    assert entries[0]["request"]["queryString"] == [{"name": "b", "value": "2"}, {"name": "a", "value": "1"}]
    assert json.loads(entries[1]["request"]["postData"]["text"]) == {"name": "ann"}
    assert entries[2]["request"]["postData"]["encoding"] == "base64"
    assert base64.b64decode(entries[3]["response"]["content"]["text"]) == bytes(range(256)) * 4
    assert entries[3]["response"]["statusText"] == "OK"

    target = write_config(tmp_path, "capture: {store: \"sqlite:///other.db\"}\n", name="other.yaml")
    result = run("capture", "import", first, target)
    assert result.output == f"imported 4 exchange(s) from {first}\n"
    second = tmp_path / "second.har"
    run("capture", "export", "--har", second, target)
    assert json.loads(second.read_text()) == har


def test_an_imported_har_is_replayed(tmp_path):
    har = {"log": {"version": "1.2", "creator": {"name": "browser", "version": "1"}, "entries": [{
        "startedDateTime": "2024-05-01T10:00:00.000Z", "time": 12,
        "request": {"method": "GET", "url": "https://shop.test/api/items?page=2", "httpVersion": "HTTP/1.1",
                    "headers": [], "queryString": [], "cookies": [], "headersSize": -1, "bodySize": 0},
        "response": {"status": 200, "statusText": "OK", "httpVersion": "HTTP/1.1", "cookies": [],
                     "headers": [{"name": "Content-Type", "value": "application/json"}],
                     "content": {"size": 9, "mimeType": "application/json", "text": "[1, 2, 3]"},
                     "redirectURL": "", "headersSize": -1, "bodySize": 9},
        "cache": {}, "timings": {"send": 0, "wait": 12, "receive": 0}}]}}
    (tmp_path / "in.har").write_text(json.dumps(har))
    config = write_config(tmp_path, """
server: {watch: false}
endpoints:
  items: {path: /api/items, mode: replay}
""")
    assert run("capture", "import", tmp_path / "in.har", config).exit_code == 0
    app = create_app(config)
    try:
        reply = app.test_client().get("/api/items?page=2")
        assert reply.status_code == 200
        assert reply.get_json() == [1, 2, 3]
    finally:
        app.extensions["backworks"].runtime.close()


def test_import_refuses_a_file_that_is_not_har(tmp_path):
    (tmp_path / "bad.har").write_text(json.dumps({"entries": []}))
    config = write_config(tmp_path, "name: x\n")
    result = CliRunner().invoke(cli, ["capture", "import", str(tmp_path / "bad.har"), str(config)])
    assert result.exit_code == 1
    assert result.output == (f"{tmp_path / 'bad.har'}: not a HAR file: the top level must be an object with "
                             f"a 'log' object\n")


def test_import_names_the_broken_entry(tmp_path):
    entry = {"request": {"method": "GET", "url": "http://x/a"}, "response": {"status": 200}}
    (tmp_path / "bad.har").write_text(json.dumps({"log": {"entries": [entry, {"request": entry["request"]}]}}))
    config = write_config(tmp_path, "name: x\n")
    result = CliRunner().invoke(cli, ["capture", "import", str(tmp_path / "bad.har"), str(config)])
    assert result.exit_code == 1
    assert result.output == f"{tmp_path / 'bad.har'}: log.entries[1]: missing field 'response'\n"
