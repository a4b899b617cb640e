"""Reload and shutdown under real gunicorn: HUP with good and broken configs, respawns, SIGTERM drain."""
from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest
import requests

from tests.helpers.basics import ROOT, free_port, write_config
from tests.helpers.ops import GUNICORN_CONF, TOKEN, Load, admin, wait_for

CONFIG = f"""
    name: lifecycle
    server: {{watch: false, access_log: false}}
    admin: {{token: {TOKEN}}}
    endpoints:
      version: {{path: /version, mock: {{json: {{v: VERSION}}}}}}
      slow: {{path: /slow, mock: {{json: {{slow: true}}, delay_ms: 1500}}}}
"""
BROKEN = CONFIG.replace("mock: {json: {v: VERSION}}", "mode: mok")
TAG_PLUGIN = """
    plugins:
      tag: {script: tag.py}
"""
TAG_SCRIPT = """
def after_response(request, response):
    return dict(response, headers=dict(response["headers"], **{{"x-tag": "{tag}"}}))
"""


def write_version(path: Path, version: int) -> None:
    write_config(path.parent, CONFIG.replace("VERSION", str(version)))


def serves(url: str, version: int, times: int = 8) -> bool:
    """True when `times` requests in a row (each on a new connection) see this version."""
    return all(requests.get(url + "/version", timeout=5).json() == {"v": version} for _ in range(times))


def wait_booted(server, workers: int) -> None:
    """Wait until `workers` workers have loaded the app (the fixture returns once the first answers)."""
    wait_for(lambda: server.output().count("backworks.app: loaded") >= workers, what=f"{workers} workers")


def worker_pids(master_pid: int) -> list[int]:
    """The gunicorn master's child processes."""
    children = Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split()
    return [int(pid) for pid in children]


def test_hup_applies_good_configs_and_never_a_broken_one_without_failed_requests(tmp_path, gunicorn):
    config = tmp_path / "backworks.yaml"
    write_version(config, 1)
    server = gunicorn(config, workers=2, extra=GUNICORN_CONF)
    wait_booted(server, 2)
    load = Load(server.url + "/version", total=3000, threads=2, pause_s=0.005).start()
    wait_for(lambda: load.done() >= 20, what="the load to start")

    write_version(config, 2)
    server.signal(signal.SIGHUP)
    wait_for(lambda: serves(server.url, 2), what="version 2 after HUP")

    workers = wait_for(lambda: len(worker_pids(server.proc.pid)) == 2 and sorted(worker_pids(server.proc.pid)),
                       what="the old workers to exit")
    write_config(tmp_path, BROKEN)
    server.signal(signal.SIGHUP)
    wait_for(lambda: "HUP refused" in server.output(), what="the HUP to be refused")
    assert "endpoints.version.mode: unallowed value 'mok' (did you mean 'mock'?)" in server.output()
    assert serves(server.url, 2)
    assert sorted(worker_pids(server.proc.pid)) == workers

    write_version(config, 3)
    server.signal(signal.SIGHUP)
    wait_for(lambda: serves(server.url, 3), what="version 3 after HUP")
    assert load.done() < 3000, "the load must still be running during the last reload"
    load.stop()
    results = load.join()
    failures = [r for r in results if r[0] != 200]
    assert failures == []
    versions = {r[1] for r in results}
    assert versions <= {'{"v":1}', '{"v":2}', '{"v":3}'}
    assert '{"v":3}' in versions and '{"v":2}' in versions


def test_hup_with_a_broken_plugin_script_is_refused_and_a_fixed_one_applies(tmp_path, gunicorn):
    config = tmp_path / "backworks.yaml"
    script = tmp_path / "tag.py"
    script.write_text(TAG_SCRIPT.format(tag="one"))
    write_config(tmp_path, CONFIG.replace("VERSION", "1") + TAG_PLUGIN)
    server = gunicorn(config, workers=2, extra=GUNICORN_CONF)
    wait_booted(server, 2)
    assert requests.get(server.url + "/version", timeout=5).headers["X-Tag"] == "one"
    script.write_text("def after_response(request, response)\n    return None\n")
    server.signal(signal.SIGHUP)
    wait_for(lambda: "HUP refused" in server.output(), what="the HUP to be refused")
    assert "tag.py" in server.output().split("HUP refused", 1)[1]
    load = Load(server.url + "/version", total=40, threads=2).start()
    assert [r[0] for r in load.join()] == [200] * 40
    script.write_text(TAG_SCRIPT.format(tag="two"))
    server.signal(signal.SIGHUP)
    wait_for(lambda: all(requests.get(server.url + "/version", timeout=5).headers["X-Tag"] == "two"
                         for _ in range(8)), what="the fixed script in every worker")


def test_worker_respawned_while_the_config_is_broken_serves_the_last_good_one(tmp_path, gunicorn):
    config = tmp_path / "backworks.yaml"
    write_version(config, 1)
    server = gunicorn(config, workers=1, extra=GUNICORN_CONF)
    write_config(tmp_path, BROKEN)
    (old_worker,) = worker_pids(server.proc.pid)
    os.kill(old_worker, signal.SIGKILL)
    wait_for(lambda: worker_pids(server.proc.pid) not in ([], [old_worker]), what="a new worker")
    server.wait_ready()
    assert serves(server.url, 1)
    assert "unallowed value 'mok'" in admin(server.url, "status").json()["last_reload_error"]
    assert server.proc.poll() is None


def test_worker_respawned_while_a_script_is_broken_runs_the_last_good_script(tmp_path, gunicorn):
    config = tmp_path / "backworks.yaml"
    script = tmp_path / "tag.py"
    script.write_text(TAG_SCRIPT.format(tag="one"))
    write_config(tmp_path, CONFIG.replace("VERSION", "1").replace("watch: false", "watch: true") + TAG_PLUGIN)
    server = gunicorn(config, workers=1, extra=GUNICORN_CONF)
    script.write_text("def after_response(request, response)\n    return None\n")
    (old_worker,) = worker_pids(server.proc.pid)
    os.kill(old_worker, signal.SIGKILL)
    wait_for(lambda: worker_pids(server.proc.pid) not in ([], [old_worker]), what="a new worker")
    server.wait_ready()
    resp = requests.get(server.url + "/version", timeout=5)
    assert resp.json() == {"v": 1} and resp.headers["X-Tag"] == "one"
    assert "tag.py:1: expected ':' (SyntaxError)" in admin(server.url, "status").json()["last_reload_error"]
    script.write_text(TAG_SCRIPT.format(tag="two"))  # the new worker's file watcher applies the fix
    wait_for(lambda: requests.get(server.url + "/version", timeout=5).headers["X-Tag"] == "two",
             what="the fixed script")
    assert admin(server.url, "status").json()["last_reload_error"] is None
    assert server.proc.poll() is None


def test_broken_config_at_start_stops_gunicorn_with_the_problems(tmp_path, gunicorn):
    config = write_config(tmp_path, BROKEN)
    with pytest.raises(RuntimeError) as failure:
        gunicorn(config, workers=1, extra=GUNICORN_CONF)
    assert "Backworks config is broken, not starting:" in str(failure.value)
    assert "endpoints.version.mode: unallowed value 'mok' (did you mean 'mock'?)" in str(failure.value)


def test_admin_reload_restarts_every_worker_on_the_new_config(tmp_path, gunicorn):
    config = tmp_path / "backworks.yaml"
    write_version(config, 1)
    server = gunicorn(config, workers=2, extra=GUNICORN_CONF)
    write_config(tmp_path, BROKEN)
    refused = admin(server.url, "reload", method="POST")
    assert refused.status_code == 422
    assert serves(server.url, 1)
    write_version(config, 2)
    resp = admin(server.url, "reload", method="POST")
    assert resp.status_code == 200
    assert resp.json()["workers"] == "restarting"
    wait_for(lambda: serves(server.url, 2), what="every worker on version 2")


def test_sigterm_drains_in_flight_requests(tmp_path, gunicorn):
    config = tmp_path / "backworks.yaml"
    write_version(config, 1)
    server = gunicorn(config, workers=2, extra=GUNICORN_CONF)
    results = []

    def slow_request():
        try:
            resp = requests.get(server.url + "/slow", timeout=10)
            results.append((resp.status_code, resp.json()))
        except requests.RequestException as exc:
            results.append((type(exc).__name__, None))

    threads = [threading.Thread(target=slow_request) for _ in range(2)]
    for thread in threads:
        thread.start()
    time.sleep(0.5)  # both requests are now inside the 1.5 s mock delay
    started = time.monotonic()
    server.signal(signal.SIGTERM)
    for thread in threads:
        thread.join(10)
    server.proc.wait(10)
    assert results == [(200, {"slow": True}), (200, {"slow": True})]
    assert time.monotonic() - started < 5  # within gunicorn's graceful timeout
    with pytest.raises(requests.ConnectionError):
        requests.get(server.url + "/version", timeout=2)


SLOW_BOOT = """
import time
exec(open({conf!r}).read())
_post_fork = globals().get("post_fork", lambda server, worker: None)


def post_fork(server, worker):
    _post_fork(server, worker)
    open({marker!r}, "w").close()
    time.sleep(2)  # the worker still has the master's signal handlers
"""


def test_a_worker_sent_term_while_it_boots_stops_without_waiting_for_the_graceful_timeout(tmp_path):
    import subprocess
    import sys

    config = tmp_path / "backworks.yaml"
    write_version(config, 1)
    marker = tmp_path / "forked"
    conf = tmp_path / "slow_boot.conf.py"
    conf.write_text(SLOW_BOOT.format(conf=GUNICORN_CONF[1], marker=str(marker)))
    log_path = tmp_path / "gunicorn.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", str(conf), "--bind", f"127.0.0.1:{free_port()}",
             "--workers", "1", "--graceful-timeout", "20", "--chdir", str(ROOT), "wsgi:app"],
            env={**os.environ, "BACKWORKS_CONFIG": str(config)}, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
        try:
            wait_for(marker.exists, what="the worker to fork")
            sent = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            proc.wait(15)
            took = time.monotonic() - sent
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
    output = log_path.read_text(errors="replace")
    assert "got SIGTERM while booting: stopping" in output, output
    assert took < 10, output  # the 2 s boot, not graceful_timeout (20 s)
