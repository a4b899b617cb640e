"""Per-hook overhead of the sandbox: a trivial before_request, inline and in a sandbox child.

Run: .venv/bin/python bench/bench_sandbox.py [--calls 5000]
Baseline: the same function called as plain Python in the same run. Targets: inline <= 20 us per hook;
process isolation <= 150 us for the phase round trip of one trivial hook (one round trip serves all plugins
of a phase; the five-plugin process row is information).
The last two rows, without a target, time phases that each follow 5 ms of idleness: on a VM an idle CPU
halts, and the first tens of microseconds after it wakes run several times slower (caches gone cold).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from backworks.sandbox import Budget, Sandbox, Step, compile_script  # noqa: E402

TRIVIAL = "def before_request(request):\n    return None\n"
IDLE_S = 0.005
REQUEST = {"method": "GET", "path": "/orders/7", "path_params": {"id": "7"}, "query": {"page": "1"},
           "headers": {"host": "127.0.0.1", "accept": "*/*", "user-agent": "bench"}, "body": None, "json": None,
           "client_ip": "127.0.0.1", "endpoint": "orders"}


def median_us(function, calls: int, idle_s: float = 0.0) -> float:
    """Median wall time of one call, in microseconds; with `idle_s`, each call follows that long a sleep."""
    for _ in range(min(200, calls)):
        function()
    samples = []
    for _ in range(calls):
        if idle_s:
            time.sleep(idle_s)
        started = time.perf_counter()
        function()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1e6


def phase_cost(isolation: str, plugins: int, calls: int, idle_s: float = 0.0) -> float:
    """Median time of one before_request phase with `plugins` trivial plugins."""
    box = Sandbox(isolation, {})
    script = compile_script(TRIVIAL, "trivial.py")
    steps = []
    for n in range(plugins):
        assert box.load(f"p{n}", script, {}, Budget()).ok
        steps.append(Step(f"p{n}", Budget(), "open"))
    try:
        return median_us(lambda: box.run_phase("before_request", steps, REQUEST), calls, idle_s)
    finally:
        box.close()


def main() -> None:
    """Print the medians and their ratios to the plain-Python baseline."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5000)
    calls = parser.parse_args().calls
    scope: dict = {}
    exec(TRIVIAL, scope)
    plain = scope["before_request"]
    baseline = median_us(lambda: plain(REQUEST), calls)
    rows = [("plain Python call (baseline)", baseline, None, None)]
    for isolation, plugins, target in (("inline", 1, 20), ("inline", 5, 20), ("process", 1, 150),
                                       ("process", 5, None)):
        cost = phase_cost(isolation, plugins, calls)
        per_hook = cost / plugins
        measured = per_hook if isolation == "inline" else cost
        label = f"{isolation}, {plugins} plugin(s): phase {cost:8.1f} us, per hook {per_hook:7.1f} us"
        rows.append((label, measured, target, "per hook" if isolation == "inline" else "per phase"))
    for isolation in ("inline", "process"):  # what a request pays when the server was idle: no target
        cost = phase_cost(isolation, 1, max(50, calls // 20), IDLE_S)
        rows.append((f"{isolation}, 1 plugin(s), each phase after {IDLE_S * 1000:.0f} ms idle (information)", cost,
                     None, None))
    print(f"{'what':70} {'median us':>10} {'x baseline':>11} {'target':>16}")
    for label, value, target, unit in rows:
        verdict = "" if target is None else f"<= {target} {unit} {'ok' if value <= target else 'MISSED'}"
        print(f"{label:70} {value:10.2f} {value / baseline:11.0f} {verdict:>16}")


if __name__ == "__main__":
    main()
