"""`backworks new-plugin` and `backworks test-plugin`: write a plugin template, run a hook under the sandbox."""
from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import click

from backworks.plugins.contract import HOOKS
from backworks.plugins.devkit import DevkitError, new_plugin, run_hook

logger = logging.getLogger(__name__)


@click.command("new-plugin")
@click.argument("name")
@click.option("--scripts-dir", default="plugins_scripts", show_default=True, type=click.Path(file_okay=False),
              help="Where the script goes.")
@click.option("--tests-dir", default="tests/plugins", show_default=True, type=click.Path(file_okay=False),
              help="Where its test goes.")
def new_plugin_command(name, scripts_dir, tests_dir):
    """Write plugins_scripts/NAME.py (every hook documented) and a test that runs it under the sandbox."""
    try:
        script, test = new_plugin(name, Path(scripts_dir), Path(tests_dir))
    except DevkitError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    click.echo(f"wrote {script}\nwrote {test}\nrun its test: backworks test-plugin --tests {test}"
               f"\n(or, with pytest installed: python -m pytest {test})")


@click.command("test-plugin")
@click.argument("script", type=click.Path(dir_okay=False), required=False)
@click.option("--tests", "tests_file", type=click.Path(dir_okay=False),
              help="Run the test_* functions of this file (as written by new-plugin) without pytest.")
@click.option("--request", "request_file", type=click.Path(dir_okay=False),
              help="JSON file with the request (missing fields get defaults).")
@click.option("--response", "response_file", type=click.Path(dir_okay=False),
              help="JSON file with the response after_response receives.")
@click.option("--hook", default="before_request", show_default=True, type=click.Choice(HOOKS))
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="JSON file with the plugin's config.")
@click.option("--isolation", default="inline", show_default=True, type=click.Choice(["inline", "process"]))
@click.option("--timeout-ms", default=100, show_default=True, type=click.IntRange(1, 60000))
@click.option("--memory-mb", default=64, show_default=True, type=click.IntRange(8, 4096))
def test_plugin_command(script, tests_file, request_file, response_file, hook, config_file, isolation, timeout_ms,
                        memory_mb):
    """Run one hook of SCRIPT under the real sandbox; print the result, time and peak memory."""
    if tests_file:
        _run_tests(tests_file)
        return
    if not script:
        raise click.UsageError("give a SCRIPT to run one hook, or --tests TEST_FILE to run a plugin's tests")
    try:
        run = run_hook(script, hook, _read_json(request_file, "request"), _read_json(response_file, "response"),
                       _read_json(config_file, "config"), isolation, timeout_ms, memory_mb)
    except DevkitError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    outcome = run.outcome
    for line in outcome.logs or ():
        click.echo(f"log: {line}")
    click.echo(f"hook: {hook} ({run.isolation} isolation, budget {timeout_ms} ms / {memory_mb} MB)")
    click.echo(f"outcome: {outcome.kind}")
    if run.ok:
        click.echo("result: " + json.dumps(run.result, indent=2, ensure_ascii=False, default=repr))
    else:
        click.echo(f"error: {outcome.message}", err=True)
        if outcome.traceback:
            click.echo(str(outcome.traceback).rstrip(), err=True)
    click.echo(f"time: {run.duration_ms:.3f} ms")
    peak = "not measured (process isolation)" if run.peak_bytes is None else _size(run.peak_bytes)
    click.echo(f"peak memory: {peak}")
    if not run.ok:
        sys.exit(1)


def _run_tests(tests_file: str) -> None:
    from backworks.plugins.testing import run_test_file  # start-up cost: only for this command

    try:
        results = run_test_file(tests_file)
    except DevkitError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    for result in results:
        click.echo(f"PASS {result.name}" if result.passed else f"FAIL {result.name}: {result.message}")
    failed = sum(not r.passed for r in results)
    click.echo(f"{len(results) - failed} passed, {failed} failed ({tests_file})")
    if failed or not results:
        sys.exit(1)


def _read_json(path, what: str):
    if not path:
        return None
    try:
        value = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise click.ClickException(f"cannot read the {what} file {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise click.ClickException(f"the {what} file {path} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise click.ClickException(f"the {what} file {path} must hold a JSON object, not {type(value).__name__}")
    return value


def _size(count: int) -> str:
    return f"{count / 1024:.1f} KiB" if count < 1024 * 1024 else f"{count / 1024 / 1024:.2f} MiB"


COMMANDS = (new_plugin_command, test_plugin_command)
