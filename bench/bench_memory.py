"""Memory and start-up: PSS of a gunicorn master + 2 workers, and the time to the first 200, vs bare Flask.

Run: .venv/bin/python bench/bench_memory.py [--rounds 3] [--requests 200]
Servers, all gunicorn sync with 2 workers: a hello-world Flask app (the reference, no gunicorn config file),
and Backworks under the shipped gunicorn.conf.py with a mock-only config, a proxy config and the full example
config (config/backworks.yaml, copied to a temporary folder with its scripts). Each round starts every server
in turn (interleaved, so load from elsewhere on the machine hits all alike): the start-up time runs from
spawning gunicorn to the first 200 of the ready path; then `--requests` requests warm the workers and the
proportional set size (PSS, /proc/PID/smaps_rollup) of the master and every process below it is summed.
Figures are medians over the rounds. The Backworks code is compiled to bytecode first, as an installation
has it (PYTHONDONTWRITEBYTECODE would otherwise make every start compile it again).
Targets: mock-only total PSS <= 60 MB; start-up <= 400 ms. Start-up varies by a third between runs on a shared
machine; PSS by a few percent.
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, free_port  # noqa: E402

FLASK_APP = "from flask import Flask\napp = Flask(__name__)\n\n\n@app.get('/')\ndef hello():\n    return 'hello'\n"
MOCK = "server: {access_log: false, watch: false}\nendpoints:\n  items:\n    path: /items\n" \
       "    mock: {json: [{id: 1, name: kettle}, {id: 2, name: teapot}]}\n"
PROXY = "server: {{access_log: false, watch: false}}\nupstreams:\n  api: {{targets: [{{url: '{upstream}'}}]}}\n" \
        "endpoints:\n  api:\n    path: /api/{{rest:path}}\n    mode: proxy\n" \
        "    proxy: {{upstream: api, strip_prefix: /api}}\n"
TARGET_PSS_MB = 60
TARGET_STARTUP_MS = 400


class Upstream(BaseHTTPRequestHandler):
    """The proxy config's upstream: a small JSON answer."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        body = b'{"id": 1}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


def scenarios(work: Path, upstream: str, compare: Path | None = None) -> dict:
    """{label: (gunicorn arguments, environment, working directory, ready path)} for every server.

    With `compare` (another checkout of Backworks), its three Backworks servers run too, labelled "(other)"."""
    (work / "hello.py").write_text(FLASK_APP)
    (work / "mock.yaml").write_text(MOCK)
    (work / "proxy.yaml").write_text(PROXY.format(upstream=upstream))
    shutil.copytree(ROOT / "config", work / "config", ignore=shutil.ignore_patterns("*.db"))
    shutil.copytree(ROOT / "plugins_scripts", work / "plugins_scripts")
    servers = {"bare Flask": (["hello:app"], {}, work, "/")}
    for root, suffix in ((ROOT, ""), (compare, " (other)")):
        if root is None:
            continue
        shipped = ["-c", str(root / "gunicorn.conf.py"), "--chdir", str(root), "wsgi:app"]
        code = {"PYTHONPATH": str(root)}  # this checkout's package, ahead of the installed one
        servers.update({
            f"Backworks mock-only{suffix}": (shipped, {**code, "BACKWORKS_CONFIG": str(work / "mock.yaml")}, work,
                                             "/items"),
            f"Backworks proxy{suffix}": (shipped, {**code, "BACKWORKS_CONFIG": str(work / "proxy.yaml")}, work,
                                         "/api/x"),
            f"Backworks full example{suffix}": (shipped, {**code, "BACKWORKS_CONFIG": str(work / "config" /
                                                                                         "backworks.yaml")},
                                                work, "/products"),
        })
    return servers


def pss_kb(pid: int) -> int:
    """The proportional set size of one process, in kB."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return 0


def descendants(pid: int) -> list:
    """Every process below `pid` (workers, sandbox children), depth first."""
    found = []
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return found
    for child in map(int, children):
        found += [child] + descendants(child)
    return found


def wait_for_200(url: str, proc: subprocess.Popen, limit_s: float = 30.0) -> None:
    """Poll until `url` answers 200; fail when the server exits or the limit passes."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=limit_s) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError):
            if proc.poll() is not None:
                raise RuntimeError(f"{url}: gunicorn exited with {proc.returncode}") from None
            time.sleep(0.005)
    raise RuntimeError(f"{url}: no 200 within {limit_s} s")


def measure_once(args: list, env: dict, cwd: Path, ready: str, requests: int) -> dict:
    """Start one server; return its start-up time and the PSS of its processes after `requests` requests."""
    port = free_port()
    cmd = [sys.executable, "-m", "gunicorn", "-w", "2", "-k", "sync", "-b", f"127.0.0.1:{port}",
           "--log-level", "warning"] + args
    started = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=cwd, env={**os.environ, **env}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}{ready}"
        wait_for_200(url, proc)
        startup_ms = (time.monotonic() - started) * 1000
        for _ in range(requests):
            urllib.request.urlopen(url, timeout=10).read()
        time.sleep(0.3)  # let the workers settle (file watchers, lazy imports after the first requests)
        children = descendants(proc.pid)
        master = pss_kb(proc.pid)
        others = [pss_kb(pid) for pid in children]
        workers = others[:2]  # the first children are gunicorn's workers; any others are sandbox children
        return {"startup_ms": startup_ms, "master_mb": master / 1024, "worker_mb": sum(workers) / len(workers) / 1024,
                "total_mb": (master + sum(others)) / 1024, "processes": 1 + len(children)}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def run(rounds: int, requests: int, compare: Path | None = None) -> dict:
    """Measure every scenario in interleaved rounds; return {label: median of each figure}."""
    for root in filter(None, (ROOT, compare)):  # bytecode, as `pip install` leaves it (whatever the environment says)
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(root / "backworks"), str(root / "wsgi.py")],
                       check=True)
    work = Path(tempfile.mkdtemp(prefix="bench-memory-"))
    upstream = ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    try:
        servers = scenarios(work, f"http://127.0.0.1:{upstream.server_address[1]}", compare)
        samples: dict = {label: [] for label in servers}
        for _ in range(rounds):
            for label, (args, env, cwd, ready) in servers.items():
                samples[label].append(measure_once(args, env, cwd, ready, requests))
    finally:
        upstream.shutdown()
        shutil.rmtree(work, ignore_errors=True)
    return {label: {key: statistics.median(s[key] for s in runs) for key in runs[0]}
            for label, runs in samples.items()}


def report(results: dict) -> None:
    """Print one row per server and the ratios to bare Flask."""
    base = results["bare Flask"]
    print(f"  {'server':<34} {'processes':>9} {'master MB':>10} {'per worker MB':>15} {'total PSS MB':>13} "
          f"{'x Flask':>8} {'first 200 ms':>13} {'x Flask':>8}")
    for label, r in results.items():
        print(f"  {label:<34} {r['processes']:>9.0f} {r['master_mb']:>10.1f} {r['worker_mb']:>15.1f} "
              f"{r['total_mb']:>13.1f} {r['total_mb'] / base['total_mb']:>8.2f} {r['startup_ms']:>13.0f} "
              f"{r['startup_ms'] / base['startup_ms']:>8.2f}")
    mock = results["Backworks mock-only"]
    print(f"mock-only total PSS: {mock['total_mb']:.1f} MB, {mock['total_mb'] / base['total_mb']:.2f}x bare Flask "
          f"(target <= {TARGET_PSS_MB} MB)")
    print(f"mock-only start-up to first 200: {mock['startup_ms']:.0f} ms, "
          f"{mock['startup_ms'] / base['startup_ms']:.2f}x bare Flask (target <= {TARGET_STARTUP_MS} ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--compare", type=Path, help="another Backworks checkout to measure in the same rounds")
    args = parser.parse_args()
    print(f"gunicorn sync, 2 workers; median of {args.rounds} interleaved rounds; load average before: "
          f"{os.getloadavg()[0]:.2f}")
    report(run(args.rounds, args.requests, args.compare))


if __name__ == "__main__":
    main()
