"""The errors callers tell apart: a ConfigError carries every problem, an HTTPError its status and code."""
from __future__ import annotations

from backworks.errors import BackworksError, ConfigError, HTTPError


def test_config_error_keeps_a_copy_of_every_problem_and_reads_them_one_per_line():
    problems = ["a.yaml:1: name: required field is missing", "a.yaml:4: endpoints.x.path: must start with '/'"]
    error = ConfigError(problems)
    problems.append("added later")
    assert error.problems == ["a.yaml:1: name: required field is missing",
                              "a.yaml:4: endpoints.x.path: must start with '/'"]
    assert str(error) == "a.yaml:1: name: required field is missing\na.yaml:4: endpoints.x.path: must start with '/'"
    assert isinstance(error, BackworksError)


def test_http_error_answers_with_its_status_code_and_message_and_no_headers_by_default():
    error = HTTPError(404, "not_found", "no endpoint matches GET /x")
    assert (error.status, error.code, error.message, error.headers, error.details) == (
        404, "not_found", "no endpoint matches GET /x", {}, None)
    assert str(error) == "no endpoint matches GET /x"
    assert HTTPError(405, "method_not_allowed", "m", headers={"Allow": "GET"}).headers == {"Allow": "GET"}
