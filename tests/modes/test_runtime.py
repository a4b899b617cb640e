"""Runtime mode: a sandboxed script's handle(request) is the endpoint, and its failures stay contained."""
from __future__ import annotations

import logging
import os
import textwrap
import time

import pytest
import requests

from backworks.app import create_app
from backworks.errors import ConfigError
from backworks.metrics import TALLY
from tests.helpers.basics import ROOT, write_config


def make_app(tmp_path, script: str, block: str = "", methods: str = "", path: str = "/run/{name}"):
    (tmp_path / "handler.py").write_text(textwrap.dedent(script))
    config = write_config(tmp_path, f"server: {{watch: false}}\nendpoints:\n  run:\n    path: {path}\n"
                                    f"    mode: runtime\n{methods}    runtime:\n      script: handler.py\n{block}")
    app = create_app(config)
    return app


@pytest.fixture
def serve(tmp_path):
    """serve(script, block="") -> a test client of an app with one runtime endpoint at /run/{name}."""
    apps = []

    def start(script, block="", **kwargs):
        app = make_app(tmp_path, script, block, **kwargs)
        apps.append(app)
        return app.test_client()

    yield start
    for app in apps:
        app.extensions["backworks"].runtime.close()


def test_any_json_value_is_a_200_json_answer(serve):
    client = serve("""
        def handle(request):
            name = request["path_params"]["name"]
            if name == "list":
                return [1, "two", None]
            if name == "text":
                return "plain"
            return {"status": "active", "count": 2}
    """)
    response = client.get("/run/list")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.json == [1, "two", None]
    assert client.get("/run/text").json == "plain"
    assert client.get("/run/other").json == {"status": "active", "count": 2}


def test_a_response_dict_sets_status_headers_and_body(serve):
    client = serve("""
        def handle(request):
            kind = request["path_params"]["name"]
            if kind == "created":
                return {"status": 201, "headers": {"Location": "/things/7"}, "json": {"id": 7}}
            if kind == "csv":
                return {"status": 200, "headers": {"Content-Type": "text/csv"}, "body": "a,b\\n1,2\\n"}
            if kind == "empty":
                return {"status": 204}
            return {"body": "hello"}
    """)
    created = client.post("/run/created")
    assert created.status_code == 201
    assert created.headers["Location"] == "/things/7"
    assert created.json == {"id": 7}
    csv = client.get("/run/csv")
    assert csv.headers["Content-Type"] == "text/csv" and csv.data == b"a,b\n1,2\n"
    empty = client.delete("/run/empty")
    assert empty.status_code == 204 and empty.data == b""
    text = client.get("/run/text")
    assert text.status_code == 200 and text.data == b"hello"
    assert text.headers["Content-Type"] == "text/plain; charset=utf-8"


def test_handler_reads_request_parts_and_its_config(serve):
    client = serve("""
        def handle(request):
            return {
                "method": request["method"],
                "name": request["path_params"]["name"],
                "q": request["query"].get("q"),
                "tags": request["query"].get("tag"),
                "agent": request["headers"].get("x-agent"),
                "body": request["json"],
                "greeting": config["greeting"],
                "endpoint": request["endpoint"],
            }
    """, block="      config: {greeting: hello}\n")
    response = client.post("/run/ada?q=x&tag=a&tag=b", json={"n": 1}, headers={"X-Agent": "tests"})
    assert response.json == {"method": "POST", "name": "ada", "q": "x", "tags": ["a", "b"], "agent": "tests",
                             "body": {"n": 1}, "greeting": "hello", "endpoint": "run"}


def test_state_keeps_data_between_requests(serve):
    client = serve("""
        def handle(request):
            count = state.incr("hits")
            state.set("last", request["path_params"]["name"])
            return {"hits": count, "last": state.get("last")}
    """)
    assert client.get("/run/a").json == {"hits": 1, "last": "a"}
    assert client.get("/run/b").json == {"hits": 2, "last": "b"}


def test_a_raising_handler_answers_500_with_the_request_id_and_no_traceback(serve, caplog):
    client = serve("""
        SECRET = "do-not-leak"
        def handle(request):
            return helper(request)

        def helper(request):
            raise ValueError("broken " + SECRET)
    """)
    with caplog.at_level(logging.WARNING, logger="backworks.modes.runtime"):
        response = client.get("/run/x", headers={"X-Request-Id": "req-42"})
    assert response.status_code == 500
    assert response.json == {"error": {"code": "handler_failed",
                                       "message": "the handler failed; the server log has the details",
                                       "request_id": "req-42"}}
    assert b"Traceback" not in response.data and b"do-not-leak" not in response.data
    logged = caplog.text
    assert "runtime endpoint run: handler error (request id req-42): handler.py:7: ValueError: broken do-not-leak" \
        in logged
    assert 'raise ValueError("broken " + SECRET)' in logged and "sandbox" not in logged.split("handler.py:7")[1]
    assert client.get("/run/again").status_code == 500


def test_a_slow_handler_answers_504_and_the_endpoint_keeps_working(serve):
    client = serve("""
        def handle(request):
            if request["path_params"]["name"] == "slow":
                while True:
                    pass
            return {"ok": True}
    """, block="      timeout_ms: 100\n")
    started = time.monotonic()
    response = client.get("/run/slow", headers={"X-Request-Id": "slow-1"})
    assert time.monotonic() - started < 1.0
    assert response.status_code == 504
    assert response.json == {"error": {"code": "handler_timeout", "message": "the handler did not finish within "
                                       "100 ms", "request_id": "slow-1"}}
    assert client.get("/run/fast").json == {"ok": True}


def test_a_memory_hungry_handler_answers_500(serve):
    client = serve("""
        def handle(request):
            if request["path_params"]["name"] == "hog":
                blocks = []
                while True:
                    blocks.append("x" * 1000000)
            return {"ok": True}
    """, block="      memory_mb: 32\n      timeout_ms: 5000\n")
    response = client.get("/run/hog")
    assert response.status_code == 500
    assert response.json["error"]["code"] == "handler_memory"
    assert response.json["error"]["message"] == "the handler went over its memory budget of 32 MB"
    assert client.get("/run/fine").json == {"ok": True}


@pytest.mark.parametrize("returned, message", [
    ('{"status": 700, "body": "x"}', "response.status: must be an integer from 200 to 599, not 700"),
    ('{"status": 200, "headers": {"X-Bad": "a\\r\\nSet-Cookie: x=1"}, "body": "x"}',
     "response.headers.X-Bad: header values cannot contain CR, LF or NUL"),
    ('{"status": 200, "body": 5}', "response.body: must be a string (use json for data)"),
    ('{"status": 200, "body": "a", "json": 1}', "response: give either body or json, not both"),
    ("{1, 2}", "set is not plain data (use dict, list, str, int, float, bool or None)"),
    ('float("nan")', "return value: nan is not JSON (NaN and infinities cannot be sent)"),
])
def test_an_invalid_return_value_answers_500_invalid(serve, returned, message):
    client = serve(f"def handle(request):\n    return {returned}\n")
    response = client.get("/run/x", headers={"X-Request-Id": "bad-1"})
    assert response.status_code == 500
    error = response.json["error"]
    assert (error["code"], error["request_id"]) == ("handler_invalid", "bad-1")
    assert error["message"].startswith("the handler returned an invalid response: ")
    assert error["message"].endswith(message)
    assert "Set-Cookie" not in response.headers


def test_process_isolation_answers_and_survives_a_runaway_handler(serve):
    client = serve("""
        def handle(request):
            if request["path_params"]["name"] == "spin":
                n = 0
                while True:
                    n += 1
            return {"pid_hidden": True, "name": request["path_params"]["name"]}
    """, block="      isolation: process\n      timeout_ms: 200\n")
    assert client.get("/run/one").json == {"pid_hidden": True, "name": "one"}
    assert client.get("/run/spin").status_code == 504
    assert client.get("/run/two").json == {"pid_hidden": True, "name": "two"}


def test_a_refused_script_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError) as caught:
        make_app(tmp_path, "import os\n\ndef handle(request):\n    return os.getcwd()\n")
    problems = caught.value.problems
    assert problems and all(p.startswith(f"{tmp_path / 'backworks.yaml'}:7: endpoints.run.runtime.script: ")
                            for p in problems)
    assert f"runtime.script: {tmp_path / 'handler.py'}:1: import of 'os' is not allowed (allowed: " in problems[0]


def test_a_script_without_handle_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError) as caught:
        make_app(tmp_path, "def before_request(request):\n    return None\n")
    assert caught.value.problems == [f"{tmp_path / 'backworks.yaml'}:7: endpoints.run.runtime.script: handler.py "
                                     f"defines no handle(request) function (runtime endpoints answer with it)"]


def test_a_missing_script_is_a_config_error(tmp_path):
    config = write_config(tmp_path, "endpoints:\n  run:\n    path: /run\n    mode: runtime\n    runtime:\n"
                                    "      script: nowhere.py\n")
    with pytest.raises(ConfigError) as caught:
        create_app(config)
    assert caught.value.problems == [f"{config}:6: endpoints.run.runtime.script: cannot read "
                                     f"{tmp_path / 'nowhere.py'}: No such file or directory"]


def test_a_script_failing_at_load_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError) as caught:
        make_app(tmp_path, "LIMIT = 1 // 0\n\ndef handle(request):\n    return LIMIT\n")
    assert caught.value.problems == [f"{tmp_path / 'backworks.yaml'}:7: endpoints.run.runtime.script: loading "
                                     f"the script failed (error): handler.py:1: ZeroDivisionError: integer "
                                     f"division or modulo by zero"]


def test_editing_the_script_changes_the_answer(tmp_path):
    app = make_app(tmp_path, "def handle(request):\n    return {'version': 1}\n")
    client = app.test_client()
    assert client.get("/run/x").json == {"version": 1}
    script = tmp_path / "handler.py"
    script.write_text("def handle(request):\n    return {'version': 2}\n")
    os.utime(script, (time.time() + 5, time.time() + 5))
    assert app.extensions["backworks"].check_files()
    assert client.get("/run/x").json == {"version": 2}
    script.write_text("def handle(request):\n    return (\n")
    os.utime(script, (time.time() + 10, time.time() + 10))
    app.extensions["backworks"].check_files()
    assert client.get("/run/x").json == {"version": 2}
    app.extensions["backworks"].runtime.close()


def test_under_gunicorn_a_worker_survives_failing_handlers(tmp_path, gunicorn):
    (tmp_path / "handler.py").write_text(textwrap.dedent("""
        def handle(request):
            kind = request["path_params"]["name"]
            if kind == "raise":
                raise RuntimeError("no")
            if kind == "spin":
                while True:
                    pass
            return {"ok": kind}
    """))
    config = write_config(tmp_path, "endpoints:\n  run:\n    path: /run/{name}\n    mode: runtime\n"
                                    "    runtime: {script: handler.py, timeout_ms: 150}\n")
    server = gunicorn(config, workers=2, worker_class="sync")
    for _ in range(3):
        assert requests.get(server.url + "/run/raise", timeout=5).status_code == 500
        assert requests.get(server.url + "/run/spin", timeout=5).status_code == 504
    assert requests.get(server.url + "/run/fine", timeout=5).json() == {"ok": "fine"}
    assert "Traceback" not in requests.get(server.url + "/run/raise", timeout=5).text
    assert "WORKER TIMEOUT" not in server.output() and "Worker exiting" not in server.output()


def test_the_example_quote_handler(tmp_path):
    config = write_config(tmp_path, f"""
        endpoints:
          quote:
            path: /quote/{{sku}}
            mode: runtime
            runtime:
              script: {ROOT / 'plugins_scripts/quote.py'}
              config: {{vat: 0.2, prices: {{kettle: 29.5}}}}
    """)
    app = create_app(config)
    client = app.test_client()
    assert client.get("/quote/Kettle?qty=2").json == {"sku": "kettle", "qty": 2, "unit_price": 29.5, "vat": 11.8,
                                                     "total": 70.8}
    assert client.get("/quote/spoon").status_code == 404
    assert client.get("/quote/kettle?qty=0").json == {"error": {"code": "bad_qty",
                                                                 "message": "qty must be a positive integer"}}
    app.extensions["backworks"].runtime.close()


def test_handler_calls_are_counted_by_outcome(serve):
    from prometheus_client import REGISTRY

    client = serve("def handle(request):\n    if request['path_params']['name'] == 'bad':\n        raise ValueError()\n"
                   "    return 1\n")

    def count(kind):
        TALLY.flush()
        return REGISTRY.get_sample_value("backworks_plugin_calls_total",
                                         {"plugin": "runtime:run", "hook": "handle", "kind": kind}) or 0

    before_ok, before_error = count("ok"), count("error")
    client.get("/run/good")
    client.get("/run/good")
    client.get("/run/bad")
    assert (count("ok") - before_ok, count("error") - before_error) == (2, 1)
