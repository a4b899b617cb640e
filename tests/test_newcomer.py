"""The walls a newcomer hit in the first hour (issue 16), each as the behaviour that must hold instead."""
from __future__ import annotations

import logging
import sqlite3
import textwrap
import time

import pytest
from click.testing import CliRunner

from backworks.app import create_app
from backworks.capture.store import CaptureStore
from backworks.cli.main import cli
from backworks.config.load import load_config
from backworks.errors import ConfigError
from tests.helpers.basics import ROOT, write_config
from tests.helpers.fake_upstream import FakeUpstream
from tests.helpers.newcomer import every_stage_lines, write_every_stage

# The check below compiles plugins in a sandbox child; the inline sandbox times scripts with SIGALRM.
pytestmark = pytest.mark.timeout(120, method="thread")

EXAMPLE = ROOT / "config" / "backworks.yaml"
DISABLED = ("the admin API and dashboard are disabled: set admin.token in the config to turn them on, then "
            "send Authorization: Bearer <token> (or open /_backworks/ and sign in with it)")


def invoke(*args, **kwargs):
    return CliRunner().invoke(cli, [str(a) for a in args], **kwargs)


# --- check: every problem of every stage in one run -------------------------------------------------

def test_check_reports_a_problem_of_every_stage_in_one_run_sorted_by_line(tmp_path, monkeypatch):
    monkeypatch.delenv("NEWCOMER_UNSET_TOKEN", raising=False)
    path = write_every_stage(tmp_path)
    result = invoke("check", path)
    assert result.exit_code == 1
    assert result.output.splitlines() == every_stage_lines(path)


def test_check_says_in_one_line_that_nothing_else_ran_when_the_yaml_does_not_parse(tmp_path):
    path = write_config(tmp_path, "name: x\nendpoints: [\n")
    result = invoke("check", path)
    assert result.exit_code == 1
    assert result.output.splitlines()[1:] == [
        f"{path}: the later checks (references, routes, plugins, modes) did not run: the YAML does not parse",
        f"1 problem(s) in {path}",
    ]


def test_unset_variable_does_not_hide_schema_problems(tmp_path, monkeypatch):
    monkeypatch.delenv("NEWCOMER_UNSET_PORT", raising=False)
    path = write_config(tmp_path, """
        name: "${NEWCOMER_UNSET_PORT}"
        endpoints:
          a: {path: a}
    """)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.problems == [
        f"{path}:2: name: environment variable NEWCOMER_UNSET_PORT is not set (set it, or give a default: "
        "${NEWCOMER_UNSET_PORT:-value})",
        f"{path}:4: endpoints.a.path: value 'a' does not match the expected form (must start with '/')",
    ]


def test_value_left_empty_by_an_unset_variable_is_reported_once(tmp_path, monkeypatch):
    monkeypatch.delenv("NEWCOMER_DB_URL", raising=False)
    path = write_config(tmp_path, """
        database: {url: "${NEWCOMER_DB_URL}"}
        endpoints:
          rows: {path: /rows, mode: database, database: {table: rows, fields: {n: {type: integer}}}}
          more: {path: /more, mode: database, database: {table: more, fields: {n: {type: integer}}}}
    """)
    result = invoke("check", path)
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        f"{path}:2: database.url: environment variable NEWCOMER_DB_URL is not set (set it, or give a default: "
        "${NEWCOMER_DB_URL:-value})",
        f"1 problem(s) in {path}",
    ]


def test_capture_export_goes_on_past_an_unset_admin_token_variable(tmp_path, monkeypatch):
    monkeypatch.delenv("NEWCOMER_UNSET_TOKEN", raising=False)
    path = write_config(tmp_path, """
        admin: {token: "${NEWCOMER_UNSET_TOKEN}"}
        endpoints:
          a: {path: /a}
    """)
    har = tmp_path / "out.har"
    result = invoke("capture", "export", "--har", har, path)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        f"warning: {path}:2: admin.token: environment variable NEWCOMER_UNSET_TOKEN is not set (set it, or "
        "give a default: ${NEWCOMER_UNSET_TOKEN:-value})",
        f"exported 0 exchange(s) to {har}",
    ]


# --- YAML syntax errors point where the bracket or quote was opened -----------------------------------

@pytest.mark.parametrize("text, expected", [
    ("name: x\nendpoints:\n  a: {path: /a, methods: [GET, POST\n",
     "3:26: YAML syntax error: the '[' opened here is not closed (line 4, column 1: expected ',' or ']', "
     "but got '<stream end>')"),
    ('name: "x\nendpoints: {}\n',
     "1:7: YAML syntax error: the quote opened here is not closed (line 3, column 1: found unexpected end of "
     "stream)"),
    ("name: x\nendpoints:\n  a: {path: /a,\n\n  b: 1\n",
     "3:6: YAML syntax error: the '{' opened here is not closed (line 6, column 1: expected ',' or '}', "
     "but got '<stream end>')"),
], ids=["bracket", "quote", "brace"])
def test_yaml_error_points_at_the_unclosed_bracket_or_quote(tmp_path, text, expected):
    path = write_config(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.problems == [f"{path}:{expected}"]


# --- warnings for configs that can never work ----------------------------------------------------------

def test_check_warns_about_a_conditional_mock_on_a_method_the_endpoint_does_not_serve(tmp_path):
    path = write_config(tmp_path, """
        endpoints:
          cond:
            path: /c
            mock:
              responses:
                - when: {method: POST}
                  status: 201
              json: {ok: true}
    """)
    result = invoke("check", path)
    assert result.exit_code == 0
    assert result.output.splitlines() == [
        f"{path}:7: endpoints.cond.mock.responses[0].when.method: warning: POST is not among this endpoint's "
        "methods (GET), so this response is never chosen and POST answers 405 (add it: methods: [GET, POST])",
        f"{path}: OK (1 endpoints, 0 plugins, 1 warning(s))",
    ]


def test_check_warns_about_an_endpoint_with_only_a_path(tmp_path):
    path = write_config(tmp_path, "endpoints:\n  only: {path: /only}\n  fine: {path: /fine, mock: {json: {}}}\n")
    result = invoke("check", path)
    assert result.exit_code == 0
    assert result.output.splitlines() == [
        f"{path}:2: endpoints.only: warning: this endpoint has only a path, so it answers 200 with an empty "
        "body (add a mock: block, e.g. mock: {json: {ok: true}}, or another mode)",
        f"{path}: OK (2 endpoints, 0 plugins, 1 warning(s))",
    ]


def test_server_start_logs_the_same_warnings(tmp_path, caplog):
    path = write_config(tmp_path, "server: {watch: false}\nendpoints:\n  only: {path: /only}\n")
    with caplog.at_level(logging.WARNING, logger="backworks.app"):
        create_app(path)
    assert f"{path}:3: endpoints.only: warning: this endpoint has only a path" in caplog.text


def test_check_does_not_warn_when_the_method_is_served_or_head_of_a_get(tmp_path):
    path = write_config(tmp_path, """
        endpoints:
          cond:
            path: /c
            methods: [GET, POST]
            mock:
              responses:
                - {when: {method: post}, status: 201}
                - {when: {method: HEAD}, status: 204}
    """)
    result = invoke("check", path)
    assert result.output == f"{path}: OK (1 endpoints, 0 plugins)\n"


# --- the admin API: on in the example, a JSON 404 that says how when off ---------------------------------

@pytest.mark.parametrize("path", ["/_backworks/", "/_backworks", "/_backworks/api/status", "/_backworks/nope"])
def test_disabled_admin_path_answers_json_404_saying_how_to_enable_it(tmp_path, path):
    app = create_app(write_config(tmp_path, "server: {watch: false}\nendpoints:\n  a: {path: /a}\n"))
    response = app.test_client().get(path)
    assert response.status_code == 404
    assert response.get_json() == {"error": {"code": "admin_disabled", "message": DISABLED}}


def test_example_config_admin_api_answers_the_development_token(monkeypatch):
    monkeypatch.delenv("BACKWORKS_ADMIN_TOKEN", raising=False)
    app = create_app(EXAMPLE, overrides={"server": {"watch": False}})
    client = app.test_client()
    names = [e["name"] for e in client.get("/_backworks/api/endpoints",
                                           headers={"Authorization": "Bearer dev-admin-token"}).get_json()["endpoints"]]
    assert "hello" in names
    assert client.get("/_backworks/api/endpoints").status_code == 401
    app.extensions["backworks"].runtime.close()


# --- client_ip behind nginx on a unix socket --------------------------------------------------------------

@pytest.mark.parametrize("environ, expected", [
    ({"REMOTE_ADDR": "", "HTTP_X_FORWARDED_FOR": "127.0.0.1"}, "127.0.0.1"),
    ({"REMOTE_ADDR": "", "HTTP_X_FORWARDED_FOR": "::1, 127.0.0.1"}, "::1"),
    ({"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_FOR": "127.0.0.1"}, "127.0.0.1"),
    ({"REMOTE_ADDR": "", "HTTP_X_FORWARDED_FOR": "203.0.113.9, 127.0.0.1"}, "203.0.113.9"),
    ({"REMOTE_ADDR": ""}, "unix-socket"),
], ids=["unix-loopback-client", "all-trusted-leftmost", "tcp-loopback", "real-client", "unix-no-header"])
def test_client_ip_is_never_empty_behind_nginx_on_a_unix_socket(tmp_path, environ, expected):
    app = create_app(write_config(tmp_path, "server: {watch: false}\nendpoints:\n  a: {path: /a}\n"))
    assert app.extensions["backworks"].runtime.client_ip(environ) == expected


# --- replay at another path than the one recorded -------------------------------------------------------

def test_example_replay_endpoint_answers_what_the_capture_endpoint_recorded(tmp_path, monkeypatch):
    upstream = FakeUpstream("catalog")
    monkeypatch.chdir(tmp_path)
    store = f"sqlite:///{tmp_path / 'captures.db'}"
    app = create_app(EXAMPLE, overrides={"server": {"watch": False, "access_log": False},
                                         "upstreams": {"catalog": {"targets": [{"url": upstream.url}]}},
                                         "capture": {"store": store},
                                         "database": {"url": f"sqlite:///{tmp_path / 'shop.db'}"}})
    try:
        client = app.test_client()
        live = client.get("/recorded/items/7?x=1")
        assert live.status_code == 200 and live.get_json()["path"] == "/items/7"
        deadline = time.monotonic() + 5
        while not CaptureStore(store).rows() and time.monotonic() < deadline:
            time.sleep(0.05)
        upstream.stop()
        copy = client.get("/recorded-copy/items/7?x=1")
        assert copy.status_code == 200, copy.get_json()
        assert copy.get_json() == live.get_json()
        assert copy.headers["X-Backworks-Replay"]
        missing = client.get("/recorded-copy/items/8")
        assert missing.status_code == 404
        assert missing.get_json()["error"]["message"] == ("no recorded exchange matches GET /recorded/items/8 "
                                                          "(matching on method, path, query)")
    finally:
        app.extensions["backworks"].runtime.close()


# --- the example's /status sequence -------------------------------------------------------------------

def test_example_status_sequence_never_answers_an_error_on_a_first_try():
    app = create_app(EXAMPLE, overrides={"server": {"watch": False}})
    client = app.test_client()
    answers = [client.get("/status") for _ in range(3)]
    assert [(a.status_code, a.get_json()) for a in answers] == [
        (200, {"state": "starting"}), (200, {"state": "up"}), (200, {"state": "up"})]
    app.extensions["backworks"].runtime.close()


# --- CLI conventions ----------------------------------------------------------------------------------

@pytest.mark.parametrize("args", [["-h"], ["check", "-h"], ["capture", "export", "-h"], ["test-plugin", "-h"]])
def test_dash_h_works_like_help(args):
    assert invoke(*args).output == invoke(*args[:-1], "--help").output
    assert invoke(*args).exit_code == 0


def test_command_summaries_are_not_cut_short():
    for args in (["--help"], ["capture", "--help"]):
        commands = invoke(*args).output.split("Commands:")[1]
        assert "..." not in commands
    assert "compile every plugin script it names." in invoke("--help").output


def test_serve_options_and_check_defaults_and_exit_codes_are_documented():
    serve = " ".join(invoke("serve", "--help").output.split())
    assert "--host TEXT Address to listen on (0.0.0.0 for every interface). [default: 127.0.0.1]" in serve
    assert "--port INTEGER TCP port to listen on. [default: 8000]" in serve
    check = " ".join(invoke("check", "--help").output.split())
    assert "(default: config/backworks.yaml)" in check
    assert ("Exit status: 0 when the config is valid (warnings are printed but do not fail it), 1 when it has "
            "problems") in check


def test_access_log_plugins_field_names_the_hook(tmp_path, caplog):
    (tmp_path / "buggy.py").write_text("def before_request(request):\n    raise ValueError('no')\n")
    app = create_app(write_config(tmp_path, """
        server: {watch: false, access_log: true}
        plugins:
          buggy: {script: buggy.py}
        endpoints:
          a: {path: /a, mock: {json: {}}}
    """))
    with caplog.at_level(logging.INFO, logger="backworks.access"):
        app.test_client().get("/a")
    assert " plugins=buggy.before_request:error" in caplog.text
    app.extensions["backworks"].runtime.close()


def test_pyproject_license_is_an_spdx_string_with_a_setuptools_that_reads_it():
    lines = (ROOT / "pyproject.toml").read_text().splitlines()  # (tomllib is Python 3.11+; we support 3.10)
    assert 'license = "MIT"' in lines
    requires = next(line for line in lines if line.startswith("requires = "))
    assert '"setuptools>=77"' in requires  # the first setuptools that takes an SPDX license string


# --- new-plugin's test runs without pytest ----------------------------------------------------------------

def test_new_plugin_test_runs_with_test_plugin_tests(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    made = invoke("new-plugin", "greeter")
    expected = "run its test: backworks test-plugin --tests tests/plugins/test_plugin_greeter.py"
    assert made.output.splitlines()[2] == expected
    result = invoke("test-plugin", "--tests", "tests/plugins/test_plugin_greeter.py")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == "6 passed, 0 failed (tests/plugins/test_plugin_greeter.py)"


def test_test_plugin_tests_reports_a_failing_test_and_exits_1(tmp_path):
    test = tmp_path / "test_plugin_x.py"
    test.write_text(textwrap.dedent("""
        def test_good():
            assert 1 + 1 == 2

        def test_bad():
            assert [1] == [2], "lists differ"
    """))
    result = invoke("test-plugin", "--tests", test)
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        "PASS test_good",
        f"FAIL test_bad: AssertionError: lists differ ({test}:6: assert [1] == [2], \"lists differ\")",
        f"1 passed, 1 failed ({test})",
    ]


def test_test_plugin_without_script_or_tests_is_a_usage_error():
    result = invoke("test-plugin")
    assert result.exit_code == 2
    assert "give a SCRIPT to run one hook, or --tests TEST_FILE to run a plugin's tests" in result.output


# --- every relative path is relative to the config file ------------------------------------------------

def test_relative_sqlite_database_url_is_next_to_the_config_file(tmp_path, monkeypatch):
    folder = tmp_path / "conf"
    folder.mkdir()
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    path = write_config(folder, """
        server: {watch: false}
        database: {url: "sqlite:///app.db"}
        endpoints:
          things:
            path: /things
            mode: database
            database: {table: things, fields: {name: {type: string}}}
    """)
    app = create_app(path)
    assert app.test_client().post("/things", json={"name": "kettle"}).status_code == 201
    app.extensions["backworks"].runtime.close()
    assert not (elsewhere / "app.db").exists()
    with sqlite3.connect(folder / "app.db") as db:
        assert db.execute("select name from things").fetchall() == [("kettle",)]


@pytest.mark.parametrize("block, content", [("runtime", "{script: handler.py}"), ("proxy", "{upstream: api}")])
def test_a_block_of_another_mode_without_mode_is_an_error_with_the_fix(tmp_path, block, content):
    path = write_config(tmp_path, f"upstreams:\n  api: {{targets: [{{url: 'http://127.0.0.1:9'}}]}}\n"
                                  f"endpoints:\n  run: {{path: /run, {block}: {content}}}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.problems == [
        f"{path}:4: endpoints.run: has a '{block}:' block but no `mode`, so it would run in the default mode "
        f"'mock' and ignore that block; add `mode: {block}`"]
