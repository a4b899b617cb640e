"""Shared fixtures: free ports, real gunicorn, real PostgreSQL and Redis (required under CI=true)."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def need_service(reason: str):
    """Skip outside CI when a service is missing; fail under CI=true, where it must be there."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: this service must be available)")
    pytest.skip(reason)


def write_config(tmp_path: Path, text: str, name: str = "backworks.yaml") -> Path:
    """Write a dedented YAML config into tmp_path and return its path."""
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


class Gunicorn:
    """A real gunicorn serving wsgi:app for a config on a free loopback port."""

    def __init__(self, config: Path, workers: int = 2, worker_class: str = "sync", extra=(), env=None,
                 cwd: Path | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = Path(tempfile.mkdtemp(prefix="backworks-gunicorn-")) / "gunicorn.log"
        cmd = [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{self.port}", "--workers", str(workers),
               "--worker-class", worker_class, "--graceful-timeout", "5", "--chdir", str(ROOT), *extra,
               "wsgi:app"]
        full_env = {**os.environ, "BACKWORKS_CONFIG": str(config), **(env or {})}
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, env=full_env, stdout=self.log, stderr=subprocess.STDOUT,
                                     cwd=str(cwd or ROOT), start_new_session=True)
        self.wait_ready()

    def wait_ready(self, timeout: float = 20.0) -> None:
        """Wait until /healthz answers, or fail with gunicorn's log."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.proc.returncode}:\n{self.output()}")
            try:
                if requests.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
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
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.log.close()


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


def _postgres_url() -> str | None:
    import psycopg

    for user in ("postgres", "root"):
        url = f"postgresql://{user}@127.0.0.1:5432/test"
        try:
            psycopg.connect(url, connect_timeout=3).close()
            return url
        except Exception:
            continue
    return None


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """URL of the real PostgreSQL server (psycopg driver), skipped only outside CI when unreachable."""
    url = os.environ.get("BACKWORKS_TEST_POSTGRES") or _postgres_url()
    if not url:
        need_service("PostgreSQL is not reachable on 127.0.0.1:5432")
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


@pytest.fixture(scope="session")
def redis_url() -> str:
    """URL of the real Redis server, skipped only outside CI when unreachable."""
    import redis

    url = os.environ.get("BACKWORKS_TEST_REDIS", "redis://127.0.0.1:6379/15")
    try:
        redis.Redis.from_url(url, socket_connect_timeout=3).ping()
    except Exception:
        need_service(f"Redis is not reachable at {url}")
    return url


REAL_SERVER_FIXTURES = {"gunicorn", "plain", "stack", "browser"}


def pytest_collection_modifyitems(items):
    """Mark every test that starts a real server as slow (`-m "not slow"` runs the rest in seconds)."""
    for item in items:
        if REAL_SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
