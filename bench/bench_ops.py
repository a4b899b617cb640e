"""Cost of the operations hot path: request metrics + recent-requests ring, in-process and under gunicorn.

Run: .venv/bin/python bench/bench_ops.py [--seconds 3] [--calls 20000] [--rounds 3]
1. In-process: time per WSGI call of a mock endpoint with recording on, against the same app with the
   recorder replaced by a no-op (the baseline, measured in the same run).
2. gunicorn (sync, 2 workers) + wrk: bare Flask, Backworks with per-process metrics, and Backworks with
   the shipped gunicorn.conf.py (Prometheus multiprocess files). Target: >= 0.90x bare Flask. Also worker
   CPU time per request, which other load on shared cores disturbs less than throughput.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, Server, print_row, run_wrk, workers_cpu_s  # noqa: E402

CONFIG = ("server: {access_log: false, watch: false}\nendpoints:\n  items:\n    path: /items\n"
          "    mock: {json: [{id: 1, name: kettle}, {id: 2, name: teapot}]}\n")
BARE_APP = """
from flask import Flask, Response
app = Flask(__name__)

@app.get("/items")
def items():
    return Response(b'[{"id":1,"name":"kettle"},{"id":2,"name":"teapot"}]', mimetype="application/json")
"""


class NoRecorder:
    """Stands in for the recorder: records nothing."""

    def record(self, *args) -> None:
        pass


def per_call_us(app, calls: int) -> float:
    """Median-of-3 microseconds per WSGI call of GET /items."""
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/items", "QUERY_STRING": "", "SERVER_NAME": "bench",
               "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http",
               "REMOTE_ADDR": "127.0.0.1", "HTTP_USER_AGENT": "bench", "HTTP_ACCEPT": "*/*",
               "wsgi.input": None, "wsgi.errors": sys.stderr}
    runs = []
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(calls):
            b"".join(app(dict(environ), lambda status, headers: None))
        runs.append((time.perf_counter() - started) / calls * 1e6)
    return sorted(runs)[1]


def in_process(calls: int, work: Path) -> None:
    from backworks.app import create_app

    (work / "c.yaml").write_text(CONFIG)
    backworks = create_app(work / "c.yaml").extensions["backworks"]
    recorder = backworks.recorder
    backworks.recorder = NoRecorder()
    base = per_call_us(backworks, calls)
    backworks.recorder = recorder
    recorded = per_call_us(backworks, calls)
    print(f"in-process, {calls} calls: without recording {base:.1f} us/request; with metrics + ring "
          f"{recorded:.1f} us/request; overhead {recorded - base:.1f} us ({recorded / base:.2f}x)")


def under_gunicorn(seconds: int, rounds: int, work: Path) -> None:
    (work / "c.yaml").write_text(CONFIG)
    (work / "bare_flask.py").write_text(BARE_APP)
    env = {"BACKWORKS_CONFIG": str(work / "c.yaml")}
    servers = {
        "bare Flask": Server("bare_flask:app", chdir=work, ready_path="/items"),
        "Backworks, per-process metrics": Server("wsgi:app", env=env, ready_path="/items"),
        "Backworks, gunicorn.conf.py": Server(
            "wsgi:app", ready_path="/items",
            env={**env, "GUNICORN_CMD_ARGS": f"-c {ROOT / 'gunicorn.conf.py'}"}),
    }
    runs: dict = {label: [] for label in servers}
    cpu: dict = {label: [] for label in servers}
    try:
        for round_no in range(rounds):  # interleaved rounds, so a noisy moment hits every server alike
            for label, server in servers.items():
                before = workers_cpu_s(server.proc.pid)
                result = run_wrk(server.url + "/items", 32, seconds, threads=2)
                cpu[label].append(1e6 * (workers_cpu_s(server.proc.pid) - before) / (result["rps"] * seconds))
                runs[label].append(result)
                print_row(f"{label} #{round_no + 1}", result)
    finally:
        for server in servers.values():
            server.stop()
    median = {label: sorted(r["rps"] for r in results)[len(results) // 2] for label, results in runs.items()}
    cpu_median = {label: sorted(values)[len(values) // 2] for label, values in cpu.items()}
    for label, rps in median.items():
        print(f"{label}: median {rps:.0f} req/s, throughput ratio {rps / median['bare Flask']:.2f} vs bare Flask "
              f"(target >= 0.90); worker CPU {cpu_median[label]:.0f} us/request, "
              f"ratio {cpu_median[label] / cpu_median['bare Flask']:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-ops-"))
    try:
        in_process(args.calls, work)
        under_gunicorn(args.seconds, args.rounds, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
