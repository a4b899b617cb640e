"""Mock endpoint vs bare Flask, same 1 KB JSON list, gunicorn sync with 2 workers, wrk at 32 and 1 connections.

Run: .venv/bin/python bench/bench_mock.py [--seconds 3] [--rounds 3]
Targets: throughput ratio (Backworks / bare Flask) >= 0.90 at 32 connections; p50 at 1 connection
within 1.2x of bare Flask.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import textwrap
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Server, print_row, run_wrk  # noqa: E402

ITEMS = [{"id": i, "name": f"item-{i}", "price": round(i * 1.25, 2), "tags": ["a", "b"]} for i in range(18)]
BARE_APP = textwrap.dedent("""
    import json
    from flask import Flask, Response
    BODY = json.dumps(%r, separators=(",", ":")).encode()
    app = Flask(__name__)

    @app.get("/items")
    def items():
        return Response(BODY, mimetype="application/json")
""")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    body = json.dumps(ITEMS, separators=(",", ":"))
    work = Path(tempfile.mkdtemp(prefix="bench-mock-"))
    (work / "bare_flask.py").write_text(BARE_APP % (ITEMS,))
    (work / "mock.yaml").write_text("server: {access_log: false, watch: false}\nendpoints:\n  items:\n"
                                    f"    path: /items\n    mock:\n      body: '{body}'\n"
                                    "      content_type: application/json\n")
    (work / "mock_logged.yaml").write_text((work / "mock.yaml").read_text().replace("access_log: false",
                                                                                   "access_log: true"))
    print(f"payload: {len(body)} bytes; gunicorn sync, 2 workers; wrk {args.seconds}s per run")
    results = {}
    servers = {
        "bare Flask": Server("bare_flask:app", chdir=work, ready_path="/items"),
        "Backworks mock": Server("wsgi:app", env={"BACKWORKS_CONFIG": str(work / "mock.yaml")},
                                 ready_path="/items"),
        "Backworks mock + access log": Server("wsgi:app", env={"BACKWORKS_CONFIG": str(work / "mock_logged.yaml")},
                                              ready_path="/items"),
    }
    try:
        # Rounds alternate between the servers so that load from elsewhere on the machine hits all alike;
        # each figure is the median over the rounds.
        for connections in (32, 1):
            print(f"{connections} connection(s), median of {args.rounds} interleaved rounds:")
            runs: dict = {label: [] for label in servers}
            for _ in range(args.rounds):
                for label, server in servers.items():
                    runs[label].append(run_wrk(server.url + "/items", connections, args.seconds, threads=2))
            for label, samples in runs.items():
                result = {key: statistics.median(s[key] for s in samples) for key in samples[0]}
                results[(label, connections)] = result
                print_row(label, result)
    finally:
        for server in servers.values():
            server.stop()
    base32, base1 = results[("bare Flask", 32)], results[("bare Flask", 1)]
    for label in ("Backworks mock", "Backworks mock + access log"):
        ratio = results[(label, 32)]["rps"] / base32["rps"]
        p50 = results[(label, 1)]["p50_ms"] / base1["p50_ms"]
        print(f"{label}: throughput ratio {ratio:.2f} (target >= 0.90); 1-conn p50 ratio {p50:.2f} "
              f"(target <= 1.20)")


if __name__ == "__main__":
    main()
