"""bench/run_all.py, without running a bench: its table, its patterns on the benches' summary lines, its page."""
from __future__ import annotations

import importlib.util
import sys

import pytest

from tests.helpers.basics import ROOT

_spec = importlib.util.spec_from_file_location("run_all", ROOT / "bench" / "run_all.py")
run_all = sys.modules["run_all"] = importlib.util.module_from_spec(_spec)  # bench/ is not a package
_spec.loader.exec_module(run_all)
Metric = run_all.Metric

# Summary lines in the formats of each bench's print statements today.
OUTPUTS = {
    "memory": """
  server                             processes  master MB  2 workers MB  total PSS MB  x Flask  first 200 ms  x Flask
  bare Flask                                 3       12.0          34.8          46.8     1.00           408     1.00
  Backworks mock-only                        3       15.3          30.3          45.5     0.97           501     1.23
  Backworks proxy                            3       17.1          33.3          50.4     1.08           912     2.23
  Backworks full example                     3       29.1          57.1          86.2     1.84          2389     5.85
mock-only total PSS: 45.5 MB, 0.97x bare Flask (target <= 60 MB)
mock-only start-up to first 200: 501 ms, 1.23x bare Flask (target <= 400 ms)
""",
    "mock": """
Backworks mock: throughput ratio 1.14 (target >= 0.90); 1-conn p50 ratio 0.95 (target <= 1.20)
Backworks mock + access log: throughput ratio 1.02 (target >= 0.90); 1-conn p50 ratio 1.01 (target <= 1.20)
""",
    "gthread": """
  bare WSGI, sync               7681 req/s  1.00x (1.00-1.00)   CPU 123 us/req, 1.00x; 1.01x of bare gthread
  bare WSGI, gthread           10967 req/s  1.54x (1.22-1.85)   CPU 122 us/req, 0.99x; 1.00x of bare gthread
  bare Flask, gthread           8327 req/s  1.23x (0.81-1.65)   CPU 199 us/req, 1.62x; 1.63x of bare gthread
  Backworks mock, sync          7200 req/s  1.09x (0.66-1.52)   CPU 166 us/req, 1.34x; 1.36x of bare gthread
  Backworks mock, gthread       9241 req/s  1.36x (0.91-1.81)   CPU 164 us/req, 1.33x; 1.34x of bare gthread
Backworks mock, gthread / bare WSGI, sync: throughput ratio 1.36 (target >= 1.00)
""",
    "proxy": """
  Backworks proxy / Flask+requests (c32): 1.60x   (target >= 1.4x)
  added p50 at c1, Backworks proxy: 0.412 ms   (target < 0.8 ms; Flask+requests adds 0.9 ms, the bare 0.3 ms)
  capture / proxy throughput (c32): 0.91x   (target >= 0.8x)
""",
    "nginx": """
  nginx alone, keep-alive pool / direct: 1.03x   per round: 1.06, 1.01
  nginx alone, connection per request / direct: 0.68x   per round: 0.68, 0.69
  nginx + Backworks, hand-off off / direct: 0.28x   per round: 0.21, 0.35
  nginx + Backworks, hand-off on / direct: 0.31x   (target >= 0.50x)   per round: 0.32, 0.30
  nginx + Backworks mock (no upstream) / direct: 0.45x   per round: 0.44, 0.46
""",
    "plugins": """
Per before_request phase, in process (median us):
  inline   1 plugin     16.0 us   5 plugins    75.0 us   per extra hook   14.8 us
  process  1 plugin    120.0 us   5 plugins   160.0 us   per extra hook   10.0 us
  ratio with/without plugins: 0.610 (target >= 0.75)
  1 connection: p50 0.243 ms without, 0.481 ms with plugins: +238 us (target <= +60 us)
""",
    "database": """
SQLite     get : Backworks     2100 req/s, hand-written     2200 req/s, ratio 0.95 (target >= 0.85)
SQLite     list: Backworks     1500 req/s, hand-written     1600 req/s, ratio 0.94 (target >= 0.85)
""",
    "ops": """
in-process, 20000 calls: without recording 40.1 us/request; with metrics + ring 44.0 us/request; overhead 3.9 us (1.10x)
Backworks, gunicorn.conf.py: median 3000 req/s, throughput ratio 0.97 vs bare Flask (target >= 0.90); """
    """worker CPU 300 us/request, ratio 1.00
""",
    "sandbox": """
inline, 1 plugin(s): phase     14.0 us, per hook    14.0 us                     14.00          35   <= 20 per hook ok
process, 1 plugin(s): phase    120.5 us, per hook   120.5 us                   120.50         301 <= 150 per phase ok
inline, 1 plugin(s), each phase after 5 ms idle (information)                     40.00         100
""",
}
EXPECTED = {
    "memory": [45.5, 0.97, 1.08, 1.84, 501, 1.23, 2.23, 5.85],
    "mock": [1.14, 0.95, 1.02],
    "gthread": [1.36, 1.54, 1.23, 1.34],
    "proxy": [1.60, 0.412, 0.91],
    "nginx": [0.31, 0.28, 1.03, 0.45],
    "plugins": [0.610, 238, 14.8],
    "database": [0.95, 0.94, None, None],  # PostgreSQL was not reachable
    "ops": [1.10, 0.97],
    "sandbox": [14.0, 120.5],
}


@pytest.mark.parametrize("bench", run_all.BENCHES, ids=lambda bench: bench.name)
def test_each_metric_is_read_from_its_benchs_summary_lines(bench):
    assert [run_all.find(metric, OUTPUTS[bench.name]) for metric in bench.metrics] == EXPECTED[bench.name]


def test_the_table_shows_value_target_and_verdict_of_each_row():
    results = [
        ("memory", Metric("mock-only PSS", "", "MB", "<=", 60), 45.5),
        ("mock", Metric("mock / Flask", "", "x", ">=", 0.9), 0.874),
        ("ops", Metric("in process", "", "x"), 1.1),
        ("database", Metric("PostgreSQL get", "", "x", ">=", 0.85), None),
        ("proxy", Metric("added p50", "", "ms", "<=", 0.8), 0.412),
        ("memory", Metric("start-up", "", "ms", "<=", 400), 501.4),
    ]
    assert run_all.table(results).splitlines() == [
        "| bench | measure | result | target | |",
        "|---|---|---|---|---|",
        "| memory | mock-only PSS | 45.5 MB | <= 60.0 MB | met |",
        "| mock | mock / Flask | 0.87x | >= 0.90x | MISSED |",
        "| ops | in process | 1.10x | - |  |",
        "| database | PostgreSQL get | - | >= 0.85x | not found |",
        "| proxy | added p50 | 0.412 ms | <= 0.800 ms | met |",
        "| memory | start-up | 501 ms | <= 400 ms | MISSED |",
    ]


def test_the_page_names_date_machine_load_and_versions():
    facts = {"cores": 2, "model": "Test CPU @ 1.00GHz", "kernel": "6.1", "commit": "abc1234", "python": "3.11.7"}
    results = [("mock", Metric("mock / Flask", "", "x", ">=", 0.9), 1.14)]
    text = run_all.document(results, {"mock": "Backworks mock: throughput ratio 1.14"}, facts, (3.25, 4.5),
                            "gunicorn 27.0.1, Flask 3.1.3", quick=False)
    assert text.startswith("# Performance\n\nMeasured 20")
    assert "at commit abc1234, on 2 cores (Test CPU @ 1.00GHz), Linux 6.1, Python 3.11.7; load average 3.25 " \
           "before, 4.50 after." in text
    assert "Versions: gunicorn 27.0.1, Flask 3.1.3." in text
    assert ("Not run this time (`--only`): memory, gthread, proxy, nginx, plugins, database, ops, sandbox.\n\n"
            "| bench |") in text
    assert "| mock | mock / Flask | 1.14x | >= 0.90x | met |" in text
    assert "<details><summary>mock</summary>\n\n```\nBackworks mock: throughput ratio 1.14\n```" in text


def test_the_hand_written_notes_of_the_old_page_are_kept_at_the_end_of_the_new_one(tmp_path):
    facts = {"cores": 2, "model": "Test CPU", "kernel": "6.1", "commit": "abc1234", "python": "3.11.7"}
    results = [("mock", Metric("mock / Flask", "", "x", ">=", 0.9), 1.14)]
    notes = f"{run_all.NOTES}\n\n### gthread (2026-12-07)\n\nWhere the time goes.\n"
    old = tmp_path / "performance.md"
    old.write_text(run_all.document(results, {"mock": "old output"}, facts, (1, 2), "gunicorn", False, notes))
    assert run_all.kept_notes(old) == notes
    new = run_all.document(results, {"mock": "new output"}, facts, (1, 2), "gunicorn", False, run_all.kept_notes(old))
    assert new.endswith("```\nnew output\n```\n</details>\n\n" + notes)
    assert run_all.kept_notes(tmp_path / "missing.md") == ""
