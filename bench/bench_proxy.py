"""Proxy and capture overhead: direct vs Backworks proxy vs a plain Flask + requests proxy, in one run.

Run: .venv/bin/python bench/bench_proxy.py [--seconds 3] [--rounds 5]
A bare WSGI upstream runs under gunicorn (gthread, keep-alive so pools matter); Backworks (proxy and
capture endpoints) and the Flask + requests baseline run under gunicorn (sync, 2 workers, access log
off in both). wrk drives each at 32 connections and at 1 connection.
A bare ten-line urllib3 WSGI proxy under the same gunicorn shows the floor of a Python proxy hop.
Targets: Backworks >= 1.4x the baseline at 32 connections; added p50 at 1 connection < 0.8 ms;
capture >= 0.8x proxy. Scenarios are interleaved for --rounds rounds; each ratio is taken within a round
and the median over rounds is reported, so load that drifts on a shared machine skews no single figure.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import textwrap
from pathlib import Path
from statistics import median

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Server, print_row, run_wrk  # noqa: E402

UPSTREAM = textwrap.dedent('''
    BODY = b'{"id": 1, "name": "Kettle", "price": 29.5, "tags": ["kitchen", "steel"]}'

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(BODY)))])
        return [BODY]
''')

BASELINE = textwrap.dedent('''
    import os
    import requests
    from flask import Flask, Response, request

    UPSTREAM = os.environ["BENCH_UPSTREAM"]
    HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "host",
           "content-length", "content-encoding"}
    session = requests.Session()
    app = Flask(__name__)

    @app.route("/api/<path:rest>", methods=["GET", "POST", "PUT", "DELETE"])
    def proxy(rest):
        headers = {k: v for k, v in request.headers if k.lower() not in HOP}
        headers["X-Forwarded-For"] = request.remote_addr
        upstream = session.request(request.method, f"{UPSTREAM}/{rest}", params=request.query_string,
                                   headers=headers, data=request.get_data(), timeout=30)
        out = [(k, v) for k, v in upstream.headers.items() if k.lower() not in HOP]
        return Response(upstream.content, upstream.status_code, out)
''')

# The floor: ten lines of WSGI around the same pooled urllib3 client, no routing, headers or errors.
BARE = textwrap.dedent('''
    import os
    import urllib3

    HOST, PORT = os.environ["BENCH_UPSTREAM"].rsplit("/", 1)[1].split(":")
    pools = {}

    def app(environ, start_response):
        pool = pools.get(os.getpid()) or pools.setdefault(os.getpid(), urllib3.HTTPConnectionPool(HOST, int(PORT)))
        path = environ["PATH_INFO"][4:] + ("?" + environ["QUERY_STRING"] if environ.get("QUERY_STRING") else "")
        upstream = pool.urlopen("GET", path, retries=False, preload_content=False, decode_content=False)
        data = upstream.read()
        upstream.release_conn()
        start_response(f"{upstream.status} OK", [("Content-Type", "application/json"),
                                                 ("Content-Length", str(len(data)))])
        return [data]
''')

CONFIG = textwrap.dedent('''
    server: {{access_log: false, watch: false}}
    capture: {{store: "sqlite:///{store}"}}
    upstreams:
      api: {{targets: [{{url: "{upstream}"}}], pool_size: 16}}
    endpoints:
      proxied: {{path: "/api/{{rest:path}}", mode: proxy, proxy: {{upstream: api, strip_prefix: /api}}}}
      captured: {{path: "/cap/{{rest:path}}", mode: capture, capture: {{upstream: api, strip_prefix: /cap}}}}
''')


def main() -> None:
    """Start the servers, run wrk on each, print the table and the ratios against the targets."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-proxy-"))
    (work / "bench_upstream.py").write_text(UPSTREAM)
    (work / "bench_baseline.py").write_text(BASELINE)
    (work / "bench_bare.py").write_text(BARE)
    servers = []
    try:
        upstream = Server("bench_upstream:app", workers=1, worker_class="gthread", chdir=work)
        servers.append(upstream)
        config = work / "bench.yaml"
        config.write_text(CONFIG.format(upstream=upstream.url, store=work / "captures.db"))
        backworks = Server("wsgi:app", env={"BACKWORKS_CONFIG": str(config)}, ready_path="/healthz")
        servers.append(backworks)
        baseline = Server("bench_baseline:app", env={"BENCH_UPSTREAM": upstream.url}, chdir=work,
                          ready_path="/api/x")
        servers.append(baseline)
        bare = Server("bench_bare:app", env={"BENCH_UPSTREAM": upstream.url}, chdir=work, ready_path="/api/x")
        servers.append(bare)
        results = measure(upstream.url, backworks.url, baseline.url, bare.url, args.seconds, args.rounds)
    finally:
        for server in servers:
            server.stop()
    report(results)


def measure(direct: str, backworks: str, baseline: str, bare: str, seconds: int, rounds: int) -> list:
    """Run every scenario once per round, interleaved; return one {name: wrk result} per round."""
    scenarios = {
        "direct c32": (direct + "/item/1?x=1", 32), "backworks proxy c32": (backworks + "/api/item/1?x=1", 32),
        "flask+requests c32": (baseline + "/api/item/1?x=1", 32),
        "backworks capture c32": (backworks + "/cap/item/1?x=1", 32),
        "direct c1": (direct + "/item/1?x=1", 1), "backworks proxy c1": (backworks + "/api/item/1?x=1", 1),
        "flask+requests c1": (baseline + "/api/item/1?x=1", 1),
        "bare urllib3 WSGI proxy c1": (bare + "/api/item/1?x=1", 1),
    }
    for url, connections in scenarios.values():
        run_wrk(url, connections, seconds=1)  # warm-up: pools, imports, SQLite file
    return [{name: run_wrk(url, connections, seconds=seconds, threads=2)
             for name, (url, connections) in scenarios.items()} for _ in range(rounds)]


def report(rounds: list) -> None:
    """Print the median of each scenario, and the ratios (median of the per-round ratios)."""
    print(f"proxy benchmark: median of {len(rounds)} interleaved rounds (gunicorn sync x2 for Backworks, the "
          f"baseline and the bare proxy; gthread upstream)")
    for name in rounds[0]:
        print_row(name, {key: median(r[name][key] for r in rounds) for key in ("rps", "p50_ms", "p99_ms")}
                  | {"errors": sum(r[name]["errors"] for r in rounds)})
    ratios = [r["backworks proxy c32"]["rps"] / r["flask+requests c32"]["rps"] for r in rounds]
    speedup = median(ratios)
    added = median(r["backworks proxy c1"]["p50_ms"] - r["direct c1"]["p50_ms"] for r in rounds)
    baseline_added = median(r["flask+requests c1"]["p50_ms"] - r["direct c1"]["p50_ms"] for r in rounds)
    bare_added = median(r["bare urllib3 WSGI proxy c1"]["p50_ms"] - r["direct c1"]["p50_ms"] for r in rounds)
    capture = median(r["backworks capture c32"]["rps"] / r["backworks proxy c32"]["rps"] for r in rounds)
    print(f"  Backworks proxy / Flask+requests (c32): {speedup:.2f}x   (target >= 1.4x)")
    print(f"  added p50 at c1, Backworks proxy: {added:.3f} ms   (target < 0.8 ms; Flask+requests adds "
          f"{baseline_added:.3f} ms, the bare urllib3 WSGI proxy {bare_added:.3f} ms)")
    print(f"  capture / proxy throughput (c32): {capture:.2f}x   (target >= 0.8x)")
    print(f"  per-round proxy/baseline ratios (c32): {', '.join(f'{ratio:.2f}' for ratio in ratios)}")


if __name__ == "__main__":
    main()
