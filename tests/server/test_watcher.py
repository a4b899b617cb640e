"""Hot reload of plugin scripts and config under real gunicorn, with concurrent clients, both worker classes."""
from __future__ import annotations

import os
import threading
import time

import pytest
import requests
import yaml

SCRIPT = """
def after_response(request, response):
    return dict(response, json=dict(response["json"], version=str(config["version"]) + "/" + "{tag}"))
"""
BROKEN_SCRIPT = "def after_response(request, response:\n    return None\n"
FAILING_ON_LOAD = SCRIPT + "\n\ndef on_load(settings):\n    raise ValueError('refuse this version')\n"
# Half a second of polling plus the load (a sandbox child to start under gthread): about 0.6 s on a quiet
# machine; seen at 1.04-1.2 s on a 2-core machine running other suites alongside (docs: "about a second,
# up to 1.5 s on a busy machine").
VISIBLE_WITHIN_S = 1.5
THREADS = 4


def write_atomically(path, text: str) -> None:
    """Replace a file in one step, as editors that save through a temporary file do."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def config_text(version, broken: str = "") -> str:
    data = {"name": "reload", "server": {"access_log": False},
            "plugins": {"versioned": {"script": "versioned.py", "config": {"version": version}}},
            "endpoints": {"item": {"path": "/item", "mock": {"json": {"id": 1}}}}}
    text = yaml.safe_dump(data, sort_keys=False)
    return text + "endpoints: [\n" if broken == "yaml" else text


class Clients:
    """Threads that request /item back to back and record (start, end, status or error, version)."""

    def __init__(self, url: str):
        self.url = url
        self.results: list = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(THREADS)]

    def _run(self) -> None:
        session = requests.Session()
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                response = session.get(self.url + "/item", timeout=5)
                outcome = (response.status_code, response.json().get("version"))
            except Exception as exc:  # a dropped or failed request is what this test looks for
                outcome = (repr(exc), None)
            self.results.append((started, time.monotonic(), *outcome))

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for thread in self.threads:
            thread.join(10)


@pytest.mark.parametrize("worker_class", ["sync", "gthread"])
def test_edits_reach_every_worker_within_a_second_with_no_failed_request(tmp_path, gunicorn, worker_class):
    script = tmp_path / "versioned.py"
    config = tmp_path / "backworks.yaml"
    script.write_text(SCRIPT.format(tag="a"))
    config.write_text(config_text(1))
    extra = ("--threads", "4") if worker_class == "gthread" else ()
    server = gunicorn(config, workers=2, worker_class=worker_class, extra=extra)
    assert requests.get(server.url + "/item", timeout=5).json() == {"id": 1, "version": "1/a"}
    steps = [  # (file, new text, version expected afterwards, good change)
        (script, SCRIPT.format(tag="b"), "1/b", True),
        (script, BROKEN_SCRIPT, "1/b", False),
        (script, SCRIPT.format(tag="c"), "1/c", True),
        (config, config_text(2, broken="yaml"), "1/c", False),
        (config, config_text(2), "2/c", True),
        (script, FAILING_ON_LOAD.format(tag="x"), "2/c", False),
        (script, SCRIPT.format(tag="d"), "2/d", True),
    ]
    timeline = []
    with Clients(server.url) as clients:
        time.sleep(0.3)
        for path, text, expected, good in steps:
            written = time.monotonic()
            write_atomically(path, text)
            time.sleep(VISIBLE_WITHIN_S + 0.2 if good else 0.7)
            timeline.append((written, expected, good))
    results = clients.results
    failed = [r for r in results if r[2] != 200]
    assert failed == [], (f"{len(failed)} of {len(results)} requests failed, first: {failed[:3]}\n"
                          f"{server.output()[-3000:]}")
    assert len(results) > 100
    for index, (written, expected, good) in enumerate(timeline):
        until = timeline[index + 1][0] if index + 1 < len(timeline) else float("inf")
        window = [r for r in results if written <= r[0] and r[1] < until]
        if good:  # the last request that still saw the old version started this long after the write
            stale = [r[0] - written for r in window if r[3] != expected]
            assert max(stale, default=0) < VISIBLE_WITHIN_S, (
                f"step {index}: {expected!r} reached every worker only after {max(stale):.2f} s")
        seen = {r[3] for r in window if r[0] >= written + (VISIBLE_WITHIN_S if good else 0)}
        assert seen == {expected}, f"step {index}: expected only {expected!r} after the change, saw {seen}"
    log = server.output()
    assert "reload (files changed) refused, still serving the previous config" in log
    assert "versioned.py:1: " in log  # the broken script's own line
    assert "refuse this version" in log
    isolation = "inline" if worker_class == "sync" else "process"
    assert "plugin versioned loaded from" in log and f"({isolation} isolation)" in log


def test_check_reports_a_broken_script_that_reload_refused(tmp_path):
    from click.testing import CliRunner

    from backworks.cli.main import cli

    (tmp_path / "versioned.py").write_text(BROKEN_SCRIPT)
    config = tmp_path / "backworks.yaml"
    config.write_text(config_text(1))
    result = CliRunner().invoke(cli, ["check", str(config)])
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[0].startswith(f"{config}:6: plugins.versioned.script: ")
    assert "versioned.py:1: " in lines[0]
    assert lines[-1] == f"1 problem(s) in {config}"
