"""The example scripts in plugins_scripts/: each hook under the real sandbox, and wired into an app."""
from __future__ import annotations

import uuid

import pytest

from backworks.plugins.devkit import run_hook
from tests.helpers.basics import ROOT
from tests.helpers.plugins import plugin_app

# The inline sandbox times scripts with SIGALRM: pytest-timeout must not take that signal.
pytestmark = pytest.mark.timeout(120, method="thread")

SCRIPTS = ROOT / "plugins_scripts"
JSON_RESPONSE = {"status": 200, "headers": {"content-type": "application/json"}}


def examples_config(name: str, **settings) -> dict:
    return {name: {"script": str(SCRIPTS / f"{name}.py"), **settings}}


def test_add_header_after_response_adds_configured_header():
    run = run_hook(SCRIPTS / "add_header.py", "after_response", config={"name": "X-Shop", "value": "1"})
    assert run.ok, run.outcome.message
    assert run.result["headers"] == {"content-type": "application/json", "x-shop": "1"}


def test_api_key_before_request_answers_401_without_a_known_key():
    config = {"keys": ["k1", "k2"]}
    allowed = run_hook(SCRIPTS / "api_key.py", "before_request", {"headers": {"x-api-key": "k2"}}, config=config)
    assert allowed.ok and "response" not in allowed.result
    assert allowed.result["headers"] == {"x-api-key": "k2"}
    refused = run_hook(SCRIPTS / "api_key.py", "before_request", {"headers": {"x-api-key": "k3"}}, config=config)
    assert refused.result["response"]["status"] == 401
    assert refused.result["response"]["json"]["error"]["code"] == "unauthorized"


def test_api_key_on_load_refuses_a_config_without_keys():
    run = run_hook(SCRIPTS / "api_key.py", "on_load", config={"keys": []})
    assert run.outcome.kind == "error"
    assert "api_key needs at least one key in config.keys" in run.outcome.message


def test_api_key_health_check_is_healthy_with_keys():
    run = run_hook(SCRIPTS / "api_key.py", "health_check", config={"keys": ["k"]})
    assert run.ok and run.result is True


def test_api_key_in_an_app_with_on_error_closed(tmp_path):
    _, client = plugin_app(tmp_path, {}, examples_config("api_key", on_error="closed", config={"keys": ["s3"]}))
    assert client.get("/echo", headers={"X-Api-Key": "s3"}).status_code == 200
    refused = client.get("/echo", headers={"X-Api-Key": "nope"})
    assert refused.status_code == 401
    assert refused.headers["WWW-Authenticate"] == "ApiKey"
    assert refused.get_json() == {"error": {"code": "unauthorized", "message": "missing or unknown X-Api-Key header"}}


def test_request_id_before_request_and_after_response_round_trip(tmp_path):
    _, client = plugin_app(tmp_path, {}, examples_config("request_id"))
    response = client.get("/echo")
    generated = response.headers["X-Correlation-Id"]
    assert len(generated) == 32
    assert client.get("/echo", headers={"X-Correlation-Id": "abc"}).headers["X-Correlation-Id"] == "abc"


def test_transform_response_drops_fields_and_wraps_in_envelope():
    response = {**JSON_RESPONSE, "json": [{"id": 1, "cost": 2, "nested": {"cost": 3, "a": 1}}]}
    run = run_hook(SCRIPTS / "transform_response.py", "after_response", response=response,
                   config={"drop": ["cost"], "envelope": "data"})
    assert run.ok, run.outcome.message
    assert run.result["json"] == {"data": [{"id": 1, "nested": {"a": 1}}]}


def test_transform_response_leaves_non_json_responses_alone():
    run = run_hook(SCRIPTS / "transform_response.py", "after_response",
                   response={"status": 200, "headers": {}, "body": "text"}, config={"drop": ["x"]})
    assert run.ok and run.result == {"status": 200, "headers": {}, "body": "text"}


@pytest.mark.parametrize("backend", ["memory", "redis"])
def test_rate_limit_answers_429_past_the_limit(tmp_path, backend, request):
    extra = {"server": {"watch": False, "access_log": False}}
    if backend == "redis":
        extra["state"] = {"url": request.getfixturevalue("redis_url")}
    name = f"rate_limit_{uuid.uuid4().hex[:8]}"  # its own state namespace on the shared Redis
    plugins = {name: {"script": str(SCRIPTS / "rate_limit.py"), "config": {"limit": 3, "window_s": 60}}}
    _, client = plugin_app(tmp_path, {}, plugins, extra=extra)
    statuses = [client.get("/echo").status_code for _ in range(5)]
    assert statuses == [200, 200, 200, 429, 429]
    refused = client.get("/echo")
    assert refused.get_json() == {"error": {"code": "rate_limited", "message": "more than 3 requests in 60 s"}}
    assert 1 <= int(refused.headers["Retry-After"]) <= 61
