"""Plugin hooks on requests: ordering, selection, fail-open and fail-closed, breaker, metrics, status."""
from __future__ import annotations

import logging
import os
import re
import threading
import time

import pytest
from prometheus_client import REGISTRY

from backworks.errors import ConfigError
from backworks.metrics import TALLY
from backworks.ops.health import readiness
from backworks.plugins import contract as hooks
from tests.helpers.basics import ROOT
from tests.helpers.plugins import ECHO, plugin_app, plugin_set, plugin_status, write_plugins

# The inline sandbox times scripts with SIGALRM: pytest-timeout must not take that signal.
pytestmark = pytest.mark.timeout(120, method="thread")

SET_TAG = """
def before_request(request):
    headers = dict(request["headers"])
    headers["x-tag"] = config["tag"]
    return dict(request, headers=headers)
"""

# Each mutates the request it was given (a copy), then fails in its own way.
FAILING_BEFORE = {
    "error": """
        def before_request(request):
            request["headers"]["x-tag"] = "leaked"
            raise ValueError("boom")
    """,
    "timeout": """
        def before_request(request):
            request["headers"]["x-tag"] = "leaked"
            while True:
                pass
    """,
    "memory": """
        def before_request(request):
            request["headers"]["x-tag"] = "leaked"
            chunks = []
            while True:
                chunks.append("x" * 1000000)
    """,
    "invalid": """
        def before_request(request):
            request["headers"]["x-tag"] = "leaked"
            return 42
    """,
}

FAILING_AFTER = {kind: source.replace("before_request(request)", "after_response(request, response)")
                 .replace('request["headers"]["x-tag"] = "leaked"', 'response["status"] = 500')
                 for kind, source in FAILING_BEFORE.items()}


def calls(plugin: str, hook: str, kind: str) -> float:
    """The Prometheus count of one plugin's hook calls of one kind."""
    TALLY.flush()
    return REGISTRY.get_sample_value("backworks_plugin_calls_total",
                                     {"plugin": plugin, "hook": hook, "kind": kind}) or 0.0


def test_before_request_returning_dict_replaces_the_request(tmp_path):
    _, client = plugin_app(tmp_path, {"tagger": SET_TAG}, {"tagger": {"config": {"tag": "seen"}}})
    response = client.get("/echo")
    assert response.status_code == 200
    assert response.get_json() == {"tag": "seen", "body": ""}


def test_before_request_returning_none_keeps_the_request(tmp_path):
    script = "def before_request(request):\n    return None\n"
    _, client = plugin_app(tmp_path, {"noop": script}, {"noop": {}})
    response = client.post("/echo", data="hello", headers={"X-Tag": "mine"})
    assert response.get_json() == {"tag": "mine", "body": "hello"}


def test_before_request_response_answers_now_and_skips_the_handler(tmp_path):
    script = """
        def before_request(request):
            return {"response": {"status": 418, "headers": {"x-why": "tea"}, "json": {"short": True}}}
    """
    _, client = plugin_app(tmp_path, {"teapot": script}, {"teapot": {}})
    response = client.get("/echo")
    assert response.status_code == 418
    assert response.headers["X-Why"] == "tea"
    assert response.headers["Content-Type"] == "application/json"
    assert response.get_json() == {"short": True}


def test_before_request_sees_plain_request_data(tmp_path):
    script = """
        def before_request(request):
            seen = {k: request[k] for k in ("method", "path", "query", "body", "json", "endpoint", "client_ip")}
            seen["agent"] = request["headers"]["x-agent"]
            return {"response": {"status": 200, "json": seen}}
    """
    _, client = plugin_app(tmp_path, {"spy": script}, {"spy": {}})
    response = client.post("/echo?a=1&b=2&b=3", json={"n": 1}, headers={"X-Agent": "t"})
    assert response.get_json() == {"method": "POST", "path": "/echo", "query": {"a": "1", "b": ["2", "3"]},
                                   "body": '{"n": 1}', "json": {"n": 1}, "endpoint": "echo",
                                   "client_ip": "127.0.0.1", "agent": "t"}


def test_after_response_returning_dict_replaces_the_response(tmp_path):
    script = """
        def after_response(request, response):
            headers = dict(response["headers"])
            headers["x-added"] = "yes"
            body = dict(response["json"], extra=response["status"])
            return dict(response, status=201, headers=headers, json=body)
    """
    _, client = plugin_app(tmp_path, {"shape": script}, {"shape": {}})
    response = client.get("/echo", headers={"X-Tag": "t"})
    assert response.status_code == 201
    assert response.headers["X-Added"] == "yes"
    assert response.get_json() == {"tag": "t", "body": "", "extra": 200}
    assert response.headers["Content-Length"] == str(len(response.data))


def test_after_response_keeps_binary_body_when_only_headers_change(tmp_path):
    script = """
        def after_response(request, response):
            headers = dict(response["headers"])
            headers["x-seen-body"] = str(response.get("body"))
            return dict(response, headers=headers)
    """
    endpoints = {"blob": {"path": "/blob", "mock": {"file": "blob.bin", "content_type": "application/octet-stream"}}}
    (tmp_path / "blob.bin").write_bytes(bytes(range(256)) * 4)
    _, client = plugin_app(tmp_path, {"hdr": script}, {"hdr": {}}, endpoints)
    response = client.get("/blob")
    assert response.headers["X-Seen-Body"] == "None"
    assert response.data == bytes(range(256)) * 4


def test_after_response_runs_in_reverse_order_of_before_request(tmp_path):
    trail = """
        def before_request(request):
            headers = dict(request["headers"])
            headers["x-tag"] = headers.get("x-tag", "") + config["mark"]
            return dict(request, headers=headers)

        def after_response(request, response):
            headers = dict(response["headers"])
            headers["x-trail"] = headers.get("x-trail", "") + config["mark"]
            return dict(response, headers=headers)
    """
    plugins = {"second": {"script": "trail.py", "order": 20, "config": {"mark": "B"}},
               "first": {"script": "trail.py", "order": 10, "config": {"mark": "A"}},
               "also_second": {"script": "trail.py", "order": 20, "config": {"mark": "C"}}}
    _, client = plugin_app(tmp_path, {"trail": trail}, plugins)
    response = client.get("/echo")
    assert response.get_json()["tag"] == "ACB"  # order, then name
    assert response.headers["X-Trail"] == "BCA"


def test_plugins_sharing_a_sandbox_run_in_one_call_per_phase(tmp_path, monkeypatch):
    from backworks.sandbox import Sandbox

    phases = []
    original = Sandbox.run_checked_phase

    def counted(self, phase, steps, request, response=None, shaped=False):
        phases.append((self.isolation, phase, [step.key for step in steps]))
        return original(self, phase, steps, request, response, shaped)

    monkeypatch.setattr(Sandbox, "run_checked_phase", counted)
    trail = """
        def before_request(request):
            headers = dict(request["headers"])
            headers["x-tag"] = headers.get("x-tag", "") + config["mark"]
            return dict(request, headers=headers)
    """
    plugins = {"a": {"script": "trail.py", "order": 1, "isolation": "process", "config": {"mark": "a"}},
               "b": {"script": "trail.py", "order": 2, "isolation": "process", "config": {"mark": "b"}},
               "c": {"script": "trail.py", "order": 3, "isolation": "inline", "config": {"mark": "c"}}}
    _, client = plugin_app(tmp_path, {"trail": trail}, plugins)
    assert client.get("/echo").get_json()["tag"] == "abc"
    assert phases == [("process", "before_request", ["plugin:a", "plugin:b"]),
                      ("inline", "before_request", ["plugin:c"])]


def test_plugins_apply_only_to_endpoints_matching_their_globs(tmp_path):
    tagged = {"path": "/admin/users", "mock": {"json": {"tag": "{{ headers.get('x-tag', 'none') }}"}}}
    endpoints = {"echo": ECHO, "admin_users": tagged}
    plugins = {"tagger": {"endpoints": ["admin_*"], "config": {"tag": "t"}}}
    app, client = plugin_app(tmp_path, {"tagger": SET_TAG}, plugins, endpoints)
    assert client.get("/echo").get_json()["tag"] == "none"
    assert client.get("/admin/users").get_json()["tag"] == "t"
    assert app.extensions["backworks"].runtime.endpoints["echo"].plugins is None


def test_disabled_plugin_is_neither_loaded_nor_called(tmp_path):
    app, client = plugin_app(tmp_path, {"tagger": SET_TAG}, {"tagger": {"enabled": False, "config": {"tag": "t"}}})
    assert client.get("/echo").get_json()["tag"] == "none"
    assert plugin_set(app).status() == []


@pytest.mark.parametrize("isolation", ["inline", "process"])
@pytest.mark.parametrize("kind", sorted(FAILING_BEFORE))
def test_before_request_failure_continues_with_request_as_before_that_hook(tmp_path, kind, isolation):
    name = f"bad_before_{kind}_{isolation}"
    plugins = {"good": {"script": "tagger.py", "order": 1, "config": {"tag": "good"}, "isolation": isolation},
               name: {"order": 2, "timeout_ms": 100, "memory_mb": 32, "isolation": isolation}}
    app, client = plugin_app(tmp_path, {"tagger": SET_TAG, name: FAILING_BEFORE[kind]}, plugins)
    started = time.monotonic()
    response = client.post("/echo", data="payload")
    assert time.monotonic() - started < 0.1 + 0.05 + 0.1  # budget + 50 ms, plus the mock handler
    assert response.status_code == 200
    assert response.get_json() == {"tag": "good", "body": "payload"}
    # a memory bomb may also be stopped by the clock first, depending on how fast memory is handed out
    kinds = {"memory", "timeout"} if kind == "memory" else {kind}
    assert sum(calls(name, "before_request", k) for k in kinds) == 1
    assert set(plugin_status(app, name)["failures"]) <= kinds
    assert client.post("/echo", data="again").get_json() == {"tag": "good", "body": "again"}


@pytest.mark.parametrize("kind", sorted(FAILING_AFTER))
def test_after_response_failure_keeps_the_response_as_before_that_hook(tmp_path, kind):
    name = f"bad_after_{kind}"
    app, client = plugin_app(tmp_path, {name: FAILING_AFTER[kind]}, {name: {"memory_mb": 32}})
    response = client.get("/echo", headers={"X-Tag": "t"})
    assert response.status_code == 200
    assert response.get_json() == {"tag": "t", "body": ""}
    kinds = {"memory", "timeout"} if kind == "memory" else {kind}
    assert sum(calls(name, "after_response", k) for k in kinds) == 1


def test_on_error_closed_answers_503_json_without_traceback(tmp_path):
    script = "def before_request(request):\n    raise RuntimeError('secret detail')\n"
    _, client = plugin_app(tmp_path, {"auth": script}, {"auth": {"on_error": "closed"}})
    response = client.get("/echo")
    assert response.status_code == 503
    error = response.get_json()["error"]
    assert (error["code"], error["message"]) == ("plugin_failed", "plugin auth failed: error")
    assert b"secret detail" not in response.data and b"Traceback" not in response.data


def test_on_error_closed_timeout_in_after_response_answers_503(tmp_path):
    script = "def after_response(request, response):\n    while True:\n        pass\n"
    _, client = plugin_app(tmp_path, {"slow": script}, {"slow": {"on_error": "closed", "timeout_ms": 50}})
    response = client.get("/echo")
    assert response.status_code == 503
    assert response.get_json()["error"]["message"] == "plugin slow failed: timeout"


@pytest.mark.parametrize("isolation", ["inline", "process"])
def test_failure_is_logged_with_script_frames_and_log_lines(tmp_path, caplog, isolation):
    script = """
        def helper(n):
            return 10 // n

        def before_request(request):
            log.info("about to divide")
            return helper(0)
    """
    _, client = plugin_app(tmp_path, {"divider": script}, {"divider": {"isolation": isolation}})
    with caplog.at_level(logging.INFO):
        assert client.get("/echo").status_code == 200
    text = caplog.text
    assert "divider.py: about to divide" in text
    assert "plugin divider before_request: error: divider.py:3: ZeroDivisionError: " in text
    assert re.search(r"divider\.py\", line 3", text)
    assert "backworks/" not in text.split("plugin divider before_request:", 1)[1]


def test_breaker_opens_after_threshold_and_recovers_after_half_open_trial(tmp_path):
    script = """
        def before_request(request):
            if request["headers"].get("x-fail"):
                raise ValueError("asked to fail")
            return None
    """
    plugins = {"flaky": {"circuit_breaker": {"failure_threshold": 2, "recovery_s": 0.3}}}
    app, client = plugin_app(tmp_path, {"flaky": script}, plugins)
    fail = {"X-Fail": "1"}
    for _ in range(2):
        assert client.get("/echo", headers=fail).status_code == 200
    assert plugin_status(app, "flaky")["breaker"]["state"] == "open"
    assert REGISTRY.get_sample_value("backworks_plugin_breaker_open", {"plugin": "flaky"}) == 1
    assert client.get("/echo", headers=fail).status_code == 200
    assert plugin_status(app, "flaky")["calls"] == 2  # skipped while open
    time.sleep(0.35)
    assert client.get("/echo", headers=fail).status_code == 200  # the half-open trial fails: open again
    assert plugin_status(app, "flaky")["calls"] == 3
    assert plugin_status(app, "flaky")["breaker"]["state"] == "open"
    time.sleep(0.35)
    assert client.get("/echo").status_code == 200  # the trial passes: closed
    status = plugin_status(app, "flaky")
    assert (status["calls"], status["breaker"]["state"]) == (4, "closed")
    assert REGISTRY.get_sample_value("backworks_plugin_breaker_open", {"plugin": "flaky"}) == 0


def test_reset_breaker_closes_it(tmp_path):
    script = "def before_request(request):\n    raise ValueError('no')\n"
    plugins = {"broken": {"circuit_breaker": {"failure_threshold": 1, "recovery_s": 60}}}
    app, client = plugin_app(tmp_path, {"broken": script}, plugins)
    client.get("/echo")
    assert plugin_status(app, "broken")["breaker"]["state"] == "open"
    assert plugin_set(app).reset_breaker("broken") is True
    assert plugin_set(app).reset_breaker("nope") is False
    assert plugin_status(app, "broken")["breaker"]["state"] == "closed"


def test_status_reports_calls_failures_and_latency_percentiles(tmp_path):
    script = """
        def before_request(request):
            if request["query"].get("fail"):
                raise ValueError("no")
            return None
    """
    app, client = plugin_app(tmp_path, {"counted": script}, {"counted": {"order": 7}})
    for _ in range(3):
        client.get("/echo")
    client.get("/echo?fail=1")
    status = plugin_status(app, "counted")
    assert status["calls"] == 4
    assert status["calls_by_hook"] == {"before_request": 4}
    assert status["failures"] == {"error": 1}
    assert status["order"] == 7 and status["hooks"] == ["before_request"]
    latency = status["latency_ms"]
    assert 0 <= latency["p50"] <= latency["p95"] <= latency["p99"] < 100
    assert calls("counted", "before_request", "ok") == 3
    assert calls("counted", "before_request", "error") == 1


def test_access_log_names_plugin_outcomes(tmp_path, caplog):
    script = "def before_request(request):\n    raise ValueError('no')\n"
    _, client = plugin_app(tmp_path, {"tagger": SET_TAG, "bad": script},
                           {"tagger": {"order": 1, "config": {"tag": "t"}}, "bad": {"order": 2}},
                           extra={"server": {"watch": False, "access_log": True}})
    with caplog.at_level(logging.INFO, logger="backworks.access"):
        client.get("/echo")
    assert "plugins=tagger.before_request:ok,bad.before_request:error" in caplog.text


def test_on_load_receives_the_plugin_config(tmp_path, caplog):
    script = """
        def on_load(settings):
            log.info("loaded with " + settings["greeting"])

        def before_request(request):
            return None
    """
    with caplog.at_level(logging.INFO):
        plugin_app(tmp_path, {"greeter": script}, {"greeter": {"config": {"greeting": "hi"}}})
    assert "greeter.py: loaded with hi" in caplog.text


def test_on_load_failure_refuses_the_config(tmp_path):
    script = ("def on_load(settings):\n    raise ValueError('keys are missing')\n\n"
              "def before_request(r):\n    return None\n")
    with pytest.raises(ConfigError) as caught:
        plugin_app(tmp_path, {"needy": script}, {"needy": {}})
    problem = caught.value.problems[0]
    assert re.match(r"^.*backworks\.yaml:\d+: plugins\.needy\.script: .*needy\.py failed to load: error: ", problem)
    assert "keys are missing" in problem


def test_script_compile_error_names_plugin_field_and_script_line(tmp_path):
    script = "def before_request(request):\n    return None\n\ndef broken(:\n"
    with pytest.raises(ConfigError) as caught:
        plugin_app(tmp_path, {"typo": script}, {"typo": {}})
    problem = caught.value.problems[0]
    assert re.match(r"^.*backworks\.yaml:\d+: plugins\.typo\.script: .*typo\.py:4: ", problem), problem


def live_children() -> set:
    """Pids of this process's children that are still running (not zombies)."""
    pids = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == os.getpid() and fields[0] != "Z":
                pids.add(int(entry))
    return pids


def test_refused_load_leaves_no_sandbox_child_running(tmp_path):
    before = live_children()
    scripts = {"good": "def before_request(r):\n    return None\n",
               "bad": "def on_load(settings):\n    raise ValueError('no')\n"}
    with pytest.raises(ConfigError):
        plugin_app(tmp_path, scripts, {"good": {"isolation": "process"}, "bad": {"isolation": "process"}})
    assert live_children() == before


def test_every_broken_plugin_is_reported_at_once(tmp_path):
    scripts = {"one": "def before_request(:\n", "two": "def after_response(:\n"}
    with pytest.raises(ConfigError) as caught:
        plugin_app(tmp_path, scripts, {"one": {}, "two": {}})
    assert [p.split(": ")[1] for p in caught.value.problems] == ["plugins.one.script", "plugins.two.script"]


def test_health_check_false_makes_readyz_fail_for_a_critical_plugin(tmp_path):
    script = """
        def before_request(request):
            return None

        def health_check():
            return config["healthy"]
    """
    plugins = {"vital": {"critical": True, "config": {"healthy": False}},
               "minor": {"script": "vital.py", "config": {"healthy": False}}}
    app, client = plugin_app(tmp_path, {"vital": script}, plugins)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.get_json() == {"status": "not_ready", "reasons": ["plugin_unhealthy"]}
    checks = readiness(app.extensions["backworks"])[0]["checks"]["plugins"]  # details: admin API only
    assert checks["ok"] is False
    assert checks["plugins"]["vital"] == {"critical": True, "breaker": "closed", "health_check": "unhealthy",
                                          "healthy": False}
    assert checks["plugins"]["minor"]["critical"] is False


def test_health_check_true_keeps_readyz_ready(tmp_path):
    script = "def health_check():\n    return True\n"
    app, client = plugin_app(tmp_path, {"vital": script}, {"vital": {"critical": True}})
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ready"}
    assert readiness(app.extensions["backworks"])[0]["checks"]["plugins"]["plugins"]["vital"]["health_check"] == "ok"


def test_readyz_fails_while_a_critical_plugin_breaker_is_open(tmp_path):
    script = "def before_request(request):\n    raise ValueError('no')\n"
    plugins = {"vital": {"critical": True, "circuit_breaker": {"failure_threshold": 1, "recovery_s": 60}}}
    _, client = plugin_app(tmp_path, {"vital": script}, plugins)
    assert client.get("/readyz").status_code == 200
    client.get("/echo")
    assert client.get("/readyz").status_code == 503


def test_state_is_the_only_memory_between_calls(tmp_path):
    script = """
        counter = {"n": 0}

        def before_request(request):
            counter["n"] = counter["n"] + 1
            return {"response": {"status": 200, "json": {"module": counter["n"], "state": state.incr("n")}}}
    """
    _, client = plugin_app(tmp_path, {"count": script}, {"count": {}})
    client.get("/echo")
    assert client.get("/echo").get_json() == {"module": 1, "state": 2}


def test_reload_in_the_watcher_thread_keeps_inline_isolation(tmp_path):
    app, client = plugin_app(tmp_path, {"tagger": SET_TAG}, {"tagger": {"config": {"tag": "one"}}})
    assert plugin_status(app, "tagger")["isolation"] == "inline"
    write_plugins(tmp_path, {"tagger": SET_TAG}, {"tagger": {"config": {"tag": "two"}}})
    reloaded = []
    thread = threading.Thread(target=lambda: reloaded.append(app.extensions["backworks"].reload("test")))
    thread.start()
    thread.join(30)
    assert reloaded == [True]
    plugin = plugin_set(app).plugins["tagger"]
    assert plugin.isolation == "inline" and plugin.pending_load is not None
    assert client.get("/echo").get_json()["tag"] == "two"
    assert plugin.pending_load is None  # loaded inline on the main thread before its first call


def test_every_hook_has_a_test_and_a_docs_section():
    tests = "\n".join(p.read_text() for p in (ROOT / "tests").rglob("test_*.py"))
    page = (ROOT / "docs/plugins.md").read_text()
    missing = [f"{hook}: no test named after it" for hook in hooks.HOOKS
               if not re.search(rf"def test_\w*{hook}\w*\(", tests)]
    missing += [f"{hook}: no section '## {hook}' in docs/plugins.md" for hook in hooks.HOOKS
                if not re.search(rf"^## `?{hook}", page, re.M)]
    assert missing == []
    assert set(hooks.HOOKS) == {"before_request", "after_response", "handle", "on_load", "health_check"}
    for hook in hooks.HOOKS:
        assert getattr(hooks, hook).__doc__, f"{hook} has no docstring in backworks/plugins/contract.py"


def test_on_load_config_parameter_receives_the_plugin_config(tmp_path, caplog):
    script = """
        def on_load(config):
            log.info("loaded with " + config["greeting"])

        def before_request(request):
            return None
    """
    with caplog.at_level(logging.INFO):
        plugin_app(tmp_path, {"greeter": script}, {"greeter": {"config": {"greeting": "hi"}}})
    assert "greeter.py: loaded with hi" in caplog.text


def test_what_a_failed_script_left_is_freed_once_its_response_is_sent(tmp_path):
    script = """
        def before_request(request):
            junk = ["x" * 1000 for _ in range(2000)]
            raise ValueError("boom")
    """
    app, client = plugin_app(tmp_path, {"boom": script}, {"boom": {"isolation": "inline"}})
    sandbox = app.extensions["backworks"].runtime.inline_sandbox
    response = client.get("/echo", buffered=False)
    assert response.status_code == 200
    assert sandbox.has_garbage()  # the script's frames (and `junk`) are still held
    response.close()
    assert not sandbox.has_garbage()
    assert client.get("/echo").status_code == 200
