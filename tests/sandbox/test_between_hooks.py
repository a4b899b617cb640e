"""What one hook hands the next in a phase: exact plain data only, and a value the host can always look at.

Class 1: a hook's own copy of the request may serve the next hook (a thaw per hook costs more) only when
it is an exact plain copy. A container that merely compares equal (a defaultdict, an OrderedDict, a
Counter: what scripts can build) would carry one script's objects, and its functions, into another
script's call. Every construction below leaves or returns such an equal value; the next hook must
see plain dicts and strings, and a missing key must raise KeyError in it without running the first script.

Class 2: what a hook returns is checked by host code after the call, off its deadline: an error message
must never str() or repr() a script-built value (seconds of C work for big ints in a tuple, or a
ValueError past sys.int_max_str_digits). Each value below must end as `invalid` for its plugin only, fast.
"""
from __future__ import annotations

import time

import pytest

from backworks.sandbox import Budget, Sandbox, Step, compile_script

REQUEST = {"method": "GET", "path": "/", "path_params": {}, "query": {"q": "1"},
           "headers": {"authorization": "Bearer one", "accept": "*/*"}, "body": None, "json": None,
           "client_ip": "127.0.0.1", "endpoint": "e"}

# How the first hook swaps in an equal but inexact container (`request` is its argument).
EQUAL_BUT_NOT_PLAIN = {
    "defaultdict": "collections.defaultdict(spy, request['headers'])",
    "ordereddict": "collections.OrderedDict(request['headers'])",
    "counter": "collections.Counter(request['headers'])",
    "ordereddict_of_a_defaultdict": "collections.OrderedDict(collections.defaultdict(spy, request['headers']))",
}

FIRST = '''
import collections
def spy():
    log.warning("first script ran in another call")
    return "spied"
def before_request(request):
    request["{field}"] = {expression}
    return {returned}
'''

NEXT = '''
import collections
ODD = (collections.defaultdict, collections.OrderedDict, collections.Counter)
def plain(value):
    if isinstance(value, ODD):
        return False
    if isinstance(value, dict):
        return all(plain(item) for item in value.values())
    return value is None or isinstance(value, str)
def before_request(request):
    try:
        missing = request["headers"]["x-not-sent"]
    except KeyError:
        missing = "KeyError"
    request["headers"]["x-plain"] = "yes" if plain(request) else "no"
    request["headers"]["x-missing"] = missing
    return request
'''


def run_phase(box: Sandbox, keys: list, request: dict):
    steps = [Step(key, Budget(timeout_ms=500), "open") for key in keys]
    return box.run_phase("before_request", steps, request)


@pytest.fixture(params=["inline", "process"])
def box(request):
    sandbox = Sandbox(request.param, {})
    yield sandbox
    sandbox.close()


@pytest.mark.parametrize("returned", ["None", "request"])
@pytest.mark.parametrize("field", ["headers", "query"])
@pytest.mark.parametrize("name", sorted(EQUAL_BUT_NOT_PLAIN))
def test_the_next_hook_gets_plain_data_never_an_equal_container_of_the_first(box, name, field, returned):
    expression = EQUAL_BUT_NOT_PLAIN[name].replace("request['headers']", f"request['{field}']")
    first = FIRST.format(field=field, expression=expression, returned=returned)
    assert box.load("first", compile_script(first, "first.py"), {}).ok
    assert box.load("next", compile_script(NEXT, "next.py"), {}).ok
    for _ in range(2):  # the second request too: nothing of the first may have stayed anywhere
        result = run_phase(box, ["first", "next"], {**REQUEST, "headers": dict(REQUEST["headers"]),
                                                    "query": dict(REQUEST["query"])})
        logs = [line for _, outcome in result.outcomes for line in outcome.logs]
        assert not any("first script ran" in line for line in logs), logs
        headers = result.request["headers"]
        assert headers["x-missing"] == "KeyError"
        assert headers["x-plain"] == "yes"
        assert headers["authorization"] == "Bearer one"


def test_a_hook_that_changes_the_request_hands_its_exact_copy_on_and_the_next_sees_every_change(box):
    setter = "def before_request(request):\n    request['headers']['x-{n}'] = '{n}'\n    return request\n"
    for n in range(4):
        assert box.load(f"p{n}", compile_script(setter.format(n=n), f"p{n}.py"), {}).ok
    assert box.load("next", compile_script(NEXT, "next.py"), {}).ok
    result = run_phase(box, ["p0", "p1", "p2", "p3", "next"], dict(REQUEST))
    headers = result.request["headers"]
    assert [headers[f"x-{n}"] for n in range(4)] == ["0", "1", "2", "3"]
    assert headers["x-plain"] == "yes"
    assert [outcome.kind for _, outcome in result.outcomes] == ["ok"] * 5


def test_one_dict_in_two_fields_reaches_the_next_hook_as_two(box):
    aliasing = ("def before_request(request):\n    request['path_params'] = request['query']\n"
                "    request['query'] = request['path_params']\n    return request\n")
    writer = ("def before_request(request):\n    request['query']['w'] = 'x'\n"
              "    request['headers']['x-params'] = ','.join(sorted(request['path_params']))\n    return request\n")
    assert box.load("alias", compile_script(aliasing, "alias.py"), {}).ok
    assert box.load("writer", compile_script(writer, "writer.py"), {}).ok
    result = run_phase(box, ["alias", "writer"], dict(REQUEST))
    assert result.request["headers"]["x-params"] == "q"  # the write to query did not show in path_params
    assert result.request["path_params"] == {"q": "1"}


# Values whose str() or repr() is slow or raises; each returned where the checks name the bad part.
COSTLY = "(10 ** 4299,) * 2000"
BAD_RETURNS = {
    "header_name": f"request['headers'] = {{{COSTLY}: 'v'}}\n    return request",
    "header_name_past_str_digits": "request['headers'] = {(10 ** 5000,): 'v'}\n    return request",
    "unknown_field": f"return {{{COSTLY}: 1}}",
    "status": "return {'response': {'status': [10 ** 1200] * 20000, 'body': ''}}",
    "status_past_str_digits": "return {'response': {'status': (10 ** 5000,), 'body': ''}}",
    "header_value": f"request['headers'] = {{'x': {COSTLY}}}\n    return request",
    "path_param_key": f"request['path_params'] = {{{COSTLY}: 'v'}}\n    return request",
}


@pytest.mark.parametrize("name", sorted(BAD_RETURNS))
def test_a_value_the_host_cannot_print_is_invalid_for_its_plugin_only(box, name):
    bad = f"def before_request(request):\n    {BAD_RETURNS[name]}\n"
    good = "def before_request(request):\n    request['headers']['x-good'] = '1'\n    return request\n"
    assert box.load("good", compile_script(good, "good.py"), {}).ok
    assert box.load("bad", compile_script(bad, "bad.py"), {}).ok
    started = time.perf_counter()
    result = run_phase(box, ["good", "bad"], dict(REQUEST))
    elapsed = time.perf_counter() - started
    kinds = dict((key, outcome.kind) for key, outcome in result.outcomes)
    assert kinds == {"good": "ok", "bad": "invalid"}, result.outcomes
    assert result.request["headers"]["x-good"] == "1"
    message = dict(result.outcomes)["bad"].message
    assert len(message) < 400 and "0000000000" not in message, message
    assert elapsed < 2.0, f"{name}: {elapsed:.2f} s"  # seconds of str() before; well under a second now


# Class 3: a hook's copy is reused only while == is exact on it. Once a hook made the request hold numbers,
# lists or a JSON body (legitimately), a later hook that changes its argument in place and returns None
# (or returns it with an equal but different value) must not hand that on: the next hook sees the valid
# request, with its own types and no shared object. `shaped`: the plugin chain's path (copy_shaped).
SETS = {
    "json": "request['json'] = {'n': 1, 'notes': []}",
    "int_param": "request['path_params']['id'] = 1",
    "query_list": "request['query']['t'] = ['a']",
}
THEN_IN_PLACE = {
    "bool_for_int": {"json": "request['json']['n'] = True", "int_param": "request['path_params']['id'] = True",
                     "query_list": "request['query']['t'] = ('a',)"},
    "defaultdict": {"json": "request['json'] = collections.defaultdict(spy, request['json'])",
                    "int_param": "request['path_params'] = collections.defaultdict(spy, request['path_params'])",
                    "query_list": "request['query'] = collections.defaultdict(spy, request['query'])"},
    "alias": {"json": "request['json']['notes'] = request['headers']",
              "int_param": "request['path_params']['other'] = request['path_params']",
              "query_list": "request['query']['u'] = request['query']['t']"},
}
OBSERVER = '''
import collections
ODD = ((collections.defaultdict, "defaultdict"), (collections.OrderedDict, "OrderedDict"), (dict, "dict"),
       (bool, "bool"), (int, "int"), (float, "float"), (str, "str"), (tuple, "tuple"))
def kind(value):
    for cls, name in ODD:
        if isinstance(value, cls):
            return name
    return "other"
def kinds(value):
    if isinstance(value, dict):
        return kind(value) + "{" + ",".join(k + ":" + kinds(v) for k, v in sorted(value.items())) + "}"
    if isinstance(value, list):
        return "[" + ",".join(kinds(v) for v in value) + "]"
    return kind(value)
def before_request(request):
    for name in ("json", "path_params", "query"):
        try:
            request["headers"]["x-" + name] = kinds(request[name])
        except Exception as exc:
            request["headers"]["x-" + name] = "raised " + kind(exc)
    request["query"].setdefault("t", ["x"])
    if isinstance(request["query"]["t"], list):
        request["query"]["t"].append("observer")
    request["headers"]["x-secret"] = "observer-only"
    return None
'''
SPY = '''
import collections
def spy():
    log.warning("the second script ran in another call")
    return "spied"
def before_request(request):
    {change}
    return None
'''


EXPECTED_KINDS = {"json": ("x-json", "dict{n:int,notes:[]}"), "int_param": ("x-path_params", "dict{id:int}"),
                  "query_list": ("x-query", "dict{q:str,t:[str]}")}


@pytest.mark.parametrize("shaped", [False, True])
@pytest.mark.parametrize("how", sorted(THEN_IN_PLACE))
@pytest.mark.parametrize("field", sorted(SETS))
def test_after_a_hook_sets_numbers_lists_or_json_the_next_hooks_get_the_valid_request(box, field, how, shaped):
    first = f"def before_request(request):\n    {SETS[field]}\n    return request\n"
    reporter = OBSERVER.replace("    return None\n", "    return request\n")
    assert box.load("first", compile_script(first, "first.py"), {}).ok
    assert box.load("second", compile_script(SPY.format(change=THEN_IN_PLACE[how][field]), "second.py"), {}).ok
    assert box.load("reporter", compile_script(reporter, "reporter.py"), {}).ok
    steps = [Step(key, Budget(timeout_ms=500), "open") for key in ("first", "second", "reporter")]
    seen = []
    for _ in range(2):  # the second request too: nothing of the first may have stayed anywhere
        request = {**REQUEST, "headers": dict(REQUEST["headers"]), "query": dict(REQUEST["query"])}
        result = box.run_checked_phase("before_request", steps, request, shaped=shaped)
        logs = [line for _, outcome in result.outcomes for line in outcome.logs]
        assert not any("second script ran" in line for line in logs), logs
        assert [outcome.kind for _, outcome in result.outcomes] == ["ok", "ok", "ok"], result.outcomes
        seen.append(result.request)
    header, kinds = EXPECTED_KINDS[field]
    final = seen[-1]
    assert final["headers"][header] == kinds  # the reporter saw the valid value: its types, no odd container
    if field == "query_list":  # the reporter's append went to its own list only (no alias left by the second)
        assert final["query"] == {"q": "1", "t": ["a", "observer"]}
    assert seen[0] == seen[1]


@pytest.mark.parametrize("shaped", [False, True])
def test_a_json_body_made_of_the_headers_dict_does_not_take_later_header_changes(box, shaped):
    first = "def before_request(request):\n    request['json'] = request['headers']\n    return request\n"
    second = ("def before_request(request):\n    request['headers']['authorization'] = 'Bearer upstream-only'\n"
              "    return request\n")
    assert box.load("first", compile_script(first, "first.py"), {}).ok
    assert box.load("second", compile_script(second, "second.py"), {}).ok
    steps = [Step(key, Budget(timeout_ms=500), "open") for key in ("first", "second")]
    result = box.run_checked_phase("before_request", steps, {**REQUEST, "headers": dict(REQUEST["headers"])},
                                   shaped=shaped)
    assert result.request["headers"]["authorization"] == "Bearer upstream-only"
    assert result.request["json"] == REQUEST["headers"]  # as the first hook set it: the later change is not in it


@pytest.mark.parametrize("shaped", [False, True])
def test_a_hook_that_reorders_its_copy_and_returns_none_leaves_the_order_for_the_next(box, shaped):
    reorder = ("def before_request(request):\n    h = request['headers']\n"
               "    first = list(h)[0]\n    h[first] = h.pop(first)\n    return None\n")  # a,b,c -> b,c,a
    report = ("def before_request(request):\n    request['headers']['x-order'] = ','.join(request['headers'])\n"
              "    return request\n")
    assert box.load("reorder", compile_script(reorder, "reorder.py"), {}).ok
    assert box.load("report", compile_script(report, "report.py"), {}).ok
    request = {**REQUEST, "headers": {"a": "1", "b": "2", "c": "3"}}
    steps = [Step(key, Budget(timeout_ms=500), "open") for key in ("reorder", "report")]
    result = box.run_checked_phase("before_request", steps, request, shaped=shaped)
    assert result.request["headers"]["x-order"] == "a,b,c"


# What a hook did to the order of the headers alone (a name spelled in capitals, a framing header deleted and
# set again) leaves the server's order: the next hook and the handler see the same, inline or in a child.
SAME_HEADERS_OTHER_ORDER = {
    "capitals": "del request['headers']['accept']\n    request['headers']['Accept'] = '*/*'",
    "framing": "del request['headers']['content-length']\n    request['headers']['content-length'] = '999'",
}


@pytest.mark.parametrize("shaped", [False, True])
@pytest.mark.parametrize("how", sorted(SAME_HEADERS_OTHER_ORDER))
def test_the_next_hook_and_the_handler_see_one_header_order(box, how, shaped):
    first = f"def before_request(request):\n    {SAME_HEADERS_OTHER_ORDER[how]}\n    return request\n"
    report = ("def before_request(request):\n"
              "    return {'response': {'status': 200, 'json': list(request['headers'])}}\n")
    assert box.load("first", compile_script(first, "first.py"), {}).ok
    assert box.load("report", compile_script(report, "report.py"), {}).ok
    request = {**REQUEST, "headers": {"accept": "*/*", "content-length": "5", "x-last": "1"}}
    alone = box.run_checked_phase("before_request", [Step("first", Budget(timeout_ms=1000), "open")],
                                  {**request, "headers": dict(request["headers"])}, shaped=shaped)
    seen = box.run_checked_phase("before_request", [Step(key, Budget(timeout_ms=1000), "open")
                                                    for key in ("first", "report")],
                                 {**request, "headers": dict(request["headers"])}, shaped=shaped)
    assert list(alone.request["headers"]) == seen.response["json"] == ["accept", "content-length", "x-last"]
