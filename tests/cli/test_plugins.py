"""`backworks new-plugin` and `backworks test-plugin`, through click's runner and the real sandbox."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap

import pytest
from click.testing import CliRunner

from backworks.cli.main import cli
from tests.helpers.basics import ROOT

# The inline sandbox times scripts with SIGALRM: pytest-timeout must not take that signal.
pytestmark = pytest.mark.timeout(120, method="thread")


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def write(path, text):
    path.write_text(textwrap.dedent(text))
    return path


def test_new_plugin_writes_a_script_and_a_passing_test(tmp_path):
    scripts, tests = tmp_path / "plugins_scripts", tmp_path / "tests" / "plugins"
    result = invoke("new-plugin", "greeter", "--scripts-dir", scripts, "--tests-dir", tests)
    assert result.exit_code == 0, result.output
    script, test = scripts / "greeter.py", tests / "test_plugin_greeter.py"
    assert result.output.splitlines()[:2] == [f"wrote {script}", f"wrote {test}"]
    source = script.read_text()
    for hook in ("before_request", "after_response", "handle", "on_load", "health_check"):
        assert f"def {hook}(" in source
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test)],
                         cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "6 passed" in run.stdout


def test_new_plugin_refuses_to_overwrite(tmp_path):
    scripts = tmp_path / "plugins_scripts"
    scripts.mkdir()
    (scripts / "mine.py").write_text("# my work\n")
    result = invoke("new-plugin", "mine", "--scripts-dir", scripts, "--tests-dir", tmp_path / "t")
    assert result.exit_code == 1
    assert result.output == f"error: {scripts / 'mine.py'} already exists (not overwritten)\n"
    assert (scripts / "mine.py").read_text() == "# my work\n"
    assert not (tmp_path / "t").exists()


def test_new_plugin_refuses_a_name_that_is_not_an_identifier(tmp_path):
    result = invoke("new-plugin", "Bad-Name", "--scripts-dir", tmp_path)
    assert result.exit_code == 1
    assert result.output == ("error: plugin name 'Bad-Name' must be lower-case letters, digits and '_', "
                             "starting with a letter (e.g. api_key)\n")


def test_test_plugin_runs_before_request_and_prints_result_time_and_peak_memory(tmp_path):
    script = write(tmp_path / "tag.py", """
        def before_request(request):
            log.info("tagging " + request["path"])
            headers = dict(request["headers"], **{"x-tag": config["tag"]})
            return dict(request, headers=headers)
    """)
    request = write(tmp_path / "req.json", '{"path": "/orders", "headers": {"accept": "*/*"}}')
    config = write(tmp_path / "cfg.json", '{"tag": "blue"}')
    result = invoke("test-plugin", script, "--request", request, "--config", config)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "log: INFO tagging /orders"
    assert lines[1] == "hook: before_request (inline isolation, budget 100 ms / 64 MB)"
    assert lines[2] == "outcome: ok"
    shown = json.loads(result.output.split("result: ", 1)[1].split("\ntime: ")[0])
    assert shown["headers"] == {"accept": "*/*", "x-tag": "blue"}
    assert shown["path"] == "/orders" and shown["method"] == "GET"
    assert re.search(r"^time: \d+\.\d{3} ms$", result.output, re.M)
    assert re.search(r"^peak memory: \d+\.\d KiB$", result.output, re.M)


def test_test_plugin_exits_1_and_shows_the_script_traceback_when_the_hook_raises(tmp_path):
    script = write(tmp_path / "bad.py", """
        def before_request(request):
            return request["nope"]
    """)
    result = invoke("test-plugin", script)
    assert result.exit_code == 1
    assert "outcome: error" in result.output
    assert "KeyError" in result.output
    assert "bad.py" in result.output and "line 3" in result.output


def test_test_plugin_reports_timeouts(tmp_path):
    script = write(tmp_path / "loop.py", "def before_request(request):\n    while True:\n        pass\n")
    result = invoke("test-plugin", script, "--timeout-ms", 50)
    assert result.exit_code == 1
    assert "outcome: timeout" in result.output


def test_test_plugin_runs_handle_hook(tmp_path):
    script = write(tmp_path / "quote.py", """
        def handle(request):
            return {"status": 200, "json": {"price": request["query"]["qty"]}}
    """)
    request = write(tmp_path / "req.json", '{"query": {"qty": "3"}}')
    result = invoke("test-plugin", script, "--hook", "handle", "--request", request)
    assert result.exit_code == 0, result.output
    assert '"price": "3"' in result.output


def test_test_plugin_runs_after_response_with_a_response_file(tmp_path):
    script = write(tmp_path / "up.py", """
        def after_response(request, response):
            return dict(response, status=response["status"] + 1)
    """)
    response = write(tmp_path / "resp.json", '{"status": 200, "headers": {}, "body": "x"}')
    result = invoke("test-plugin", script, "--hook", "after_response", "--response", response)
    assert result.exit_code == 0, result.output
    assert '"status": 201' in result.output


def test_test_plugin_runs_health_check_and_on_load(tmp_path):
    script = write(tmp_path / "h.py", """
        def on_load(settings):
            if settings.get("broken"):
                raise ValueError("broken config")

        def health_check():
            return "fine"
    """)
    assert '"fine"' in invoke("test-plugin", script, "--hook", "health_check").output
    config = write(tmp_path / "cfg.json", '{"broken": true}')
    result = invoke("test-plugin", script, "--hook", "on_load", "--config", config)
    assert result.exit_code == 1
    assert "broken config" in result.output


def test_test_plugin_under_process_isolation(tmp_path):
    script = write(tmp_path / "p.py", "def before_request(request):\n    return {'response': {'status': 204}}\n")
    result = invoke("test-plugin", script, "--isolation", "process")
    assert result.exit_code == 0, result.output
    assert "hook: before_request (process isolation" in result.output
    assert '"status": 204' in result.output
    assert "peak memory: not measured (process isolation)" in result.output


def test_test_plugin_reports_missing_hook_and_bad_files(tmp_path):
    script = write(tmp_path / "only_after.py", "def after_response(request, response):\n    return None\n")
    result = invoke("test-plugin", script)
    assert result.exit_code == 1
    assert result.output == f"error: {script} defines no before_request hook (it defines: after_response)\n"
    broken = write(tmp_path / "req.json", "{not json")
    result = invoke("test-plugin", script, "--hook", "after_response", "--request", broken)
    assert result.exit_code == 1
    assert f"Error: the request file {broken} is not valid JSON: Expecting property name" in result.output


def test_test_plugin_reports_a_script_the_sandbox_refuses(tmp_path):
    script = write(tmp_path / "esc.py", "import os\n\ndef before_request(request):\n    return None\n")
    result = invoke("test-plugin", script)
    assert result.exit_code == 1
    assert result.output.startswith(f"error: {script}:1: ")


def test_example_config_with_plugins_passes_check():
    result = invoke("check", ROOT / "config/backworks.yaml")
    assert result.exit_code == 0, result.output
    assert re.match(r"^.*config/backworks\.yaml: OK \(\d+ endpoints, [1-9]\d* plugins\)$", result.output.strip())
