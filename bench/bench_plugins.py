"""Plugin overhead: a mock endpoint with 5 before_request plugins vs the same endpoint without plugins.

Run: .venv/bin/python bench/bench_plugins.py [--plugin modify|trivial] [--seconds 5] [--rounds 5]
The plugins are 5 copies of one script: `modify` (the default, the common case) sets a request header,
`trivial` returns None. Throughput: one gunicorn (sync, 2 workers) serves both endpoints; wrk at 32
connections alternates between them. Target: with plugins / without >= 0.75. Latency: wrk at 1 connection,
the p50 the plugins add. Target: <= +60 us.
Per-phase cost (in process, no HTTP): median time of a before_request phase with 1 and 5 plugins,
inline and in a sandbox child. Targets: inline <= 20 us per hook; process <= 150 us per phase.
--instructions: user-space instructions per request inside a real worker under valgrind, with 1 and 5
plugins: the same count on every run, busy machine or not (a timing A/B here swings by 15-30 %).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from common import Server, print_row, run_wrk, worker_instructions  # noqa: E402

PLUGINS = 5
TRIVIAL = "def before_request(request):\n    return None\n"
MODIFY = 'def before_request(request):\n    request["headers"]["x-p"] = "1"\n    return request\n'
SCRIPTS = {"modify": MODIFY, "trivial": TRIVIAL}
SCRIPT = MODIFY  # set from --plugin
BODY = '{"id": 1, "name": "Kettle", "price": 29.5}'


def write_config(work: Path, isolation: str = "auto", plugins: int = PLUGINS) -> Path:
    """A config with /plain (no plugins) and /plugged (`plugins` copies of the plugin script)."""
    (work / "plugin.py").write_text(SCRIPT)
    lines = ["server: {access_log: false, watch: false}", "plugins:"]
    for index in range(plugins):
        lines += [f"  p{index}:", "    script: plugin.py", "    endpoints: [plugged]", f"    isolation: {isolation}"]
    lines += ["endpoints:"]
    for name in ("plain", "plugged"):
        lines += [f"  {name}:", f"    path: /{name}", f"    mock: {{body: '{BODY}', content_type: application/json}}"]
    path = work / f"bench-{isolation}-{plugins}.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def worker_cpu_s(master_pid: int) -> float:
    """CPU seconds (user + system) used so far by the gunicorn workers of a master."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == master_pid:
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def measured(server, path: str, seconds: int) -> dict:
    """One wrk run, plus the workers' CPU time per request (robust to other load on the machine)."""
    before = worker_cpu_s(server.proc.pid)
    result = run_wrk(server.url + path, 32, seconds, threads=2)
    result["cpu_us"] = (worker_cpu_s(server.proc.pid) - before) / max(1.0, result["rps"] * seconds) * 1e6
    return result


def throughput(work: Path, seconds: int, rounds: int) -> float:
    """Print req/s with and without plugins; return the ratio of the median rounds."""
    server = Server("wsgi:app", env={"BACKWORKS_CONFIG": str(write_config(work))}, workers=2,
                    worker_class="sync", ready_path="/healthz")
    try:
        run_wrk(server.url + "/plain", 32, 1)  # warm up both workers
        run_wrk(server.url + "/plugged", 32, 1)
        plain, plugged, c1_plain, c1_plugged = [], [], [], []
        for _ in range(rounds):
            plain.append(measured(server, "/plain", seconds))
            plugged.append(measured(server, "/plugged", seconds))
            c1_plain.append(run_wrk(server.url + "/plain", 1, max(1, seconds // 2))["p50_ms"])
            c1_plugged.append(run_wrk(server.url + "/plugged", 1, max(1, seconds // 2))["p50_ms"])
        c1 = statistics.median(c1_plain), statistics.median(c1_plugged)
    finally:
        server.stop()
    mid_plain = median_round(plain)
    mid_plugged = median_round(plugged)
    print(f"Throughput, gunicorn sync x2, wrk 32 connections, median of {rounds} interleaved rounds x {seconds}s "
          f"(load average before: {os.getloadavg()[0]:.1f}):")
    print_row("mock endpoint, no plugins", mid_plain)
    print_row(f"mock endpoint, {PLUGINS} plugins", mid_plugged)
    ratio = mid_plugged["rps"] / mid_plain["rps"]
    print(f"  ratio with/without plugins: {ratio:.3f} (target >= 0.75)")
    added = (c1[1] - c1[0]) * 1000
    print(f"  1 connection: p50 {c1[0]:.3f} ms without, {c1[1]:.3f} ms with plugins: {added:+.0f} us "
          f"(target <= +60 us)")
    cpu_plain = statistics.median(r["cpu_us"] for r in plain)
    cpu_plugged = statistics.median(r["cpu_us"] for r in plugged)
    print(f"  worker CPU per request: {cpu_plain:.0f} us without, {cpu_plugged:.0f} us with plugins; "
          f"CPU ratio {cpu_plain / cpu_plugged:.3f}")
    return ratio


def median_round(results: list) -> dict:
    """The round with the median throughput."""
    return sorted(results, key=lambda r: r["rps"])[len(results) // 2]


def phase_cost(work: Path, isolation: str, plugins: int, calls: int = 2000) -> float:
    """Median microseconds of one before_request phase (request to dict, hooks, back) in process."""
    from werkzeug.test import EnvironBuilder
    from werkzeug.wrappers import Request

    from backworks.http import RequestData
    from backworks.loaded import load_runtime

    runtime = load_runtime(write_config(work, isolation, plugins))
    try:
        chain = runtime.endpoints["plugged"].plugins
        environ = EnvironBuilder(path="/plugged", headers={"Accept": "*/*", "User-Agent": "bench"}).get_environ()
        samples = []
        for _ in range(calls):
            request = RequestData(Request(environ), "plugged", {}, "id", 1024, "127.0.0.1")
            started = time.perf_counter_ns()
            chain.before_request(request)
            samples.append((time.perf_counter_ns() - started) / 1000)
        return statistics.median(samples[calls // 10:])
    finally:
        runtime.close()


def instructions(work: Path) -> None:
    """Print instructions per request in a real worker, without and with the plugins (deterministic)."""
    for plugins in (1, PLUGINS):
        counts = worker_instructions("wsgi:app", {"BACKWORKS_CONFIG": str(write_config(work, "auto", plugins))},
                                     ["/plain", "/plugged"])
        if not counts:
            print("  (valgrind is not installed: no instruction counts)")
            return
        plain, plugged = counts["/plain"], counts["/plugged"]
        print(f"  {plugins} plugin(s): {plain / 1000:7.0f}k without, {plugged / 1000:7.0f}k with: "
              f"+{(plugged - plain) / 1000:.0f}k instructions a request, ratio {plain / plugged:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--plugin", choices=sorted(SCRIPTS), default="modify")
    parser.add_argument("--instructions", action="store_true",
                        help="also count instructions per request in a worker under valgrind (about 2 minutes)")
    args = parser.parse_args()
    global SCRIPT
    SCRIPT = SCRIPTS[args.plugin]
    work = Path(tempfile.mkdtemp(prefix="bench-plugins-"))
    print(f"Plugin script ({args.plugin}), {PLUGINS} copies:\n"
          + "".join(f"    {line}\n" for line in SCRIPT.splitlines()))
    print("Per before_request phase, in process (median us):")
    for isolation in ("inline", "process"):
        one, five = phase_cost(work, isolation, 1), phase_cost(work, isolation, PLUGINS)
        print(f"  {isolation:<8} 1 plugin {one:8.1f} us   {PLUGINS} plugins {five:8.1f} us   "
              f"per extra hook {(five - one) / (PLUGINS - 1):6.1f} us")
    throughput(work, args.seconds, args.rounds)
    if args.instructions:
        print("Instructions per request in one gunicorn sync worker (callgrind, user space, deterministic):")
        instructions(work)


if __name__ == "__main__":
    main()
