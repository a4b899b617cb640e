"""The plugin developer kit: run one hook of a script under the real sandbox; write a new plugin's files."""
from __future__ import annotations

import logging
import re
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path

from backworks.plugins.contract import HOOKS

logger = logging.getLogger(__name__)

NAME = re.compile(r"^[a-z][a-z0-9_]*$")
DEFAULT_STATE = {"url": None, "max_keys": 10000, "max_value_bytes": 65536, "max_bytes": 4194304}


def sample_request(**fields) -> dict:
    """A complete plain-data request (GET /), with `fields` replacing the defaults."""
    request = {"method": "GET", "path": "/", "path_params": {}, "query": {}, "headers": {}, "body": None,
               "json": None, "client_ip": "127.0.0.1", "endpoint": "test"}
    request.update(fields)
    return request


def sample_response(**fields) -> dict:
    """A complete plain-data response (200, empty JSON object), with `fields` replacing the defaults."""
    response = {"status": 200, "headers": {"content-type": "application/json"}, "json": {}}
    if "body" in fields:
        response.pop("json")
    response.update(fields)
    return response


@dataclass
class HookRun:
    """What one hook run produced: the sandbox outcome, the hook's result, time and peak memory."""

    outcome: object
    result: object
    duration_ms: float
    peak_bytes: int | None
    isolation: str

    @property
    def ok(self) -> bool:
        """True when the hook (and the script's load) succeeded."""
        return bool(self.outcome.ok)


class DevkitError(Exception):
    """The script cannot be run: unreadable, refused by the sandbox, or lacking the hook."""


def run_hook(script_path, hook: str = "before_request", request: dict | None = None,
             response: dict | None = None, config: dict | None = None, isolation: str = "inline",
             timeout_ms: int = 100, memory_mb: int = 64, state_settings: dict | None = None) -> HookRun:
    """Load a script (module body + on_load) in a fresh sandbox and run one hook, as the server would."""
    # start-up cost: every CLI command imports this module; RestrictedPython loads only when a hook runs
    from backworks.sandbox import Budget, Sandbox, ScriptError, compile_script

    if hook not in HOOKS:
        raise DevkitError(f"unknown hook {hook!r} (hooks: {', '.join(HOOKS)})")
    path = Path(script_path)
    try:
        script = compile_script(path.read_text(encoding="utf-8"), str(script_path))
    except (OSError, UnicodeDecodeError) as exc:
        raise DevkitError(f"cannot read {script_path}: {exc}") from None
    except ScriptError as exc:
        raise DevkitError("\n".join(exc.problems)) from None
    if hook not in script.hooks and hook != "on_load":
        raise DevkitError(f"{script_path} defines no {hook} hook (it defines: "
                          f"{', '.join(sorted(script.hooks)) or 'none'})")
    budget = Budget(timeout_ms=timeout_ms, memory_mb=memory_mb)
    sandbox = Sandbox(isolation, dict(state_settings or DEFAULT_STATE), warm_spare=False)  # one call: no spare
    key = f"plugin:{path.stem}"
    try:
        with _peak_memory(isolation) as peak:
            started = time.perf_counter()
            outcome, result = sandbox.load(key, script, dict(config or {}), budget), None
            if outcome.ok and hook != "on_load":
                peak.reset()
                started = time.perf_counter()
                outcome, result = _run(sandbox, key, hook, budget, request, response)
            duration_ms = (time.perf_counter() - started) * 1000
        return HookRun(outcome, result, duration_ms, peak.value, isolation)
    finally:
        sandbox.close()


def _run(sandbox, key: str, hook: str, budget, request, response):
    from backworks.sandbox import Step  # start-up cost, as in run_hook

    request = sample_request(**(request or {}))
    if hook in ("before_request", "after_response"):
        response = sample_response(**(response or {})) if hook == "after_response" else None
        phase = sandbox.run_phase(hook, [Step(key, budget, "open")], request, response)
        outcome = phase.outcomes[0][1] if phase.outcomes else None
        if phase.short_circuit:
            return outcome, {"response": phase.response}
        return outcome, (phase.request if hook == "before_request" else phase.response)
    args = (request,) if hook == "handle" else ()
    outcome = sandbox.call(key, hook, args, budget)
    return outcome, outcome.value


class _peak_memory:
    """Track the peak of Python allocations (inline isolation only: a child's are out of reach)."""

    def __init__(self, isolation: str):
        self.enabled = isolation == "inline"
        self.value: int | None = None

    def __enter__(self):
        if self.enabled:
            self.started_here = not tracemalloc.is_tracing()
            if self.started_here:
                tracemalloc.start()
            tracemalloc.reset_peak()
        return self

    def reset(self) -> None:
        """Start measuring the peak again (after the load, before the hook)."""
        if self.enabled:
            tracemalloc.reset_peak()

    def __exit__(self, *exc):
        if self.enabled:
            self.value = tracemalloc.get_traced_memory()[1]
            if self.started_here:
                tracemalloc.stop()
        return False


def new_plugin(name: str, scripts_dir: Path, tests_dir: Path) -> tuple[Path, Path]:
    """Write a plugin template and its test; refuse to overwrite existing files."""
    if not NAME.match(name):
        raise DevkitError(f"plugin name {name!r} must be lower-case letters, digits and '_', starting "
                          f"with a letter (e.g. api_key)")
    script = Path(scripts_dir) / f"{name}.py"
    test = Path(tests_dir) / f"test_plugin_{name}.py"
    existing = [str(p) for p in (script, test) if p.exists()]
    if existing:
        raise DevkitError(f"{' and '.join(existing)} already exist{'s' if len(existing) == 1 else ''} "
                          f"(not overwritten)")
    script.parent.mkdir(parents=True, exist_ok=True)
    test.parent.mkdir(parents=True, exist_ok=True)
    relative = Path(_relpath(script.resolve(), test.parent.resolve()))
    script.write_text(SCRIPT_TEMPLATE.replace("NAME", name))
    test.write_text(TEST_TEMPLATE.replace("NAME", name).replace("RELATIVE", relative.as_posix())
                    .replace("THIS_FILE", test.as_posix()))
    return script, test


def _relpath(target: Path, start: Path) -> str:
    import os

    return os.path.relpath(target, start)


SCRIPT_TEMPLATE = '''"""Plugin NAME: describe what it does here.

Name it in the config:
    plugins:
      NAME:
        script: plugins_scripts/NAME.py   # relative to the config file's folder
        endpoints: ["*"]                  # endpoint names or globs
        config: {greeting: hello}

Every hook is optional: delete the ones you do not need. Hooks get copies of plain data
(dicts, lists, str, int, float, bool, None). Besides the allowed modules (json, math, datetime,
time, random, hashlib, hmac, base64, uuid, urllib.parse, re), a script sees `config` (its config
block), `log.info("text")` (also log.debug/warning/error: lines go to the server log) and `state`
(get/set/incr with TTLs, the only thing that survives between calls). Run a hook with:
    backworks test-plugin plugins_scripts/NAME.py --request request.json --hook before_request
"""


def on_load(config):
    """Once per (re)load, with this plugin's config block (as the global `config`). Raise to refuse a bad one."""
    if not isinstance(config.get("greeting", ""), str):
        raise ValueError("config.greeting must be a string")


def before_request(request):
    """Before the handler. Return None (keep), a request dict (replace it) or {"response": {...}} (answer now)."""
    if request["headers"].get("x-block") == "yes":
        return {"response": {"status": 403, "json": {"error": {"code": "blocked", "message": "blocked"}}}}
    return None


def after_response(request, response):
    """After the handler, in reverse order. Return None (keep) or a response dict (replace it)."""
    headers = dict(response["headers"])
    headers["x-greeting"] = config.get("greeting", "hello")
    return dict(response, headers=headers)


def handle(request):
    """Only when this script is a `runtime` endpoint's handler: return a response dict or any JSON value."""
    return {"status": 200, "json": {"greeting": config.get("greeting", "hello"), "path": request["path"]}}


def health_check():
    """For /readyz (critical plugins) and the dashboard: truthy means healthy."""
    return True
'''

TEST_TEMPLATE = '''"""Tests of the NAME plugin, run under the real sandbox (the same limits as the server).

Run them with `backworks test-plugin --tests THIS_FILE` (no pytest needed) or `python -m pytest THIS_FILE`.
"""
from pathlib import Path

from backworks.plugins.devkit import run_hook

SCRIPT = Path(__file__).resolve().parent / "RELATIVE"
CONFIG = {"greeting": "hi"}


def test_NAME_loads():
    assert run_hook(SCRIPT, "on_load", config=CONFIG).ok


def test_NAME_before_request_keeps_ordinary_requests():
    run = run_hook(SCRIPT, "before_request", {"path": "/a", "headers": {}}, config=CONFIG)
    assert run.ok, run.outcome.message
    assert "response" not in run.result
    assert (run.result["path"], run.result["headers"]) == ("/a", {})


def test_NAME_before_request_blocks_when_asked():
    run = run_hook(SCRIPT, "before_request", {"headers": {"x-block": "yes"}}, config=CONFIG)
    assert run.result["response"]["status"] == 403


def test_NAME_after_response_adds_the_greeting_header():
    run = run_hook(SCRIPT, "after_response", config=CONFIG)
    assert run.ok, run.outcome.message
    assert run.result["headers"]["x-greeting"] == "hi"


def test_NAME_handle_answers_json():
    run = run_hook(SCRIPT, "handle", {"path": "/x"}, config=CONFIG)
    assert run.result == {"status": 200, "json": {"greeting": "hi", "path": "/x"}}


def test_NAME_health_check_is_healthy():
    run = run_hook(SCRIPT, "health_check", config=CONFIG)
    assert run.ok and run.result is True
'''
