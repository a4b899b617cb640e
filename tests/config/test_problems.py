"""Config problems as users read them: "file:line: field.path: message (hint)", sorted by file and line."""
from __future__ import annotations

import cerberus

from backworks.config.problems import explain_errors, format_problem, path_text, sort_problems, suggest

LINES = {("endpoints",): 3, ("endpoints", "users"): 4, ("endpoints", "users", "path"): 5}


def test_a_path_reads_like_the_yaml_with_list_indexes_in_brackets():
    assert path_text(("endpoints", "users", "mock", "headers", 0)) == "endpoints.users.mock.headers[0]"
    assert path_text(()) == "(top level)"


def test_a_problem_points_at_the_line_of_its_field_or_of_the_nearest_parent():
    assert format_problem("a.yaml", LINES, ("endpoints", "users", "path"), "bad") == (
        "a.yaml:5: endpoints.users.path: bad")
    assert format_problem("a.yaml", LINES, ("endpoints", "users", "mock", "status"), "bad") == (
        "a.yaml:4: endpoints.users.mock.status: bad")
    assert format_problem("a.yaml", LINES, ("server",), "bad") == "a.yaml:1: server: bad"


def test_suggest_names_the_closest_choice_or_lists_a_short_set_of_them():
    assert suggest("mok", ["mock", "proxy", "replay"]) == " (did you mean 'mock'?)"
    assert suggest("zzz", ["proxy", "mock"]) == " (allowed: mock, proxy)"
    assert suggest("zzz", [f"choice{i}" for i in range(13)]) == ""


def test_problems_sort_by_file_then_line_then_column_and_a_problem_without_a_line_comes_first():
    problems = ["b.yaml:2: x", "a.yaml:10: y", "a.yaml:9:3: z", "a.yaml: without a line", "a.yaml:9:1: w"]
    assert sort_problems(problems) == ["a.yaml: without a line", "a.yaml:9:1: w", "a.yaml:9:3: z", "a.yaml:10: y",
                                       "b.yaml:2: x"]


def test_cerberus_errors_read_as_plain_messages_with_hints():
    validator = cerberus.Validator({"mode": {"type": "string", "allowed": ["mock", "proxy"]},
                                    "port": {"type": "integer", "min": 1}})
    assert not validator.validate({"mode": "mok", "port": 0, "prot": 1})
    messages = sorted(message for _, message in explain_errors(validator))
    assert messages == ["min value is 1, got 0", "unallowed value 'mok' (did you mean 'mock'?)",
                        "unknown field (did you mean 'port'?)"]
