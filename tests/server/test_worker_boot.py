"""A worker always boots: scripts that fail to load only in the worker are disabled, never a boot failure.

gunicorn stops altogether when a worker fails to boot. The master's check keeps broken files out, but a
script can pass the check and still fail in a worker (it reads the time, draws a random number, or runs
quarantined in a sandbox child): such a script is disabled in that worker, and the worker serves.
"""
from __future__ import annotations

import logging
import time

import pytest

from backworks.app import create_app
from backworks.errors import ConfigError
from backworks.server import lifecycle
from tests.helpers.basics import write_config

BOMB_AT = "BOMB_AT"  # replaced by a time: on_load raises once it has passed
ON_LOAD_BOMB = f"""
import time
def on_load(config):
    if time.time() > {BOMB_AT}:
        raise ValueError("boom at boot")
"""
TAG = "def before_request(request):\n    request['headers']['x-tag'] = 'v1'\n    return request\n"
HANDLE = "def handle(request):\n    return {'ran': True}\n"
CONFIG = """
server: {watch: false, access_log: false}
endpoints:
  echo: {path: /echo, mock: {json: {tag: "{{ headers.get('x-tag', '') }}"}, template: true}}
  guarded: {path: /guarded, mock: {json: {ok: true}}}
  plain: {path: /plain, mock: {json: {plain: true}}}
  run: {path: /run, mode: runtime, runtime: {script: handler.py}}
plugins:
  tagger: {script: tagger.py, endpoints: [echo]}
  gate: {script: gate.py, endpoints: [guarded], on_error: closed, critical: true}
"""


def write_bombs(tmp_path, bomb_at: float):
    """Scripts whose on_load raises after `bomb_at`; return the config path."""
    bomb = ON_LOAD_BOMB.replace(BOMB_AT, repr(bomb_at))
    (tmp_path / "tagger.py").write_text(bomb + TAG)
    (tmp_path / "gate.py").write_text(bomb + "def before_request(request):\n    return None\n")
    (tmp_path / "handler.py").write_text(bomb + HANDLE)
    return write_config(tmp_path, CONFIG)


@pytest.fixture
def bombed_worker(tmp_path, caplog):
    """The master's check passes before the bomb time; the worker boots after it: (app, client, its log)."""
    bomb_at = time.time() + 2.0
    config = write_bombs(tmp_path, bomb_at)
    assert lifecycle.validate(config) == [], "the check must run before the bomb time"
    time.sleep(max(0.0, bomb_at + 0.1 - time.time()))
    with caplog.at_level(logging.ERROR):
        app = create_app(config)
    yield app, app.test_client(), caplog.text
    app.extensions["backworks"].runtime.close()
    lifecycle._last_good.pop(str(config), None)
    lifecycle._checked.pop(str(config), None)


def test_a_script_that_fails_to_load_only_in_the_worker_is_disabled_and_the_worker_serves(bombed_worker):
    app, client, logged = bombed_worker
    assert client.get("/plain").json == {"plain": True}
    assert client.get("/echo").json == {"tag": ""}  # on_error: open -> the request as it was
    refused = client.get("/guarded")
    assert refused.status_code == 503
    assert refused.json["error"]["code"] == "plugin_failed"
    assert refused.json["error"]["message"] == "plugin gate failed: load_failed"
    handled = client.get("/run")
    assert (handled.status_code, handled.json["error"]["code"]) == (500, "handler_failed")
    assert "plugin tagger is DISABLED in this worker" in logged
    assert "its endpoints are served without it (on_error: open)" in logged
    assert "plugin gate is DISABLED in this worker" in logged and "its endpoints answer 503" in logged
    assert "runtime endpoint run is DISABLED in this worker" in logged
    assert "gate.py failed to load: error: " in logged and "ValueError: boom at boot" in logged


def test_a_worker_with_a_disabled_script_says_so_in_readiness(bombed_worker):
    app, client, _ = bombed_worker
    ready = client.get("/readyz")
    assert ready.status_code == 503 and "config_invalid" in ready.json["reasons"]
    report = app.extensions["backworks"].runtime.plugins.readiness()
    assert report["ok"] is False  # gate is critical
    assert report["plugins"]["gate"]["healthy"] is False
    assert "ValueError: boom at boot" in report["plugins"]["gate"]["load_error"]


def test_the_check_and_a_reload_still_refuse_the_same_scripts(tmp_path):
    config = write_bombs(tmp_path, 0.0)  # already past: every load fails
    problems = lifecycle.validate(config)
    assert len(problems) == 3 and all("ValueError: boom at boot" in p for p in problems)
    assert problems[0].startswith(f"{config}:10: plugins.gate.script: {tmp_path / 'gate.py'} failed to load: error: "
                                  f"gate.py:5: ValueError: boom at boot")
    with pytest.raises(ConfigError):
        create_app(config)  # no check passed in this process: nothing to fall back to, the load refuses
