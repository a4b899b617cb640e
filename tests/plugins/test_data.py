"""The request as plugin hooks see it: built straight from the WSGI environ, the same as werkzeug reads it."""
from __future__ import annotations

import json
import uuid

import pytest
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from backworks.http import JSON_TYPE, Reply, RequestData
from backworks.plugins.data import apply_request, apply_response, request_data, response_data


def werkzeug_view(environ: dict) -> dict:
    headers: dict = {}
    for key, value in Request(environ).headers.items():
        name = key.lower()
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers


def test_request_headers_match_werkzeug_with_lower_case_names_and_joined_repeats():
    environ = EnvironBuilder(path="/x", method="POST", query_string="a=1&a=2&b=",
                             headers=[("X-Tag", "one"), ("Accept", "*/*")], data=b'{"k": 1}',
                             content_type="application/json").get_environ()
    environ["HTTP_X_ODD__NAME"] = "v"
    environ["HTTP_CONTENT_TYPE"] = "ignored/by-werkzeug"
    data = request_data(RequestData(Request(environ), "x", {"id": "7"}, "rid", 1024, "127.0.0.1"), True)
    assert data["headers"] == werkzeug_view(environ)
    assert data["headers"]["content-type"] == "application/json" and data["headers"]["x-odd--name"] == "v"
    assert data["query"] == {"a": ["1", "2"], "b": ""}
    assert (data["path_params"], data["json"], data["body"]) == ({"id": "7"}, {"k": 1}, '{"k": 1}')


def test_request_without_query_or_body_gives_empty_fields():
    environ = EnvironBuilder(path="/x").get_environ()
    environ["CONTENT_LENGTH"] = ""
    data = request_data(RequestData(Request(environ), "x", {}, "rid", 1024, "127.0.0.1"), True)
    assert data["query"] == {} and data["body"] is None and data["json"] is None
    assert data["headers"] == werkzeug_view(environ) and "content-length" not in data["headers"]


def test_request_dict_reads_the_environ_without_building_a_werkzeug_request():
    environ = EnvironBuilder(path="/x", headers={"X-Tag": "one"}).get_environ()
    request = RequestData(environ, "x", {}, "rid", 1024, "127.0.0.1")
    data = request_data(request, True)
    assert data["headers"]["x-tag"] == "one" and data["body"] is None
    assert request._wz is None  # the plugin path needs no werkzeug Request for a body-less GET


def test_body_is_announced_by_a_positive_length_or_a_chunked_transfer():
    from backworks.http import declares_body

    assert [declares_body(e) for e in ({}, {"CONTENT_LENGTH": ""}, {"CONTENT_LENGTH": "0"},
                                       {"CONTENT_LENGTH": " 12 "}, {"CONTENT_LENGTH": "-1"},
                                       {"CONTENT_LENGTH": "x"}, {"HTTP_TRANSFER_ENCODING": "chunked"})] == \
        [False, False, False, True, False, False, True]


# What a hook changed is what the server acts on, even when == cannot see the change (1 == 1.0 == True).
@pytest.mark.parametrize("before, after", [(1, True), (0, False), (1, 1.0), ({"a": 1}, {"a": True}),
                                           ([1, 2], [1.0, 2])])
def test_a_json_change_to_an_equal_value_of_another_type_reaches_the_handler(before, after):
    environ = EnvironBuilder(path="/x", method="POST", json={"v": before}).get_environ()
    request = RequestData(Request(environ), "x", {}, "rid", 1024, "127.0.0.1")
    original = request_data(request, True)
    changed = apply_request(request, original, {**original, "json": {"v": after}}, True)
    assert json.loads(changed.body) == {"v": after} and type(json.loads(changed.body)["v"]) is type(after)
    assert changed.json == {"v": after}


@pytest.mark.parametrize("before, after", [(1, True), (1, 1.0), (False, 0)])
def test_an_after_response_json_change_to_an_equal_value_of_another_type_is_sent(before, after):
    reply = Reply(200, [("Content-Type", JSON_TYPE)], json.dumps({"ok": before}).encode())
    original = response_data(reply)
    sent = apply_response(reply, original, {**original, "json": {"ok": after}})
    assert json.loads(sent.body) == {"ok": after} and type(json.loads(sent.body)["ok"]) is type(after)


def test_route_parameters_hooks_cannot_hold_are_given_as_text():
    environ = EnvironBuilder(path="/x").get_environ()
    key = uuid.UUID("12345678-1234-5678-1234-567812345678")
    data = request_data(RequestData(Request(environ), "x", {"id": key, "n": 3, "f": 1.5}, "rid", 1024, ""), False)
    assert data["path_params"] == {"id": str(key), "n": 3, "f": 1.5}


@pytest.mark.parametrize("before, after", [(7, 7.0), (1, True), (2.0, 2)])
def test_a_route_parameter_changed_to_an_equal_number_of_another_type_reaches_the_handler(before, after):
    environ = EnvironBuilder(path="/r/7").get_environ()
    request = RequestData(Request(environ), "r", {"id": before}, "rid", 1024, "127.0.0.1")
    original = request_data(request, True)
    for changed in (None, {"path_params"}):  # the phase may name the field, or not
        rebuilt = apply_request(request, original, {**original, "path_params": {"id": after}}, True, changed)
        assert rebuilt.path_params == {"id": after} and type(rebuilt.path_params["id"]) is type(after)


def test_an_unchanged_json_body_is_the_same_however_its_strings_are_held():
    from backworks.http import same_json

    made = "".join(["x", "y"])  # equal to an interned "xy", held differently
    assert same_json({"k": made, "n": [made, made]}, {"k": "xy", "n": ["xy", "xy"]})
    assert not same_json({"n": 1}, {"n": True}) and not same_json([0.0], [-0.0]) and not same_json(1, 1.0)
    environ = EnvironBuilder(path="/x", method="POST", data='{"n":"x"}',
                             content_type="application/json; charset=utf-8").get_environ()
    request = RequestData(Request(environ), "x", {}, "rid", 1024, "127.0.0.1")
    original = request_data(request, True)
    rebuilt = apply_request(request, original, {**original, "json": {"n": "".join(["", "x"])}}, True, {"json"})
    assert rebuilt is request  # nothing changed: the client's body and Content-Type go on as sent
