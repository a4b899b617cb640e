"""Crash-proof lifecycle under real gunicorn: plain `gunicorn wsgi:app`, hostile scripts at load and at call
time (C-stack overflow, a C call that never returns), quarantine, and captures that survive a stop."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from tests.helpers.basics import write_config
from tests.helpers.fake_upstream import FakeUpstream
from tests.helpers.gunicorn import Gunicorn
from tests.helpers.ops import TOKEN, admin, sample, wait_for

pytestmark = pytest.mark.slow

BACKWORKS = str(Path(sys.executable).parent / "backworks")
# Builds a 300,000-deep nested tuple and hashes it: the C stack overflows (SIGSEGV) in any process.
DEEP_HASH = "t = ()\nfor i in range(300000):\n    t = (t,)\nh = hash(t)\n"
DEEP_HASH_IN_HOOK = ("def before_request(request):\n    t = ()\n    for i in range(300000):\n        t = (t,)\n"
                     "    request['headers']['x-h'] = str(hash(t))\n    return request\n")
# Never returns and never checks signals: `==` of two 64-level structures whose halves are shared walks
# 2**64 pairs in C (the in-process limits cannot stop it; only the backstop or process isolation can).
C_HANG_IN_HOOK = ("def before_request(request):\n    a = []\n    b = []\n    for i in range(64):\n"
                  "        a = [a, a]\n        b = [b, b]\n    return request if a == b else request\n")
TAG = "def before_request(request):\n    request['headers']['x-tag'] = 'v1'\n    return request\n"
HANDLE_OK = "def handle(request):\n    return {'status': 200, 'json': {'ok': True}}\n"

RUNTIME_MODE = "mode: runtime, runtime: {script: handler.py, timeout_ms: 10000}"
CONFIG = f"""
server: {{watch: true, access_log: false}}
admin: {{token: {TOKEN}}}
capture: {{store: "sqlite:///captures.db"}}
endpoints:
  hello: {{path: /hello, mock: {{json: {{hello: world}}}}}}
  echo: {{path: /echo, mock: {{json: {{tag: "{{{{ headers.get('x-tag', '') }}}}"}}, template: true}}}}
  run: {{path: /run, mode: runtime, runtime: {{script: handler.py, timeout_ms: 10000}}}}
"""
PLUGIN = """
plugins:
  guard: {script: plugin.py, endpoints: [echo], isolation: ISOLATION, timeout_ms: TIMEOUT}
"""


def _get(url: str, **kwargs):
    try:
        return requests.get(url, timeout=5, **kwargs).status_code
    except requests.RequestException as exc:
        return type(exc).__name__


@pytest.fixture
def plain(tmp_path):
    """Factory: plain(config_text, files={name: text}, worker_class=...) -> a ready plain `gunicorn wsgi:app`."""
    started = []

    def start(text: str = CONFIG, files: dict | None = None, worker_class: str = "sync", ready: bool = True,
              env: dict | None = None):
        for name, content in {"handler.py": HANDLE_OK, **(files or {})}.items():
            (tmp_path / name).write_text(content)
        server = Gunicorn(write_config(tmp_path, text), worker_class=worker_class, env=env, plain=True, ready=False)
        started.append(server)
        return server.wait_ready() if ready else server

    yield start
    for server in started:
        server.stop()


def master_alive_and_serving(server: Gunicorn, times: int = 20) -> list:
    assert server.proc.poll() is None, server.output()
    return [_get(server.url + "/hello") for _ in range(times)]


# 1. Plain `gunicorn wsgi:app` has every guard.

@pytest.mark.parametrize("worker_class", ["sync", "gthread"])
def test_plain_gunicorn_refuses_a_hup_with_a_broken_config_and_keeps_serving(plain, tmp_path, worker_class):
    server = plain(worker_class=worker_class)
    config = tmp_path / "backworks.yaml"
    config.write_text(config.read_text().replace(RUNTIME_MODE, "mode: mok"))
    server.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "HUP refused" in server.output(), what="the refused HUP")
    assert master_alive_and_serving(server) == [200] * 20
    assert "Worker failed to boot" not in server.output()


def test_plain_gunicorn_refuses_to_start_on_a_broken_config(plain):
    server = plain(CONFIG.replace(RUNTIME_MODE, "mode: mok"), ready=False)
    assert server.proc.wait(30) != 0
    assert "Backworks config is broken, not starting" in server.output()
    assert "endpoints.run.mode" in server.output()


def test_plain_gunicorn_aggregates_metrics_over_its_workers(plain):
    server = plain()
    for _ in range(20):
        assert _get(server.url + "/hello") == 200
    text = wait_for(lambda: (lambda t: t if sample(t, "backworks_requests_total", endpoint="hello") >= 20 else None)(
        requests.get(server.url + "/metrics", timeout=5).text), what="20 requests summed over workers")
    assert sample(text, "backworks_requests_total", endpoint="hello") == 20
    assert "Prometheus multiprocess directory" in server.output()


# 2. No script code where a crash is fatal: check, the master's HUP validation, a worker's boot.

@pytest.mark.parametrize("kind", ["runtime", "plugin"])
def test_check_reports_a_script_that_overflows_the_c_stack_at_load(tmp_path, kind):
    if kind == "runtime":
        (tmp_path / "handler.py").write_text(DEEP_HASH + HANDLE_OK)
        text = "endpoints:\n  run: {path: /run, mode: runtime, runtime: {script: handler.py, timeout_ms: 10000}}\n"
    else:
        (tmp_path / "plugin.py").write_text(DEEP_HASH + TAG)
        text = ("endpoints:\n  hello: {path: /hello, mock: {body: hi}}\n"
                "plugins:\n  deep: {script: plugin.py, timeout_ms: 5000}\n")
    config = write_config(tmp_path, text)
    result = subprocess.run([BACKWORKS, "check", str(config)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    output = result.stdout + result.stderr
    assert "crash" in output and "SIGSEGV" in output and ("handler.py" in output or "plugin.py" in output)
    assert "1 problem(s)" in output


@pytest.mark.parametrize("worker_class", ["sync", "gthread"])
def test_hup_with_a_script_that_overflows_the_c_stack_at_load_is_refused_and_the_master_lives(
        plain, tmp_path, worker_class):
    server = plain(worker_class=worker_class)
    (tmp_path / "handler.py").write_text(DEEP_HASH + HANDLE_OK)
    server.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "HUP refused" in server.output(), what="the refused HUP")
    assert "(crash)" in server.output() and "SIGSEGV" in server.output()
    assert master_alive_and_serving(server) == [200] * 20
    assert _get(server.url + "/run") == 200  # the last good handler


def test_a_worker_started_after_a_script_turned_hostile_serves_the_last_good_one(plain, tmp_path):
    server = plain()
    (tmp_path / "handler.py").write_text(DEEP_HASH + HANDLE_OK)
    old = set(_workers(server.proc.pid))
    for pid in old:  # new workers now boot with the hostile file on disk, and no HUP
        os.kill(pid, signal.SIGTERM)
    wait_for(lambda: len(set(_workers(server.proc.pid)) - old) == 2, what="two new workers")
    wait_for(lambda: server.output().count("serves the last good version instead") >= 2, what="the fallback")
    assert master_alive_and_serving(server) == [200] * 20
    assert [_get(server.url + "/run") for _ in range(5)] == [200] * 5
    assert "was sent SIGSEGV" not in server.output()


ON_LOAD_BOMB = ("import time\ndef on_load(config):\n    if time.time() > BOMB_AT:\n"
                "        raise ValueError('boom at boot')\n")


def test_a_script_that_fails_to_load_only_in_a_respawned_worker_never_stops_the_master(plain, tmp_path):
    """The check passed; after the bomb time every load fails: new workers boot with the script disabled."""
    bomb_at = time.time() + 12  # time enough for the master's check and the first workers
    bomb = ON_LOAD_BOMB.replace("BOMB_AT", repr(bomb_at))
    server = plain(_plugin_config("inline"), {"plugin.py": bomb + TAG, "handler.py": bomb + HANDLE_OK})
    assert time.time() < bomb_at, "booted after the bomb time: this machine is too slow for the test"
    assert _answer(server.url + "/echo") == (200, {"tag": "v1"})
    time.sleep(max(0.0, bomb_at + 0.2 - time.time()))
    old = set(_workers(server.proc.pid))
    for pid in old:  # what a crash, an OOM kill, max_requests or the backstop does
        os.kill(pid, signal.SIGKILL)
    wait_for(lambda: len(set(_workers(server.proc.pid)) - old) == 2 or server.proc.poll() is not None,
             timeout=30, what="two new workers")
    wait_for(lambda: server.output().count("plugin guard is DISABLED in this worker") >= 2 or
             server.proc.poll() is not None, timeout=30, what="the disabled plugin in both new workers")
    assert master_alive_and_serving(server) == [200] * 20
    assert [_answer(server.url + "/echo") for _ in range(6)] == [(200, {"tag": ""})] * 6  # failed open
    run = [_answer(server.url + "/run") for _ in range(4)]
    assert [(status, body["error"]["code"]) for status, body in run] == [(500, "handler_failed")] * 4
    output = server.output()
    assert "Worker failed to boot" not in output and "exited with code 3" not in output
    assert "runtime endpoint run is DISABLED in this worker" in output


def _answer(url: str) -> tuple:
    try:
        response = requests.get(url, timeout=10)
        return response.status_code, response.json()
    except requests.RequestException as exc:
        return type(exc).__name__, None


def _workers(master: int) -> list[int]:
    return [int(pid) for pid in Path(f"/proc/{master}/task/{master}/children").read_text().split()]


# 4. Crash quarantine, and the backstop for C calls that never return (inline isolation).

def _plugin_config(isolation: str, timeout_ms: int = 3000) -> str:
    return CONFIG + PLUGIN.replace("ISOLATION", isolation).replace("TIMEOUT", str(timeout_ms))


def _status(server, name: str = "guard") -> dict:
    plugins = admin(server.url, "plugins").json()["plugins"]
    return next(p for p in plugins if p["name"] == name)


@pytest.mark.parametrize("script, timeout_ms, reason", [
    (DEEP_HASH_IN_HOOK, 3000, "died"),
    (C_HANG_IN_HOOK, 100, "overran its budget and hard margin")], ids=["c-stack-overflow", "c-call-never-returns"])
def test_a_script_that_kills_an_inline_worker_is_quarantined_and_later_requests_fail_open(
        plain, tmp_path, script, timeout_ms, reason):
    server = plain(_plugin_config("inline", timeout_ms), {"plugin.py": script})
    started = time.monotonic()
    first = _get(server.url + "/echo")
    took = time.monotonic() - started
    assert first in ("ConnectionError", "ChunkedEncodingError"), first  # the one request in flight
    # a hang: budget (100 ms) + hard margin (300 ms) + the watchdog's poll, never gunicorn's timeout (30 s)
    assert took < 4.0
    later = [_answer(server.url + "/echo") for _ in range(12)]
    assert later == [(200, {"tag": ""})] * 12, server.output()  # failed open: the request as it was
    output = server.output()
    assert output.count("that script now runs with process isolation in every worker") == 1, output
    assert f"{reason} inside script plugin.py" in output
    wait_for(lambda: _status(server)["quarantined"], what="the admin API to show the quarantine")
    assert _status(server)["isolation"] == "process"
    metrics = requests.get(server.url + "/metrics", timeout=5).text
    assert sample(metrics, "backworks_plugin_quarantined", plugin="guard") == 1


def test_a_quarantined_script_runs_inline_again_once_its_file_changes(plain, tmp_path):
    server = plain(_plugin_config("inline"), {"plugin.py": DEEP_HASH_IN_HOOK})
    _get(server.url + "/echo")
    wait_for(lambda: _status(server)["quarantined"], what="the quarantine")
    (tmp_path / "plugin.py").write_text(TAG)
    wait_for(lambda: all(requests.get(server.url + "/echo", timeout=5).json() == {"tag": "v1"} for _ in range(6)),
             what="the fixed script in every worker")
    # Each worker answers for itself and reloads on its own watcher's tick: asked until every answer agrees.
    wait_for(lambda: all((lambda s: (s["quarantined"], s["isolation"]))(_status(server)) == (False, "inline")
                         for _ in range(6)), what="every worker to report the script inline again")


def test_under_gthread_a_crashing_script_never_kills_a_worker(plain):
    server = plain(_plugin_config("auto"), {"plugin.py": DEEP_HASH_IN_HOOK}, worker_class="gthread")
    answers = [requests.get(server.url + "/echo", timeout=10) for _ in range(10)]
    assert [(r.status_code, r.json()) for r in answers] == [(200, {"tag": ""})] * 10
    assert "was sent SIGSEGV" not in server.output()
    assert "inside script" not in server.output()


# 3. Nothing captured is lost by a stop or a reload.

CAPTURE = """
server: {watch: false, access_log: false}
capture: {store: "STORE"}
upstreams:
  api: {targets: [{url: "UPSTREAM"}], read_timeout_ms: 2000}
endpoints:
  hello: {path: /hello, mock: {json: {hello: world}}}
  rec: {path: "/rec/{rest:path}", mode: capture, capture: {upstream: api, strip_prefix: /rec}}
"""


@pytest.fixture
def upstream():
    server = FakeUpstream("rec")
    yield server
    server.stop()


def _captured(tmp_path: Path) -> int:
    import sqlite3

    with sqlite3.connect(tmp_path / "captures.db") as db:
        return db.execute("select count(*) from backworks_captures").fetchone()[0]


def _send(url: str, count: int) -> None:
    with requests.Session() as session:
        for i in range(count):
            assert session.get(f"{url}/rec/n/{i}", timeout=10).status_code == 200


@pytest.mark.parametrize("worker_class", ["sync", "gthread"])
def test_sigterm_right_after_captured_requests_loses_none(plain, tmp_path, upstream, worker_class):
    text = CAPTURE.replace("STORE", "sqlite:///captures.db").replace("UPSTREAM", upstream.url)
    server = plain(text, worker_class=worker_class)
    _send(server.url, 40)
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(20) == 0, server.output()
    assert _captured(tmp_path) == 40


def test_hup_lets_the_old_workers_write_their_captures(plain, tmp_path, upstream):
    text = CAPTURE.replace("STORE", "sqlite:///captures.db").replace("UPSTREAM", upstream.url)
    server = plain(text)
    _send(server.url, 40)
    old = set(_workers(server.proc.pid))
    server.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: not (old & set(_workers(server.proc.pid))), what="the old workers to exit")
    assert _captured(tmp_path) == 40


class HungStore:
    """Accepts TCP connections and never answers (a store that hangs)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.held = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                self.held.append(self.sock.accept()[0])
            except OSError:
                return

    def close(self):
        for conn in self.held:
            conn.close()
        self.sock.close()


def test_a_hung_store_bounds_the_stop_and_counts_what_it_dropped(plain, upstream):
    store = HungStore()
    try:
        text = CAPTURE.replace("STORE", f"postgresql://u@127.0.0.1:{store.port}/db").replace("UPSTREAM", upstream.url)
        server = plain(text)
        _send(server.url, 6)
        sent = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(20) == 0, server.output()
        assert time.monotonic() - sent < 10  # drain budget: half of graceful_timeout (6 s)
        output = server.output()
        assert "(counted as dropped)" in output, output
        assert "captured exchange(s) not written" in output
    finally:
        store.close()
