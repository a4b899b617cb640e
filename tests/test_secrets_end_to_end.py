"""One secret through every input (header, query, JSON, form, text, URL, env var), grepped in every output."""
from __future__ import annotations

import base64
import logging
import time

import pytest
from click.testing import CliRunner

from backworks.app import create_app
from backworks.capture.store import CaptureStore
from backworks.cli.main import cli
from backworks.config.load import load_config
from tests.helpers.basics import free_port, write_config
from tests.helpers.fake_upstream import FakeUpstream
from tests.helpers.ops import TOKEN

SECRET = "Sup3r-S3cret-Value-9x"
PAD = "p" * 80  # bodies over 64 bytes: the echo upstream would otherwise answer their hex
CONFIG = """
name: e2e
admin: {{token: {token}}}
server: {{watch: false}}
capture: {{store: "sqlite:///captures.db"}}
upstreams:
  api: {{targets: [{{url: "http://svc:${{CATALOG_KEY}}@127.0.0.1:{port}/?api_key=${{CATALOG_KEY}}"}}]}}
  dead:
    targets: [{{url: "http://svc:${{CATALOG_KEY}}@127.0.0.1:{dead}/?api_key=${{CATALOG_KEY}}"}}]
    retries: 0
    connect_timeout_ms: 500
endpoints:
  rec:
    path: /rec/{{rest:path}}
    mode: capture
    capture: {{upstream: api, strip_prefix: /rec, set_headers: {{X-Api-Key: "${{CATALOG_KEY}}"}}}}
  down: {{path: /down, mode: proxy, proxy: {{upstream: dead}}}}
"""


@pytest.fixture
def upstream():
    server = FakeUpstream("up")
    yield server
    server.stop()


def send_the_secret_everywhere(client) -> str:
    """Send SECRET as header, query, JSON, form and text; return what the client got back."""
    client.set_cookie("sid", SECRET)
    replies = [
        client.get(f"/rec/q?api_key={SECRET}&access_token={SECRET}&page=1",
                   headers={"X-Auth-Token": SECRET, "Authorization": f"Bearer {SECRET}"}),
        client.post("/rec/json", json={"password": SECRET, "user": "ann", "pad": PAD}),
        client.post("/rec/form", data={"password": SECRET, "user": "ann", "pad": PAD}),
        client.post("/rec/text", data=f"my key is {SECRET} {PAD}", content_type="text/plain",
                    headers={"X-Api-Key": SECRET}),
    ]
    assert [r.status_code for r in replies] == [200, 200, 200, 200]
    return "".join(r.get_data(as_text=True) for r in replies)


def wait_rows(store: CaptureStore, count: int) -> list:
    deadline = time.monotonic() + 10
    while len(store.rows()) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return store.rows()


def test_one_secret_through_every_input_reaches_no_output(tmp_path, upstream, monkeypatch, caplog):
    monkeypatch.setenv("CATALOG_KEY", SECRET)
    caplog.set_level(logging.INFO)
    path = write_config(tmp_path, CONFIG.format(token=TOKEN, port=upstream.url.rsplit(":", 1)[1],
                                                dead=free_port()))
    app = create_app(path)
    client = app.test_client()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    outputs: dict = {}
    try:
        echoed = send_the_secret_everywhere(client)
        assert SECRET in echoed  # the secret really went through (the client gets its own data back)
        store = CaptureStore.from_config(load_config(path))
        outputs["store"] = repr(wait_rows(store, 4))
        store.close()
        down = client.get("/down")
        outputs["error body"] = down.get_data(as_text=True)
        outputs["metrics"] = client.get("/metrics").get_data(as_text=True)
        for call in ("requests", "status", "ready", "endpoints", "plugins", "stats"):
            outputs[f"admin {call}"] = client.get(f"/_backworks/api/{call}", headers=auth).get_data(as_text=True)
        runner = CliRunner()
        for args in (["print-config", str(path)], ["print-config", str(path), "--json"],
                     ["capture", "export", "--har", str(tmp_path / "out.har"), str(path)],
                     ["mocks-from-capture", str(path), "--out", str(tmp_path / "mocks.yaml")]):
            result = runner.invoke(cli, args)
            assert result.exit_code == 0, result.output
            outputs[" ".join(a for a in args if str(tmp_path) not in a)] = result.output
        outputs["har"] = (tmp_path / "out.har").read_text()
        outputs["mocks"] = (tmp_path / "mocks.yaml").read_text()
        path.write_text('mode: "${CATALOG_KEY}"\n' + path.read_text())  # a broken edit quoting the secret
        assert app.extensions["backworks"].reload() is False
        readyz = client.get("/readyz")
        outputs["readyz"] = readyz.get_data(as_text=True)
        outputs["admin status after reload"] = client.get("/_backworks/api/status", headers=auth).get_data(
            as_text=True)
    finally:
        app.extensions["backworks"].runtime.close()
    # every Backworks log line (the fake upstream's own werkzeug access log is the upstream's, not ours)
    outputs["logs"] = "\n".join(caplog.handler.format(r) for r in caplog.records if r.name.startswith("backworks"))
    basic = base64.b64encode(f"svc:{SECRET}".encode()).decode()  # what the upstream got as Basic credentials
    leaks = [name for name, text in outputs.items() if SECRET in text or basic in text]
    assert leaks == []
    assert down.status_code == 502 and readyz.json == {"status": "ready", "reasons": ["config_invalid"]}
    assert "unallowed value '***'" in outputs["admin status after reload"]
