"""The README's install-and-run command really serves the example config."""
from __future__ import annotations

import os
import signal
import subprocess
import time

import requests

from tests.helpers.basics import ROOT, free_port


def test_run_script_installs_and_serves_the_example_config(tmp_path):
    port = free_port()
    log = open(tmp_path / "run.log", "wb")
    env = {**os.environ, "BIND": f"127.0.0.1:{port}", "BACKWORKS_WORKERS": "2"}
    proc = subprocess.Popen(["bash", "scripts/run.sh"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        response = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                response = requests.get(f"http://127.0.0.1:{port}/hello/ann", timeout=2)
                break
            except requests.ConnectionError:
                time.sleep(0.3)
        assert response is not None, (tmp_path / "run.log").read_text(errors="replace")
        assert response.status_code == 200
        assert response.json() == {"greeting": "hi ann"}
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                # A worker forked while the SIGTERM was arriving may miss it (it still had the master's
                # handler) and the master then waits graceful_timeout for it: not what this test is about.
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(15)
        log.close()
