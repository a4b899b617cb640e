"""Run every benchmark in bench/, print one table of ratios against targets, write it to docs/performance.md.

Run: .venv/bin/python bench/run_all.py [--quick] [--only memory,mock,...] [--output docs/performance.md]
Each bench runs as its own process from the repository root, one after the other (never two at once: they
would measure each other), and its summary lines are read back with the patterns below. A bench whose output
no longer matches shows "not found" for that row rather than a guess. Dated, with the machine (cores, CPU
model, load average before and after) and the versions measured. Takes about 12 minutes; 4 with --quick.
The page's hand-written notes, from the NOTES heading on, are kept when the page is written again.
Never run by CI or the test suite: on a shared machine the numbers mean little (tests/test_run_all.py checks
the table with fake results).
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
OUTPUT = ROOT / "docs" / "performance.md"
NUMBER = r"([-+]?\d+(?:\.\d+)?)"
NOTES = "## Notes (written by hand, kept by bench/run_all.py)"
PACKAGES = ("gunicorn", "Flask", "Werkzeug", "Cerberus", "SQLAlchemy", "urllib3", "RestrictedPython",
            "prometheus_client", "PyYAML")


@dataclass(frozen=True)
class Metric:
    """One row of the table: a number found in a bench's output by `pattern`, and its target."""

    label: str
    pattern: str  # a regular expression whose first group is the number
    unit: str = "x"  # "x" for a ratio, else the unit of an absolute figure
    op: str = ""  # ">=", "<=" or "" (information only)
    target: float = 0.0


@dataclass(frozen=True)
class Bench:
    """One bench script: its arguments (normal and --quick) and the metrics read from its output."""

    name: str
    script: str
    args: tuple
    quick: tuple
    metrics: tuple


BENCHES = (
    Bench("memory", "bench_memory.py", ("--rounds", "5"), ("--rounds", "2", "--requests", "50"), (
        Metric("mock-only config: PSS, master + 2 workers", r"mock-only total PSS: " + NUMBER, "MB", "<=", 60),
        Metric("mock-only PSS / bare Flask", r"mock-only total PSS: [\d.]+ MB, " + NUMBER + "x"),
        Metric("proxy config PSS / bare Flask", r"Backworks proxy +\d+ +[\d.]+ +[\d.]+ +[\d.]+ +" + NUMBER),
        Metric("full example PSS / bare Flask", r"Backworks full example +\d+ +[\d.]+ +[\d.]+ +[\d.]+ +" + NUMBER),
        Metric("mock-only start-up to first 200", r"mock-only start-up to first 200: " + NUMBER, "ms", "<=", 400),
        Metric("mock-only start-up / bare Flask", r"mock-only start-up to first 200: [\d.]+ ms, " + NUMBER + "x"),
        Metric("proxy config start-up / bare Flask", r"Backworks proxy" + r" +[\d.]+" * 6 + " +" + NUMBER),
        Metric("full example start-up / bare Flask", r"Backworks full example" + r" +[\d.]+" * 6 + " +" + NUMBER),
    )),
    Bench("mock", "bench_mock.py", ("--seconds", "5", "--rounds", "5"), ("--seconds", "2", "--rounds", "2"), (
        Metric("mock endpoint / bare Flask, c32", r"Backworks mock: throughput ratio " + NUMBER, "x", ">=", 0.9),
        Metric("mock endpoint p50 / bare Flask, c1", r"Backworks mock: .*1-conn p50 ratio " + NUMBER, "x", "<=",
               1.2),
        Metric("mock + access log / bare Flask, c32", r"Backworks mock \+ access log: throughput ratio " + NUMBER,
               "x", ">=", 0.9),
    )),
    Bench("gthread", "bench_gthread.py", ("--seconds", "5", "--rounds", "3"), ("--seconds", "2", "--rounds", "2"), (
        Metric("mock under gthread 2x4 / bare WSGI sync, c32",
               r"Backworks mock, gthread / bare WSGI, sync: throughput ratio " + NUMBER, "x", ">=", 1.0),
        Metric("bare WSGI gthread / bare WSGI sync, c32", r"bare WSGI, gthread +\d+ req/s +" + NUMBER + "x"),
        Metric("bare Flask gthread / bare WSGI sync, c32", r"bare Flask, gthread +\d+ req/s +" + NUMBER + "x"),
        Metric("mock under gthread: worker CPU / bare WSGI gthread's",
               r"Backworks mock, gthread .*us/req, [\d.]+x; " + NUMBER + "x of bare gthread"),
    )),
    Bench("proxy", "bench_proxy.py", ("--seconds", "3", "--rounds", "5"), ("--seconds", "2", "--rounds", "2"), (
        Metric("proxy / Flask+requests, c32", r"Backworks proxy / Flask\+requests \(c32\): " + NUMBER, "x", ">=",
               1.4),
        Metric("proxy: added p50 at c1", r"added p50 at c1, Backworks proxy: " + NUMBER, "ms", "<=", 0.8),
        Metric("capture / proxy, c32", r"capture / proxy throughput \(c32\): " + NUMBER, "x", ">=", 0.8),
    )),
    Bench("nginx", "bench_nginx.py", ("--seconds", "5", "--rounds", "3"), ("--seconds", "3", "--rounds", "1"), (
        Metric("via nginx, hand-off on / direct, c32", r"hand-off on / direct: " + NUMBER, "x", ">=", 0.5),
        Metric("via nginx, hand-off off / direct, c32", r"hand-off off / direct: " + NUMBER),
        Metric("nginx alone (keep-alive) / direct, c32", r"nginx alone, keep-alive pool / direct: " + NUMBER),
        Metric("mock via nginx / direct, c32", r"Backworks mock \(no upstream\) / direct: " + NUMBER),
    )),
    Bench("plugins", "bench_plugins.py", ("--seconds", "5", "--rounds", "5"), ("--seconds", "2", "--rounds", "2"), (
        Metric("5 plugins / no plugins, c32", r"ratio with/without plugins: " + NUMBER, "x", ">=", 0.75),
        Metric("5 plugins: p50 added at c1", r"1 connection: p50 .* with plugins: " + NUMBER + " us", "us", "<=", 60),
        Metric("inline: per extra hook", r"inline +1 plugin.*per extra hook +" + NUMBER, "us", "<=", 20),
    )),
    Bench("database", "bench_database.py", ("--seconds", "3", "--rounds", "3"), ("--seconds", "2", "--rounds", "1"), (
        Metric("SQLite get / hand-written", r"SQLite +get +:.*ratio " + NUMBER, "x", ">=", 0.85),
        Metric("SQLite list / hand-written", r"SQLite +list:.*ratio " + NUMBER, "x", ">=", 0.85),
        Metric("PostgreSQL get / hand-written", r"PostgreSQL +get +:.*ratio " + NUMBER, "x", ">=", 0.85),
        Metric("PostgreSQL list / hand-written", r"PostgreSQL +list:.*ratio " + NUMBER, "x", ">=", 0.85),
    )),
    Bench("ops", "bench_ops.py", ("--seconds", "3", "--rounds", "3"), ("--seconds", "2", "--rounds", "1",
                                                                       "--calls", "5000"), (
        Metric("metrics + ring, in process", r"with metrics \+ ring .*\(" + NUMBER + "x\\)", "x"),
        Metric("shipped gunicorn.conf.py / bare Flask, c32",
               r"Backworks, gunicorn\.conf\.py: .*throughput ratio " + NUMBER, "x", ">=", 0.9),
    )),
    Bench("sandbox", "bench_sandbox.py", ("--rounds", "5"), ("--calls", "2000", "--rounds", "3"), (
        Metric("inline hook, 1 plugin", r"inline, 1 plugin\(s\): phase.*per hook +" + NUMBER, "us", "<=", 20),
        Metric("process phase, 1 plugin", r"process, 1 plugin\(s\): phase +" + NUMBER, "us", "<=", 150),
    )),
)


def find(metric: Metric, output: str) -> float | None:
    """The metric's number in a bench's output (the last match), or None."""
    found = re.findall(metric.pattern, output)
    return float(found[-1]) if found else None


def verdict(metric: Metric, value: float | None) -> str:
    """"met", "MISSED", "not found", or "" for a figure without a target."""
    if value is None:
        return "not found"
    if not metric.op:
        return ""
    met = value >= metric.target if metric.op == ">=" else value <= metric.target
    return "met" if met else "MISSED"


def shown(value: float | None, unit: str) -> str:
    """A figure as the table shows it: ratios with two decimals and an x, others with their unit."""
    if value is None:
        return "-"
    if unit == "x":
        return f"{value:.2f}x"
    digits = 3 if abs(value) < 10 else 1 if abs(value) < 100 else 0
    return f"{value:.{digits}f} {unit}"


def table(results: list) -> str:
    """A Markdown table of (bench name, metric, value or None) rows."""
    lines = ["| bench | measure | result | target | |", "|---|---|---|---|---|"]
    for name, metric, value in results:
        target = f"{metric.op} {shown(metric.target, metric.unit)}" if metric.op else "-"
        lines.append(f"| {name} | {metric.label} | {shown(value, metric.unit)} | {target} | "
                     f"{verdict(metric, value)} |")
    return "\n".join(lines)


def machine() -> dict:
    """Facts about where the numbers come from."""
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor() or "unknown")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip() or "unknown"
    return {"cores": os.cpu_count(), "model": model, "kernel": platform.release(), "commit": commit,
            "python": platform.python_version()}


def versions() -> str:
    """Versions of the measured stack, one line."""
    found = []
    for package in PACKAGES:
        try:
            found.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            continue
    wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True)
    if wrk.stdout or wrk.stderr:
        found.append((wrk.stdout or wrk.stderr).split(" [")[0].strip())
    return ", ".join(found)


def run_bench(bench: Bench, quick: bool) -> tuple[str, float]:
    """Run one bench to the end; return its output (stdout and stderr) and its wall time."""
    started = time.monotonic()
    args = bench.quick if quick else bench.args
    done = subprocess.run([sys.executable, str(BENCH / bench.script), *args], cwd=ROOT, capture_output=True,
                          text=True)
    output = done.stdout + (f"\n[exit status {done.returncode}]\n{done.stderr[-2000:]}" if done.returncode else "")
    return output, time.monotonic() - started


def kept_notes(path: Path) -> str:
    """The hand-written notes of the page at `path`: from the NOTES heading to the end ("" when none)."""
    text = path.read_text() if path.exists() else ""
    at = text.find(NOTES)
    return text[at:].strip() + "\n" if at >= 0 else ""


def document(results: list, outputs: dict, facts: dict, loads: tuple, stack: str, quick: bool,
             notes: str = "") -> str:
    """The text of docs/performance.md; `notes` (kept_notes of the old page) goes at the end."""
    when = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    left_out = [bench.name for bench in BENCHES if bench.name not in outputs]
    not_run = f"Not run this time (`--only`): {', '.join(left_out)}.\n\n" if left_out else ""
    details = "\n".join(f"<details><summary>{name}</summary>\n\n```\n{text.strip()}\n```\n</details>\n"
                        for name, text in outputs.items())
    return (f"# Performance\n\nMeasured {when} by `bench/run_all.py`{' --quick' if quick else ''} at commit "
            f"{facts['commit']}, on {facts['cores']} cores ({facts['model']}), Linux {facts['kernel']}, Python "
            f"{facts['python']}; load average {loads[0]:.2f} before, {loads[1]:.2f} after.\n"
            f"Versions: {stack}.\n\n"
            "Ratios compare Backworks with a reference measured in the same run (bare Flask, Flask + requests, "
            "hand-written SQLAlchemy, plain Python), so that load from elsewhere on the machine weighs on both. "
            "Every server runs under gunicorn, sync workers, 2 workers (the gthread bench: also 2 workers of 4 "
            "threads). Regenerate this file with "
            "`.venv/bin/python bench/run_all.py` on a quiet machine; each bench's own docstring says what it "
            "measures.\n\n" + not_run + table(results) + "\n\n## Output of each bench\n\n" + details
            + (f"\n{notes}" if notes else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds and seconds (a rough look)")
    parser.add_argument("--only", default="", help="comma-separated bench names: "
                        + ", ".join(bench.name for bench in BENCHES))
    parser.add_argument("--output", type=Path, default=OUTPUT, help="where to write the Markdown (- for none)")
    args = parser.parse_args()
    wanted = {name.strip() for name in args.only.split(",") if name.strip()}
    unknown = wanted - {bench.name for bench in BENCHES}
    if unknown:
        parser.error(f"unknown bench(es): {', '.join(sorted(unknown))}")
    before = os.getloadavg()[0]
    results, outputs = [], {}
    for bench in BENCHES:
        if wanted and bench.name not in wanted:
            continue
        print(f"running {bench.script} ...", flush=True)
        output, seconds = run_bench(bench, args.quick)
        outputs[bench.name] = output
        results += [(bench.name, metric, find(metric, output)) for metric in bench.metrics]
        print(f"  done in {seconds:.0f} s", flush=True)
    notes = kept_notes(args.output) if str(args.output) != "-" else ""
    text = document(results, outputs, machine(), (before, os.getloadavg()[0]), versions(), args.quick, notes)
    print(table(results))
    if str(args.output) != "-":
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text)
        print(f"written to {args.output}")


if __name__ == "__main__":
    main()
