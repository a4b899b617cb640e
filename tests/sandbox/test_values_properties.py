"""Property tests of the one hook-result validator: it accepts only what the server can send, or says `invalid`."""
from __future__ import annotations

import gc
import json
import math
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backworks.http import Reply
from backworks.plugins.data import apply_response, reply_from_response
from backworks.sandbox import values

TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
REQUEST = {"method": "GET", "path": "/x", "path_params": {}, "query": {}, "headers": {"a": "1", "content-length": "3"},
           "body": "abc", "json": None, "client_ip": "127.0.0.1", "endpoint": "x"}
RESPONSE = {"status": 200, "headers": {"content-type": "application/json", "content-length": "11"},
            "json": {"ok": True}}

HEADER_NAMES = st.one_of(st.sampled_from(["x-a", "X-B", "content-length", "Transfer-Encoding", "connection",
                                          "set-cookie", "bad name", "", "x\r\n", "é"]), st.text(max_size=8))
HEADER_VALUES = st.one_of(st.text(max_size=12), st.sampled_from(["a\r\nb", "\x00", "café", "\u2603", "\ud800",
                                                                 "\t ok"]),
                          st.integers(), st.none(), st.booleans())
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20),
                    st.binary(max_size=4), st.sampled_from([math.nan, math.inf, "\ud800", 2 ** 5000]))


@pytest.fixture(scope="module", autouse=True)
def _no_hypothesis_gc_callback():
    """Hypothesis times collections with a gc callback it leaves installed: a collection inside a later test's
    script call would run it under the sandbox timer (the timeout it gets becomes an unraisable exception)."""
    yield
    gc.callbacks[:] = [callback for callback in gc.callbacks
                       if not getattr(callback, "__module__", "").startswith("hypothesis")]


def nested(leaves):
    """Arbitrary nested dicts/lists/tuples/sets of `leaves`."""
    return st.recursive(leaves, lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.tuples(inner, inner), st.frozensets(st.integers(), max_size=3),
        st.dictionaries(st.one_of(st.text(max_size=6), st.integers()), inner, max_size=4)), max_leaves=12)


UNHASHABLE = st.one_of(st.lists(st.text(max_size=2), max_size=2), st.dictionaries(st.text(max_size=2), st.none(),
                                                                                 max_size=1))
HEADERS = st.one_of(st.dictionaries(HEADER_NAMES, HEADER_VALUES, max_size=4),
                    st.lists(st.one_of(st.lists(st.one_of(HEADER_NAMES, HEADER_VALUES, UNHASHABLE), max_size=3),
                                       st.tuples(HEADER_NAMES, HEADER_VALUES)), max_size=4),
                    nested(SCALARS))
RESPONSES = st.fixed_dictionaries({}, optional={
    "status": st.one_of(st.integers(min_value=0, max_value=1000), st.booleans(), st.text(max_size=3)),
    "headers": HEADERS, "body": st.one_of(st.text(max_size=20), SCALARS),
    "json": nested(SCALARS), "cookies": st.none()})
REQUESTS = st.fixed_dictionaries({}, optional={
    "method": st.one_of(st.sampled_from(["GET", "POST", "GE T", "", "G\r\n"]), st.text(max_size=5)),
    "path": st.one_of(st.sampled_from(["/y", "/a b", ""]), st.text(max_size=6)),
    "headers": HEADERS, "query": nested(SCALARS), "path_params": nested(SCALARS),
    "body": st.one_of(st.text(max_size=10), SCALARS), "json": nested(SCALARS), "extra": st.none()})
ANYTHING = st.one_of(nested(SCALARS), RESPONSES, REQUESTS)


def _sendable_reply(reply: Reply) -> bytes:
    assert 200 <= reply.status <= 599
    for name, value in reply.headers:
        assert TOKEN.match(name), name
        value.encode("latin-1")
        assert not set(value) & {"\r", "\n", "\0"}
    sent = []
    body = reply({"REQUEST_METHOD": "GET"}, lambda status, headers: sent.append(headers))
    body = b"".join(body)
    lengths = [v for k, v in sent[0] if k.lower() == "content-length"]
    # RFC 9110 8.6: no Content-Length on a 204; a 304's would describe the representation it does not send
    assert lengths == ([] if reply.status in (204, 304) else [str(len(body))]), (lengths, len(body))
    assert not [k for k, v in sent[0] if k.lower() in ("transfer-encoding", "connection", "upgrade")]
    return body


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(RESPONSES)
def test_a_short_circuit_response_is_sendable_or_invalid(value):
    try:
        response = values.response(value, None)
    except values.InvalidValue:
        return
    body = _sendable_reply(reply_from_response(response))
    if response.get("json") is not None:
        assert json.loads(body) == response["json"]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(RESPONSES)
def test_a_changed_response_is_sendable_or_invalid(value):
    try:
        response = values.response(value, RESPONSE)
    except values.InvalidValue:
        return
    raw = Reply(200, [("Content-Type", "application/json"), ("Content-Length", "11")], b'{"ok":true}')
    _sendable_reply(apply_response(raw, RESPONSE, response))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(REQUESTS)
def test_a_changed_request_is_valid_or_invalid(value):
    try:
        request = values.request(value, REQUEST)
    except values.InvalidValue:
        return
    assert TOKEN.match(request["method"]) and " " not in request["path"]
    assert request["headers"]["content-length"] == "3"  # the server's framing, whatever the hook said
    for name, item in request["headers"].items():
        assert TOKEN.match(name) and name == name.lower()
        item.encode("latin-1")
    assert set(request) <= set(values.REQUEST_FIELDS)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ANYTHING)
def test_the_validator_never_raises_anything_but_invalid(value):
    for check in (lambda: values.plain(value), lambda: values.response(value, None),
                  lambda: values.response(value, RESPONSE), lambda: values.request(value, REQUEST)):
        try:
            check()
        except values.InvalidValue:
            pass


def _reference_request(value, current: dict) -> dict:
    """values.request as its contract reads, with none of its shortcuts: every field and every header checked."""
    if type(value) is not dict:
        raise values.InvalidValue("not a dict")
    for name in value:
        if name not in values.REQUEST_FIELDS:
            raise values.InvalidValue("unknown field")
    result = dict(current)
    for name, item in value.items():
        if name != "headers":
            result[name] = values.plain(item)
            continue
        if type(item) is not dict or len(item) > values.MAX_HEADERS:
            raise values.InvalidValue("headers")
        headers = {}
        for key, text in item.items():
            values._check_header(key, text, "request.headers")
            headers[key.lower()] = text
        for key in values.IGNORED_HEADERS:  # framing and hop-by-hop: the server's, whatever the hook did
            if key in current["headers"]:
                headers[key] = current["headers"][key]  # (in the hook's place for it, else at the end)
            else:
                headers.pop(key, None)
        result["headers"] = current["headers"] if headers == current["headers"] else headers
    checks = {"method", "path", "query", "body", "client_ip", "endpoint"} & set(value)
    for name in checks:  # the field rules themselves: the validator's, tried on the changed fields
        if value[name] != current.get(name):
            values._REQUEST_CHECKS[name](result[name])
    return result


SERVER_HEADERS = st.dictionaries(st.sampled_from(["host", "accept", "connection", "content-length", "x-a",
                                                  "user-agent", "te"]), st.sampled_from(["1", "*/*", "close", "x"]),
                                 max_size=5)
HEADER_EDITS = st.lists(st.tuples(st.sampled_from(["set", "delete"]),
                                  st.sampled_from(["x-p", "X-P", "host", "Host", "connection", "Content-Length",
                                                   "content-length", "keep-alive", "x-a", "bad name", "te"]),
                                  st.sampled_from(["1", "x", "close", "", "a\r\nb", "\x85"])), max_size=4)
FIELD_EDITS = st.dictionaries(st.sampled_from(["method", "path", "body", "query", "endpoint", "extra"]),
                              st.sampled_from(["POST", "/y", "text", {"q": "1"}, None, "a b"]), max_size=2)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(SERVER_HEADERS, HEADER_EDITS, FIELD_EDITS)
def test_a_hook_result_is_validated_as_the_plain_reading_of_the_contract(server, edits, fields):
    """The validator's shortcuts (one walk, known names, the headers-only compare, the server's framing kept)
    give what checking every field and header would: the same request, the same header order, or invalid."""
    current = {"method": "GET", "path": "/x", "path_params": {}, "query": {}, "headers": server, "body": None,
               "json": None, "client_ip": "127.0.0.1", "endpoint": "x"}
    value = values.copy_shaped(current)
    for action, name, text in edits:
        if action == "set":
            value["headers"][name] = text
        else:
            value["headers"].pop(name, None)
    value.update(fields)
    try:
        expected = _reference_request(value, current)
    except values.InvalidValue:
        expected = None
    try:
        got, changed = values.request_changes(value, current)
    except values.InvalidValue:
        got = None
    assert (got is None) == (expected is None), (value, got, expected)
    if got is not None:
        assert got == expected
        assert list(got["headers"]) == list(expected["headers"])  # one order, whatever path was taken
        assert (got["headers"] is current["headers"]) == (expected["headers"] is current["headers"])
        assert {name for name in expected if expected[name] != current[name]} <= set(changed)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.one_of(HEADER_NAMES, UNHASHABLE, st.integers(), st.none()), HEADER_VALUES).map(list),
                max_size=4))
def test_response_header_pairs_of_any_kind_are_valid_or_invalid(pairs):
    """A pair's name can be anything a script builds (a list, a dict): the answer is a value or `invalid`."""
    for current in (None, RESPONSE):
        try:
            values.response({"headers": pairs}, current)
        except values.InvalidValue:
            pass
