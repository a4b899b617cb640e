"""A real gunicorn serving wsgi:app on a free loopback port, and the `gunicorn` factory fixture."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import requests

from tests.helpers.basics import ROOT, free_port
from tests.helpers.ops import wait_for

GUNICORN = str(Path(sys.executable).parent / "gunicorn")
# What `gunicorn wsgi:app` must not inherit from the test run: it would find another run's state there.
NOT_INHERITED = ("PROMETHEUS_MULTIPROC_DIR", "BACKWORKS_RUNTIME_DIR")


class Gunicorn:
    """A real gunicorn serving wsgi:app for a config on a free loopback port.

    plain=True runs exactly `gunicorn wsgi:app` from the repository root, with no flag: the bind address,
    workers and worker class reach it through the environment (BACKWORKS_BIND, ...), as for a user who
    starts it that way; it is ready when every worker has loaded the config.
    """

    def __init__(self, config: Path, workers: int = 2, worker_class: str = "sync", extra=(), env=None,
                 cwd: Path | None = None, plain: bool = False, ready: bool = True):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workers = workers
        self.plain = plain
        self.log_path = Path(tempfile.mkdtemp(prefix="backworks-gunicorn-")) / "gunicorn.log"
        full_env = {**os.environ, "BACKWORKS_CONFIG": str(config)}
        if plain:
            if extra:
                raise ValueError(f"plain `gunicorn wsgi:app` takes no flags, got {extra}")
            cmd = [GUNICORN, "wsgi:app"]
            full_env.update(BACKWORKS_BIND=f"127.0.0.1:{self.port}", BACKWORKS_WORKERS=str(workers),
                            BACKWORKS_WORKER_CLASS=worker_class, BACKWORKS_GRACEFUL_TIMEOUT="6", **(env or {}))
            for name in NOT_INHERITED:
                full_env.pop(name, None)
        else:
            cmd = [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{self.port}", "--workers", str(workers),
                   "--worker-class", worker_class, "--graceful-timeout", "5", "--chdir", str(ROOT), *extra,
                   "wsgi:app"]
            full_env.update(env or {})
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, env=full_env, stdout=self.log, stderr=subprocess.STDOUT,
                                     cwd=str(cwd or ROOT), start_new_session=True)
        if ready:
            self.wait_ready()

    def wait_ready(self, timeout: float = 20.0) -> Gunicorn:
        """Wait until /healthz answers (plain: after every worker loaded the config), or fail with the log."""
        if self.plain:
            wait_for(lambda: self.proc.poll() is not None
                     or self.output().count("backworks.app: loaded") >= self.workers,
                     timeout=30, what=f"{self.workers} workers")
            assert self.proc.poll() is None, self.output()
            wait_for(lambda: _status(self.url + "/healthz") == 200, what="the first answer")
            return self
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.proc.returncode}:\n{self.output()}")
            try:
                if requests.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"gunicorn did not become ready:\n{self.output()}")

    def output(self) -> str:
        """Return what gunicorn logged so far."""
        self.log.flush()
        return self.log_path.read_text(errors="replace")

    def signal(self, signum: int) -> None:
        """Send a signal to the gunicorn master."""
        self.proc.send_signal(signum)

    def stop(self) -> None:
        """Stop gunicorn (TERM, then KILL the whole group)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15 if self.plain else 10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.log.close()


def _status(url: str):
    """The status code of a GET, or the name of the exception that stopped it."""
    try:
        return requests.get(url, timeout=5).status_code
    except requests.RequestException as exc:
        return type(exc).__name__


@pytest.fixture
def gunicorn():
    """Factory fixture: gunicorn(config_path, workers=2, worker_class='sync') -> running Gunicorn."""
    started = []

    def start(config, **kwargs) -> Gunicorn:
        server = Gunicorn(config, **kwargs)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
