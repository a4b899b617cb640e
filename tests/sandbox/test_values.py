"""Validation of what hooks return: plain data only, right shapes, no header injection."""
from __future__ import annotations

import marshal

import pytest

from backworks.sandbox import values

REQUEST = {"method": "GET", "path": "/x", "path_params": {}, "query": {}, "headers": {"a": "1"}, "body": None,
           "json": None, "client_ip": "127.0.0.1", "endpoint": "x"}


def test_partial_request_keeps_the_other_fields_and_lowercases_header_names():
    result = values.request({"headers": {"X-Key": "v"}, "path": "/y"}, REQUEST)
    assert result == {**REQUEST, "headers": {"x-key": "v"}, "path": "/y"}


def test_response_defaults_and_body_json_exclusivity():
    assert values.response({"json": {"a": 1}}, None) == {"status": 200, "headers": {}, "json": {"a": 1}}
    assert values.response({"body": "x"}, {"status": 201, "headers": {}, "json": [1]}) == {
        "status": 201, "headers": {}, "body": "x"}


@pytest.mark.parametrize("value, message", [
    ({"status": 200, "headers": {"x": "a\r\nb"}}, "response.headers.x: header values cannot contain CR, LF or NUL"),
    ({"status": 200, "headers": {"bad name": "a"}}, "response.headers: invalid header name 'bad name'"),
    ({"status": 99}, "response.status: must be an integer from 200 to 599, not 99"),
    ({"status": True}, "response.status: must be an integer from 200 to 599, not True"),
    ({"status": 200, "body": 5}, "response.body: must be a string (use json for data)"),
    ({"body": "a", "json": 1}, "response: give either body or json, not both"),
    ({"cookies": {}}, "response: unknown field 'cookies' (fields: status, headers, body, json)"),
    ({"status": 200, "headers": [["a"]]}, "response.headers: a header list holds [name, value] pairs"),
])
def test_invalid_responses_are_refused_with_a_clear_message(value, message):
    with pytest.raises(values.InvalidValue) as caught:
        values.response(value, None)
    assert str(caught.value) == message


def test_cycles_depth_size_and_foreign_types_are_refused():
    cyclic: dict = {}
    cyclic["self"] = cyclic
    cases = [(cyclic, "nested deeper than 32 levels (or cyclic)"), ({"f": print}, "value.f: builtin_function_or_method "
             "is not plain data (use dict, list, str, int, float, bool or None)"),
             ("x" * (2 * 1024 * 1024), "value: larger than 1048576 bytes"), ({1: "a"}, "value: keys must be strings, "
             "not int"), (10 ** 4300, "value: integer too large (more than 4300 digits)"),
             ([10 ** 4000] * 300, "value[262]: larger than 1048576 bytes")]  # a big integer counts its digits
    for value, message in cases:
        with pytest.raises(values.InvalidValue) as caught:
            values.plain(value)
        assert str(caught.value).endswith(message)


def test_tuples_become_lists():
    assert values.plain({"a": (1, (2, 3))}) == {"a": [1, [2, 3]]}


def test_framing_and_hop_by_hop_headers_from_a_hook_keep_the_servers_values():
    current = {**REQUEST, "headers": {"a": "1", "content-length": "3", "transfer-encoding": "chunked"}}
    result = values.request({"headers": {"A": "2", "Content-Length": "99", "connection": "close"}}, current)
    assert result["headers"] == {"a": "2", "content-length": "3", "transfer-encoding": "chunked"}


def test_response_header_pairs_are_kept_as_pairs_without_framing_headers():
    result = values.response({"status": 201, "headers": [["Set-Cookie", "a=1"], ["Set-Cookie", "b=2"],
                                                         ["Content-Length", "1"]]}, None)
    assert result == {"status": 201, "headers": [["Set-Cookie", "a=1"], ["Set-Cookie", "b=2"]], "body": ""}


@pytest.mark.parametrize("value, message", [
    ({"status": 101}, "response.status: must be an integer from 200 to 599, not 101"),
    ({"headers": {"x": "caf\u00e9 \u2603"}}, "response.headers.x: header values must be visible latin-1 text (no "
                                            "control characters)"),
    ({"json": {"r": [1.0, float("inf")]}}, "response.json.r[1]: inf is not JSON (NaN and infinities cannot be sent)"),
    ({"body": "a\ud800"}, "response.body: text with a lone surrogate cannot be sent (it is not valid Unicode)"),
])
def test_what_the_server_cannot_send_is_invalid(value, message):
    with pytest.raises(values.InvalidValue) as caught:
        values.response(value, None)
    assert str(caught.value) == message


@pytest.mark.parametrize("path", ["http://evil.example/x", "//evil.example/x", "x", "*", "noslash"])
def test_a_hook_path_is_origin_form_only(path):
    with pytest.raises(values.InvalidValue, match="request.path: must start with a single '/'"):
        values.request({**REQUEST, "path": path}, REQUEST)


@pytest.mark.parametrize("params", [{"id": 7}, {"x": 1.5}, {"id": 7, "slug": "a"}])
def test_number_route_parameters_a_hook_leaves_alone_pass(params):
    current = {**REQUEST, "path_params": params}
    returned = {**current, "path_params": dict(params), "headers": {**REQUEST["headers"], "x-p": "1"}}
    assert values.request(returned, current)["headers"]["x-p"] == "1"


def test_a_bool_for_a_number_route_parameter_is_refused():
    current = {**REQUEST, "path_params": {"id": 1}}
    with pytest.raises(values.InvalidValue, match="request.path_params.id: must be a string or a number"):
        values.request({**current, "path_params": {"id": True}}, current)


def test_too_many_headers_are_refused_before_any_is_checked():
    many = {f"x-{n}": "v" for n in range(values.MAX_HEADERS + 1)}
    with pytest.raises(values.InvalidValue, match=f"more than {values.MAX_HEADERS} headers"):
        values.request({**REQUEST, "headers": many}, REQUEST)
    with pytest.raises(values.InvalidValue, match=f"more than {values.MAX_HEADERS} headers"):
        values.response({"status": 200, "headers": many}, None)


@pytest.mark.parametrize("value", ["a\x85b", "\x9f", "\x80"])
def test_c1_control_characters_are_refused_in_header_values(value):
    with pytest.raises(values.InvalidValue, match="visible latin-1"):
        values.request({**REQUEST, "headers": {"x-c1": value}}, REQUEST)


SHAPED = [REQUEST,
          {**REQUEST, "path_params": {"id": 7, "slug": "a"}, "query": {"tag": ["a", "b"], "q": "x"}},
          {**REQUEST, "json": {"items": [1, 2.5, True, None, {"deep": ["x"]}]}, "body": '{"items": []}'},
          {**REQUEST, "path_params": {"name": "n"}, "query": {"q": "x"}, "headers": {"a": "1", "b": "2"}}]


@pytest.mark.parametrize("request_", SHAPED)
def test_a_shaped_copy_is_deep_and_equal_as_its_generic_twin_is(request_):
    copied = values.copy_shaped(request_)
    generic, _ = values.copy_request(request_)
    assert copied == request_ == generic and marshal.dumps(copied, 2) == marshal.dumps(request_, 2)
    # Nothing mutable is shared with the original: change every container of the copy, the original stays.
    before = values.copy(request_)
    for name in ("path_params", "query", "headers"):
        copied[name]["added"] = "x"
        for item in copied[name].values():
            if type(item) is list:
                item.append("x")
    if type(copied["json"]) is dict:
        copied["json"]["items"][4]["deep"].append("x")
    assert request_ == before


def test_changed_headers_count_against_the_size_cap_and_unchanged_ones_are_not_checked_again():
    big = "v" * (values.MAX_BYTES // 2)
    current = values.request({**REQUEST, "headers": {"a": "1", "x-big": big}}, REQUEST)
    assert values.request({**current, "headers": {**current["headers"], "x-new": "1"}}, current)["headers"][
        "x-new"] == "1"
    with pytest.raises(values.InvalidValue, match="request.headers: larger than"):
        values.request({**current, "headers": {**current["headers"], "x-more": big, "x-most": big}}, current)


def test_a_request_equal_to_the_current_one_is_the_current_one_unless_numbers_make_equal_inexact():
    same = values.copy(REQUEST)
    assert values.request(same, REQUEST) is REQUEST
    current = {**REQUEST, "json": {"n": 1}}
    assert values.request({**current, "json": {"n": 1}}, current) == current  # checked again: equal is inexact
    assert values.request({**current, "json": {"n": True}}, current)["json"] == {"n": True}
    assert type(values.request({**current, "json": {"n": 1.0}}, current)["json"]["n"]) is float


def test_headers_do_not_add_up_across_hooks_past_the_size_cap():
    part = "v" * (values.MAX_BYTES * 2 // 5)
    current = REQUEST
    for n in range(2):  # two hooks, each adding 0.4 MB: 0.8 MB in all
        current = values.request({**current, "headers": {**current["headers"], f"x-{n}": part}}, current)
    with pytest.raises(values.InvalidValue, match="request.headers: larger than"):
        values.request({**current, "headers": {**current["headers"], "x-2": part}}, current)  # a third: 1.2 MB


def test_oversized_headers_are_refused_before_any_value_is_looked_at(monkeypatch):
    looked = []
    monkeypatch.setattr(values, "_check_header", lambda *args: looked.append(args))
    shared = "a" * 1_000_000  # one string under 990 names: nothing for the hook, 990 MB to scan
    with pytest.raises(values.InvalidValue, match="larger than"):
        values.request({**REQUEST, "headers": {f"x-{n}": shared for n in range(990)}}, REQUEST)
    assert looked == []


@pytest.mark.parametrize("odd", [1, None, 2.5, True])
def test_a_header_without_a_length_is_refused_before_any_text_is_scanned(monkeypatch, odd):
    scanned = []
    real = values._check_header
    monkeypatch.setattr(values, "_check_header", lambda name, item, path: (scanned.append(name),
                                                                           real(name, item, path)))
    shared = "\xe9" * 100_000
    headers = {**{f"x-{n}": shared for n in range(9)}, "x-odd": odd}
    with pytest.raises(values.InvalidValue, match="header values must be strings"):
        values.request({**REQUEST, "headers": headers}, REQUEST)
    assert scanned == ["x-odd"]  # straight to the bad pair: none of the long values was looked at


@pytest.mark.parametrize("field, value", [
    ("query", {"\ud800": "v"}), ("path_params", {"a\udfff": "v"}), ("json", {"k": {"\ud83d": 1}}),
])
def test_a_key_with_a_lone_surrogate_is_invalid_like_such_a_value(field, value):
    with pytest.raises(values.InvalidValue, match="lone surrogate"):
        values.request({**REQUEST, field: value}, REQUEST)
    with pytest.raises(values.InvalidValue, match="lone surrogate"):
        values.response({"status": 200, "json": value}, None)


@pytest.mark.parametrize("field", ["client_ip", "endpoint"])
def test_client_ip_and_endpoint_are_read_only(field):
    assert values.request({**REQUEST, field: REQUEST[field]}, REQUEST) is REQUEST  # the same value: fine
    with pytest.raises(values.InvalidValue, match=f"request.{field} is read-only"):
        values.request({**REQUEST, field: "10.9.9.9"}, REQUEST)


@pytest.mark.parametrize("request_", [REQUEST, {"path_params": {}, "query": {"q": "1"}, "headers": {"a": "1"}},
                                      {**REQUEST, "path_params": {"id": "7"}, "body": "text"}])
def test_a_text_only_copy_shares_no_container_with_the_request(request_):
    assert values.copy_request(request_)[1] is True  # text only: the copy phases makes is this one
    copied = values.copy_text_only(request_)
    assert copied == request_ and copied is not request_
    for name in ("path_params", "query", "headers"):
        if name in request_:
            assert copied[name] is not request_[name]


def test_header_names_known_valid_are_bounded_and_an_invalid_one_is_never_remembered(monkeypatch):
    from backworks.sandbox import values

    monkeypatch.setattr(values, "_VALID_NAMES", set())
    monkeypatch.setattr(values, "MAX_VALID_NAMES", 8)
    current = {"headers": {}}
    for n in range(20):
        assert values.request({"headers": {f"x-{n}": "1"}}, current)["headers"] == {f"x-{n}": "1"}
    assert len(values._VALID_NAMES) == 8
    for bad in ("bad name", "x\r\n", "é"):
        with pytest.raises(values.InvalidValue, match="invalid header name"):
            values.request({"headers": {bad: "1"}}, current)
        with pytest.raises(values.InvalidValue, match="invalid header name"):  # refused again, not remembered
            values.request({"headers": {bad: "1"}}, current)
    assert not {"bad name", "x\r\n", "é"} & values._VALID_NAMES


@pytest.mark.parametrize("name", [["x-a"], {}, {"x"}, bytearray(b"x-a"), 7, None])
def test_a_header_pair_whose_name_is_no_text_is_invalid_whatever_its_kind(name):
    from backworks.sandbox import values

    with pytest.raises(values.InvalidValue, match="invalid header name|not plain data"):
        values.response({"headers": [[name, "1"]]}, None)


def test_a_long_header_name_a_hook_sets_is_checked_but_not_kept(monkeypatch):
    from backworks.sandbox import values

    monkeypatch.setattr(values, "_VALID_NAMES", set())
    name = "x-" + "a" * 100_000
    assert name in values.request({"headers": {name: "1"}}, {"headers": {}})["headers"]
    assert values._VALID_NAMES == set()


@pytest.mark.parametrize("extra", [{"path_params": {"id": 7}}, {"json": {"a": 1}}, {}])
def test_headers_returned_unchanged_in_another_mapping_kind_are_unchanged_not_invalid(extra):
    """Equal headers in an OrderedDict (what a hook can build) change nothing, route parameters or JSON or not."""
    import collections

    from backworks.sandbox import values

    current = {"method": "GET", "path": "/x", "path_params": {}, "query": {}, "headers": {"a": "1", "b": "2"},
               "body": None, "json": None, "client_ip": "127.0.0.1", "endpoint": "x", **extra}
    value = values.copy_shaped(current)
    value["headers"] = collections.OrderedDict(value["headers"])
    result, changed = values.request_changes(value, current)
    assert result["headers"] is current["headers"] and "headers" not in changed
