"""Mock endpoint under gunicorn gthread (2 workers x 4 threads) against a bare WSGI app under sync (2 workers).

Run: .venv/bin/python bench/bench_gthread.py [--seconds 5] [--rounds 3]
Same 1 KB JSON body everywhere; wrk -t2 -c32. Five servers in interleaved rounds: bare WSGI (a plain WSGI
function) under sync, the baseline, and under gthread; bare Flask under gthread; Backworks' mock endpoint
under sync and under gthread. Each figure is the median of the rounds, with the spread (min-max) beside it,
plus worker CPU time per request, which other load on shared cores disturbs less than throughput.
Target: Backworks gthread >= 1.0x bare WSGI sync. The bare rows split a gap into gunicorn's gthread worker
(bare WSGI gthread / sync), Flask (bare Flask / bare WSGI, both gthread) and Backworks.
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import textwrap
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_mock import ITEMS  # noqa: E402
from common import Server, print_row, run_wrk, workers_cpu_s  # noqa: E402

BARE_WSGI = textwrap.dedent("""
    BODY = %r
    HEADERS = [("Content-Type", "application/json"), ("Content-Length", str(len(BODY)))]

    def app(environ, start_response):
        start_response("200 OK", HEADERS)
        return [BODY]
""")
BARE_FLASK = textwrap.dedent("""
    from flask import Flask, Response
    BODY = %r
    app = Flask(__name__)

    @app.get("/items")
    def items():
        return Response(BODY, mimetype="application/json")
""")
BASELINE = "bare WSGI, sync"


def start_servers(work: Path) -> dict:
    """The five servers of the comparison, each on its own port."""
    mock = {"BACKWORKS_CONFIG": str(work / "mock.yaml")}
    gthread = {"worker_class": "gthread", "threads": 4}
    return {
        BASELINE: Server("bare_wsgi:app", chdir=work, ready_path="/items"),
        "bare WSGI, gthread": Server("bare_wsgi:app", chdir=work, ready_path="/items", **gthread),
        "bare Flask, gthread": Server("bare_flask:app", chdir=work, ready_path="/items", **gthread),
        "Backworks mock, sync": Server("wsgi:app", env=mock, ready_path="/items"),
        "Backworks mock, gthread": Server("wsgi:app", env=mock, ready_path="/items", **gthread),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    body = json.dumps(ITEMS, separators=(",", ":"))
    work = Path(tempfile.mkdtemp(prefix="bench-gthread-"))
    (work / "bare_wsgi.py").write_text(BARE_WSGI % (body.encode(),))
    (work / "bare_flask.py").write_text(BARE_FLASK % (body.encode(),))
    (work / "mock.yaml").write_text("server: {access_log: false, watch: false}\nendpoints:\n  items:\n"
                                    f"    path: /items\n    mock:\n      body: '{body}'\n"
                                    "      content_type: application/json\n")
    print(f"payload: {len(body)} bytes; 2 workers (gthread: 4 threads each); wrk -t2 -c32, {args.seconds}s per run")
    runs: dict = {}
    cpu: dict = {}
    servers = start_servers(work)
    try:
        for round_no in range(args.rounds):  # interleaved, so a noisy moment hits every server alike
            for label, server in servers.items():
                before = workers_cpu_s(server.proc.pid)
                result = run_wrk(server.url + "/items", 32, args.seconds, threads=2)
                cpu.setdefault(label, []).append(
                    1e6 * (workers_cpu_s(server.proc.pid) - before) / (result["rps"] * args.seconds))
                runs.setdefault(label, []).append(result)
                print_row(f"{label} #{round_no + 1}", result)
    finally:
        for server in servers.values():
            server.stop()
        shutil.rmtree(work, ignore_errors=True)
    # Each round's figure is divided by the baseline's in the same round; the median of those is shown.
    base = runs[BASELINE]
    base_cpu = statistics.median(cpu[BASELINE])
    threaded_cpu = statistics.median(cpu["bare WSGI, gthread"])
    print(f"median of {args.rounds} interleaved rounds, ratios to {BASELINE} in the same round (spread: "
          "lowest-highest round); worker CPU per request, also as a ratio to bare WSGI, gthread:")
    ratios = {}
    for label, results in runs.items():
        rps = [r["rps"] / b["rps"] for r, b in zip(results, base, strict=True)]
        ratios[label] = statistics.median(rps)
        cost = statistics.median(cpu[label])
        print(f"  {label:<26} {statistics.median(r['rps'] for r in results):7.0f} req/s  {ratios[label]:.2f}x "
              f"({min(rps):.2f}-{max(rps):.2f})   CPU {cost:4.0f} us/req, {cost / base_cpu:.2f}x; "
              f"{cost / threaded_cpu:.2f}x of bare gthread")
    print(f"Backworks mock, gthread / bare WSGI, sync: throughput ratio {ratios['Backworks mock, gthread']:.2f} "
          "(target >= 1.00)")


if __name__ == "__main__":
    main()
