"""Helpers for the operations tests: gunicorn with the shipped config file, metric samples, bounded load."""
from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time

import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers.basics import ROOT, need_service

GUNICORN_CONF = ("-c", str(ROOT / "gunicorn.conf.py"))
TOKEN = "t0ken-for-tests"


def sample(metrics_text: str, name: str, **labels) -> float:
    """Sum the samples called `name` whose labels include `labels` (0 when there are none)."""
    total = 0.0
    for family in text_string_to_metric_families(metrics_text):
        for item in family.samples:
            if item.name == name and all(item.labels.get(k) == v for k, v in labels.items()):
                total += item.value
    return total


def admin(url: str, path: str, method: str = "GET", token: str | None = TOKEN, **kwargs) -> requests.Response:
    """Call the admin API with the test token."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.request(method, f"{url}/_backworks/api/{path}", headers=headers, timeout=10, **kwargs)


def wait_for(predicate, timeout: float = 15.0, interval: float = 0.1, what: str = "condition"):
    """Poll `predicate` until it returns a truthy value; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class Load:
    """A fixed number of GET requests from a few threads, each on a new connection; results kept."""

    def __init__(self, url: str, total: int, threads: int = 2, pause_s: float = 0.01):
        self.url = url
        self.remaining = total
        self.results: list = []  # (status or exception text, body)
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.pause_s = pause_s
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def start(self) -> "Load":
        """Start sending."""
        for thread in self.threads:
            thread.start()
        return self

    def stop(self) -> None:
        """Send no more requests (those in flight finish)."""
        self.stopped.set()

    def _take(self) -> bool:
        with self.lock:
            if self.remaining <= 0 or self.stopped.is_set():
                return False
            self.remaining -= 1
            return True

    def _run(self) -> None:
        while self._take():
            try:
                resp = requests.get(self.url, timeout=10, headers={"Connection": "close"})
                outcome = (resp.status_code, resp.text)
            except requests.RequestException as exc:
                outcome = (f"{type(exc).__name__}: {exc}", "")
            with self.lock:
                self.results.append(outcome)
            time.sleep(self.pause_s)

    def join(self, timeout: float = 60.0) -> list:
        """Wait for every request to finish and return the results."""
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        assert not any(t.is_alive() for t in self.threads), "load did not finish in time"
        return self.results

    def done(self) -> int:
        """How many requests finished so far."""
        with self.lock:
            return len(self.results)


def ensure_debian_packages(binary: str, packages: list[str]) -> str:
    """Return the path of `binary`, installing Debian packages first when it is missing (root only)."""
    found = shutil.which(binary)
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        need_service(f"{binary} is not installed and cannot be installed here (apt-get install {' '.join(packages)})")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    lock = ["-o", "DPkg::Lock::Timeout=300"]
    for cmd in (["apt-get", *lock, "update", "-q"], ["apt-get", *lock, "install", "-y", "-q", *packages]):
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            need_service(f"{' '.join(cmd)} failed: {done.stderr.strip()[-500:]}")
    found = shutil.which(binary)
    if not found:
        need_service(f"{binary} is still missing after installing {' '.join(packages)}")
    return found
