"""The newcomer's first hour end to end, on a fresh copy of the repository with nothing installed (slow)."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import requests

from tests.helpers.basics import ROOT, free_port
from tests.helpers.newcomer import every_stage_lines, write_every_stage

# A fresh .venv installs every dependency (30-60 s on a quiet machine, more under load).
pytestmark = [pytest.mark.timeout(900, method="thread"), pytest.mark.slow]

NOT_COPIED = shutil.ignore_patterns(".venv", ".git", "__pycache__", "*.db", "*.db-*", "*.egg-info", "results",
                                    ".pytest_cache")


class RunScript:
    """`bash scripts/run.sh` in a checkout, its output in a file; stop() is Ctrl-C."""

    def __init__(self, checkout: Path, port: int, log: Path):
        self.log_path = log
        self.log = open(log, "wb")
        env = {**os.environ, "BIND": f"127.0.0.1:{port}", "BACKWORKS_WORKERS": "2"}
        for name in ("BACKWORKS_CONFIG", "BACKWORKS_ADMIN_TOKEN", "VIRTUAL_ENV", "PYTHONPATH"):
            env.pop(name, None)
        self.proc = subprocess.Popen(["bash", "scripts/run.sh"], cwd=checkout, env=env, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def output(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")

    def wait_for(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output():
            assert self.proc.poll() is None, f"run.sh exited with {self.proc.returncode}:\n{self.output()}"
            assert time.monotonic() < deadline, f"no {text!r} after {timeout} s:\n{self.output()}"
            time.sleep(0.2)

    def stop(self) -> int:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)  # what Ctrl-C in the terminal sends
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(15)
        self.log.close()
        return self.proc.returncode


def run(checkout: Path, *args) -> subprocess.CompletedProcess:
    return subprocess.run([str(checkout / ".venv/bin/backworks"), *map(str, args)], cwd=checkout,
                          capture_output=True, text=True, timeout=120)


def test_newcomer_path_from_a_fresh_checkout(tmp_path):
    checkout = tmp_path / "backworks"
    shutil.copytree(ROOT, checkout, ignore=NOT_COPIED)
    port = free_port()
    url = f"http://127.0.0.1:{port}"

    # The README's run command: installs with progress, then says where it is and how to stop it.
    server = RunScript(checkout, port, tmp_path / "first.log")
    try:
        server.wait_for("==> Backworks is up", timeout=600)
        output = server.output()
        assert "==> installing Backworks and its dependencies into .venv" in output
        assert "\nCollecting " in output  # pip's progress, one line per package
        assert f"==> Backworks is up: {url}/  (try: curl {url}/hello/ann)" in output
        assert f"    dashboard: {url}/_backworks/  (admin token: dev-admin-token)" in output
        assert "    stop it with Ctrl-C" in output

        # The quickstart requests.
        assert requests.get(f"{url}/hello/ann", timeout=10).json() == {"greeting": "hi ann"}
        assert requests.get(f"{url}/products/2", timeout=10).json() == {"id": 2, "name": "Teapot", "price": 18.0}
        missing = requests.get(f"{url}/nope", timeout=10)
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"

        # The dashboard and admin API with the example's development token.
        auth = {"Authorization": "Bearer dev-admin-token"}
        endpoints = requests.get(f"{url}/_backworks/api/endpoints", headers=auth, timeout=10).json()["endpoints"]
        assert "hello" in [e["name"] for e in endpoints]
        page = requests.post(f"{url}/_backworks/", data={"token": "dev-admin-token"}, timeout=10)
        assert page.status_code == 200 and "text/html" in page.headers["Content-Type"]
        assert 'id="plugins"' in page.text  # the dashboard itself, not the sign-in form
        requests_seen = requests.get(f"{url}/_backworks/api/requests?limit=50", headers=auth, timeout=10).json()
        assert all(r["client_ip"] for r in requests_seen["requests"])
    finally:
        assert server.stop() == 0, server.output()

    # The plugin kit with what run.sh installed (no pytest in it).
    no_pytest = subprocess.run([str(checkout / ".venv/bin/python"), "-c", "import pytest"], capture_output=True)
    assert no_pytest.returncode != 0
    made = run(checkout, "new-plugin", "greeter")
    assert made.returncode == 0, made.stderr
    assert "run its test: backworks test-plugin --tests tests/plugins/test_plugin_greeter.py" in made.stdout
    tested = run(checkout, "test-plugin", "--tests", "tests/plugins/test_plugin_greeter.py")
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert tested.stdout.splitlines()[-1] == "6 passed, 0 failed (tests/plugins/test_plugin_greeter.py)"

    # check on a config with one problem of every stage: all of them, in one run.
    folder = tmp_path / "broken"
    folder.mkdir()
    path = write_every_stage(folder)
    checked = run(checkout, "check", path)
    assert checked.returncode == 1
    assert checked.stderr.splitlines() == every_stage_lines(path)

    # A second run does not reinstall.
    again = RunScript(checkout, port, tmp_path / "second.log")
    try:
        again.wait_for("==> Backworks is up", timeout=120)
        assert "==> dependencies up to date (pyproject.toml unchanged since the last install)" in again.output()
        assert "installing" not in again.output()
    finally:
        assert again.stop() == 0, again.output()
