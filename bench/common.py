"""Shared benchmark plumbing: locate/install wrk, start gunicorn servers, run wrk and parse its output."""
from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def ensure_wrk() -> str:
    """Return the wrk binary, installing Debian's package when it is missing."""
    found = shutil.which("wrk")
    if found:
        return found
    subprocess.run(["apt-get", "update", "-qq"], check=False, stdout=subprocess.DEVNULL)
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True, stdout=subprocess.DEVNULL)
    return shutil.which("wrk") or sys.exit("wrk could not be installed")


def free_port() -> int:
    """Return a free loopback port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """A gunicorn process serving `app_spec` (module:variable) on a free loopback port."""

    def __init__(self, app_spec: str, env: dict | None = None, workers: int = 2, worker_class: str = "sync",
                 chdir: Path = ROOT, ready_path: str = "/", threads: int = 1):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # Started in the repository, gunicorn would read its gunicorn.conf.py (the production guards) for
        # every app, bare Flask included: only a bench that asks for it (GUNICORN_CMD_ARGS) gets it.
        settings = [] if "GUNICORN_CMD_ARGS" in (env or {}) else ["-c", os.devnull]
        cmd = [sys.executable, "-m", "gunicorn", *settings, "-w", str(workers), "-k", worker_class, "--threads",
               str(threads), "-b", f"127.0.0.1:{self.port}", "--chdir", str(chdir), "--log-level", "warning", app_spec]
        self.proc = subprocess.Popen(cmd, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        self._wait(ready_path)

    def _wait(self, path: str) -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(self.url + path, timeout=1).read()
                return
            except Exception:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"server {self.url} exited with {self.proc.returncode}") from None
                time.sleep(0.1)
        raise RuntimeError(f"server {self.url} did not start")

    def stop(self) -> None:
        """Stop the server and its workers."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)


def workers_cpu_s(master_pid: int) -> float:
    """CPU seconds used so far by a gunicorn master's workers (a measure that shared cores disturb less)."""
    total = 0
    for child in Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split():
        fields = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime + stime, in clock ticks
    return total / os.sysconf("SC_CLK_TCK")


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def run_wrk(url: str, connections: int, seconds: int = 5, threads: int = 1) -> dict:
    """Run wrk against url; return {"rps", "p50_ms", "p99_ms", "errors"}."""
    wrk = ensure_wrk()
    threads = max(1, min(threads, connections))
    out = subprocess.run([wrk, "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s", "--latency", url],
                         capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)", out)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {"rps": rps, "p50_ms": _ms(*p50.groups()), "p99_ms": _ms(*p99.groups()),
            "errors": int(errors.group(1)) if errors else 0 + (sum(map(int, socket_errors.groups()))
                                                                 if socket_errors else 0)}


def print_row(label: str, result: dict) -> None:
    """Print one result line."""
    print(f"  {label:<34} {result['rps']:>9.0f} req/s   p50 {result['p50_ms']:7.3f} ms   "
          f"p99 {result['p99_ms']:7.3f} ms   errors {result['errors']}")


def worker_instructions(app_spec: str, env: dict, paths: list, requests: int = 300, warmup: int = 100,
                        chdir: Path = ROOT) -> dict:
    """User-space instructions per request inside one real gunicorn sync worker, per path (callgrind).

    Deterministic where timings are not (the same code gives the same count, whatever else the machine
    does): gunicorn runs under valgrind, each path is warmed up, the worker's counters are zeroed, then
    `requests` sequential requests are counted. Kernel work (sockets, system calls) is not counted.
    Returns {path: instructions per request}; {} when valgrind is not installed.
    """
    if not shutil.which("valgrind") or not shutil.which("callgrind_control"):
        return {}
    import http.client

    port = free_port()
    cmd = ["valgrind", "--tool=callgrind", "--trace-children=yes", "--callgrind-out-file=/dev/null",
           sys.executable, "-m", "gunicorn", "-c", os.devnull, "-w", "1", "-k", "sync", "-b", f"127.0.0.1:{port}",
           "--chdir", str(chdir), "--timeout", "600", "--log-level", "warning", app_spec]
    proc = subprocess.Popen(cmd, env={**os.environ, "PYTHONHASHSEED": "0", **env}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)

    def get(path: str) -> int:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            response.read()
            return response.status
        finally:
            connection.close()

    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                get(paths[0])
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("gunicorn under valgrind did not start") from None
                time.sleep(1)
        worker = subprocess.check_output(["pgrep", "-P", str(proc.pid)], text=True).split()[0]
        counts = {}
        for path in paths:
            for _ in range(warmup):
                get(path)
            subprocess.run(["callgrind_control", "-z", worker], capture_output=True, check=True)
            for _ in range(requests):
                if get(path) >= 500:
                    raise RuntimeError(f"{path} failed under valgrind")
            status = subprocess.run(["callgrind_control", "-e", "Ir", worker], capture_output=True, text=True,
                                    check=True).stdout
            counts[path] = _callgrind_total(status) / requests
        return counts
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _callgrind_total(status: str) -> int:
    """The Ir total in callgrind_control -e Ir output: the sum of its per-thread lines ("Th 1  175,653,596")."""
    found = re.findall(r"^\s*Th \d+\s+([\d,]+)\s*$", status, re.M)
    if not found:
        raise RuntimeError(f"no instruction count in callgrind_control's answer: {status[:300]!r}")
    return sum(int(n.replace(",", "")) for n in found)
