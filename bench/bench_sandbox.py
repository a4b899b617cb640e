"""Per-hook overhead of the sandbox: a trivial before_request, inline and in a sandbox child.

Run: .venv/bin/python bench/bench_sandbox.py [--calls 5000] [--rounds 5]
Baseline: the same function called as plain Python in the same run. Targets: inline <= 20 us per hook;
process isolation <= 150 us for the phase round trip of one trivial hook (one round trip serves all plugins
of a phase; the five-plugin process row is information).
The cases run in interleaved rounds and each median pools all rounds, so that a slow spell of the machine
weighs on every case alike. The last two rows, without a target, time phases that each follow 5 ms of
idleness: on a VM an idle CPU halts, and the first tens of microseconds after it wakes run several times
slower (caches gone cold).
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
# This VM runs a process's first 0.1-0.3 s of busy time at about half speed (measured: a small dict loop
# took 750-900 ns, then 490 ns), and later falls back into that state for seconds at a time.
WARM_UP_S = 1.0
REQUEST = {"method": "GET", "path": "/orders/7", "path_params": {"id": "7"}, "query": {"page": "1"},
           "headers": {"host": "127.0.0.1", "accept": "*/*", "user-agent": "bench"}, "body": None, "json": None,
           "client_ip": "127.0.0.1", "endpoint": "orders"}


def timed_us(function, calls: int, idle_s: float = 0.0) -> list:
    """Wall times of `calls` calls, in microseconds; with `idle_s`, each call follows that long a sleep."""
    samples = []
    for _ in range(calls):
        if idle_s:
            time.sleep(idle_s)
        started = time.perf_counter()
        function()
        samples.append((time.perf_counter() - started) * 1e6)
    return samples


def loaded_box(isolation: str, plugins: int) -> tuple:
    """A sandbox with `plugins` trivial plugins, and the steps of their before_request phase."""
    box = Sandbox(isolation, {})
    script = compile_script(TRIVIAL, "trivial.py")
    steps = []
    for n in range(plugins):
        assert box.load(f"p{n}", script, {}, Budget()).ok
        steps.append(Step(f"p{n}", Budget(), "open"))
    return box, steps


def main() -> None:
    """Print the medians and their ratios to the plain-Python baseline."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    scope: dict = {}
    exec(TRIVIAL, scope)
    plain = scope["before_request"]
    cases = [("plain Python call (baseline)", None, 0, None, 0.0), ("inline", "inline", 1, 20, 0.0),
             ("inline", "inline", 5, 20, 0.0), ("process", "process", 1, 150, 0.0),
             ("process", "process", 5, None, 0.0), ("inline", "inline", 1, None, IDLE_S),
             ("process", "process", 1, None, IDLE_S)]
    boxes = {}
    calls = {}
    for _, isolation, plugins, _, idle_s in cases:
        if isolation is None:
            boxes[isolation, plugins] = (None, (lambda: plain(REQUEST)))
        elif (isolation, plugins) not in boxes:
            box, steps = loaded_box(isolation, plugins)
            boxes[isolation, plugins] = (box, lambda box=box, steps=steps: box.run_phase("before_request", steps,
                                                                                           REQUEST))
        calls[isolation, plugins, idle_s] = max(10, (args.calls // 20 if idle_s else args.calls) // args.rounds)
    samples: dict = {key: [] for key in calls}
    try:
        warm_until = time.monotonic() + WARM_UP_S
        while time.monotonic() < warm_until:
            for _, run in boxes.values():
                timed_us(run, 50)
        for _ in range(args.rounds):  # interleaved: a slow spell of the machine hits every case alike
            for key, count in calls.items():
                samples[key] += timed_us(boxes[key[:2]][1], count, key[2])
    finally:
        for box, _ in boxes.values():
            if box is not None:
                box.close()
    baseline = statistics.median(samples[None, 0, 0.0])
    print(f"{'what':70} {'median us':>10} {'x baseline':>11} {'target':>16}")
    for label, isolation, plugins, target, idle_s in cases:
        cost = statistics.median(samples[isolation, plugins, idle_s])
        if isolation is None:
            print(f"{label:70} {cost:10.2f} {1:11.0f}")
            continue
        if idle_s:
            label = f"{label}, 1 plugin(s), each phase after {idle_s * 1000:.0f} ms idle (information)"
            value, verdict = cost, ""
        else:
            per_hook = cost / plugins
            label = f"{label}, {plugins} plugin(s): phase {cost:8.1f} us, per hook {per_hook:7.1f} us"
            unit = "per hook" if isolation == "inline" else "per phase"
            value = per_hook if isolation == "inline" else cost
            verdict = "" if target is None else f"<= {target} {unit} {'ok' if value <= target else 'MISSED'}"
        print(f"{label:70} {value:10.2f} {value / baseline:11.0f} {verdict:>16}")


if __name__ == "__main__":
    main()
