"""Round two (issue 13, sections 1-3): module state at load, bounded host work, wrapped C calls."""
from __future__ import annotations

import tracemalloc

import pytest

from backworks.sandbox import Budget, Sandbox, ScriptError, Step, compile_script, guards, module_state
from backworks.sandbox.runner import Runner, _describe
from backworks.sandbox.values import bounded_repr

REQUEST = {"method": "GET", "path": "/", "path_params": {}, "query": {}, "headers": {}, "body": None, "json": None,
           "client_ip": "127.0.0.1", "endpoint": "e"}
HOOK = "def before_request(request):\n    return None\n"
HINT = ", which cannot be rebuilt for each call: " + module_state.HINT


@pytest.fixture(scope="module", params=["inline", "process"])
def box(request):
    sandbox = Sandbox(request.param, {})
    yield sandbox
    sandbox.close()


def load(box, source: str, budget: Budget = Budget()):
    return box.load("s", compile_script(source + HOOK, "s.py"), {}, budget)


@pytest.mark.parametrize("source, what", [
    ("IT = iter([1])\n", "IT is a list_iterator object"),
    ("G = (x for x in [1])\n", "G is a generator"),
    ("import hashlib\nH = {'h': hashlib.md5()}\n", "H['h'] is a HASH object"),
    ("import hmac\nH = [hmac.new(b'k', b'm', 'sha256')]\n", "H[0] is a HMAC object"),
    ("import hashlib\nU = hashlib.sha256().update\n", "U is a method of a HASH object"),
    ("M = map(str, [1])\n", "M is a map object"),
    ("E = ValueError('x')\n", "E is a ValueError object"),
    ("import re\nM = re.search('a', 'a')\n", "M is a _Match object"),
    ("def make():\n    it = iter([1])\n    def f():\n        return it\n    return f\nF = make()\n",
     "F (variable 'it' it closes over) is a list_iterator object"),
    ("def f(x, seen=iter([])):\n    return x\n", "f (default value) is a list_iterator object"),
], ids=["iterator", "generator", "hash-in-dict", "hmac", "bound-method-of-hash", "map", "exception",
        "regex-match", "closure-over-iterator", "default-iterator"])
def test_module_level_values_that_cannot_be_rebuilt_are_refused_at_load(box, source, what):
    outcome = load(box, source)
    assert (outcome.kind, outcome.message) == ("error", f"s.py: module-level value {what}{HINT}")


@pytest.mark.parametrize("source", [
    "import json\nimport re\nimport datetime\nimport uuid\nfrom math import pi, sqrt\nP = re.compile('a+')\n"
    "D = datetime.date(2020, 1, 2)\nU = uuid.UUID(int=5)\nT = (1, 'a', b'b', None, 2.5, frozenset({1}))\n",
    "import collections\nimport types\nQ = collections.deque([1], maxlen=3)\nC = collections.Counter('ab')\n"
    "N = types.SimpleNamespace(a=[1])\nDD = collections.defaultdict(list)\nB = bytearray(b'x')\nS = {1, 2}\n",
    "SEEN = []\nadd = SEEN.append\nHANDLERS = {'f': lambda x, acc=[]: acc}\n",
    "from urllib.parse import urlsplit\nimport datetime\nBASE = [urlsplit('http://h/p?q=1')]\n"
    "WEEK = datetime.date(2020, 1, 2).isocalendar()\nTZ = datetime.timezone.utc\n",
], ids=["immutable-and-imported", "rebuilt-containers", "functions-and-methods-of-plain-data", "named-results"])
def test_plain_data_functions_and_imported_names_load(box, source):
    assert load(box, source).ok
    result = box.run_phase("before_request", [Step("s", Budget(), "open")], dict(REQUEST))
    assert result.outcomes[0][1].kind == "ok"


def test_mutable_module_state_over_the_copy_cap_is_refused_at_load(box):
    outcome = load(box, f"BIG = [0] * {module_state.MAX_COPIED_ITEMS + 1}\n")
    assert outcome.kind == "error"
    assert outcome.message == (f"s.py: its module state cannot be copied for each call: the mutable module-level "
                               f"values hold {module_state.MAX_COPIED_ITEMS + 1} items (at most "
                               f"{module_state.MAX_COPIED_ITEMS}; use tuples and frozensets for tables, or build "
                               "them inside the hook)")
    assert load(box, f"BIG = tuple([0] * {module_state.MAX_COPIED_ITEMS + 1})\n").ok  # shared, never copied


def test_module_state_walk_is_capped(box):
    outcome = load(box, f"T = tuple(range({module_state.MAX_MODULE_ITEMS + 1}))\n", Budget(timeout_ms=2000))
    assert outcome.kind == "error"
    assert outcome.message.startswith(f"s.py: module-level values hold more than {module_state.MAX_MODULE_ITEMS} "
                                      "items: its module state cannot be copied for each call")


def test_an_endless_on_load_times_out_and_the_sandbox_goes_on(box):
    outcome = box.load("s", compile_script("def on_load(config):\n    return 5 in iter(int, 1)\n" + HOOK, "s.py"),
                       {}, Budget())
    assert outcome.kind == "timeout"
    assert load(box, "X = [1]\n").ok


def test_per_call_copies_are_charged_to_the_call():
    runner = Runner(memory=False)
    source = "SEEN = [[i] for i in range(2000)]\ndef before_request(request):\n    return None\n"
    assert runner.load("s", compile_script(source, "s.py"), {}, Budget(timeout_ms=2000)).ok
    loaded = runner.loaded["s"]
    calls = []
    original = loaded.prepare

    def prepare(log):
        from backworks.sandbox.limits import Clock
        calls.append(Clock.active)  # the call's deadline is armed while its copies are made
        return original(log)

    loaded.prepare = prepare
    from backworks.sandbox import phases
    result = phases.run_phase(runner, "before_request", [Step("s", Budget(), "open")], dict(REQUEST))
    assert result.outcomes[0][1].ok and calls == [True]


class _Loud:
    def __repr__(self):
        raise AssertionError("repr of a script-built value must not be called")


@pytest.mark.parametrize("args, expected", [
    (("plain message",), "plain message"),
    (("x" * 1000,), "x" * 300 + "..."),
    ((1, "k"), "1, 'k'"),
    (([1, 2, 3], {"a": 1}), "<list of 3 items>, <dict of 1 items>"),
    ((_Loud(),), "<_Loud>"),
    ((2 ** 5000,), "<int of 5001 bits>"),
], ids=["message", "long-message", "atoms", "containers", "never-repr", "huge-int"])
def test_failure_descriptions_are_bounded_and_never_repr_containers(args, expected):
    assert _describe(ValueError(*args)) == expected


def test_bounded_repr_of_a_deep_shared_list_is_its_type_and_length():
    item = []
    for _ in range(64):
        item = [item, item]
    assert bounded_repr(item) == "<list of 2 items>"


def test_constant_folding_never_builds_a_big_string_at_load():
    source = "X = (" + " + ".join(["'a' * 100000"] * 40) + ") * 1\n" + HOOK
    tracemalloc.start()
    try:
        compile_script(source, "s.py")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2 * 1024 * 1024  # the 4 MB string is left to run time, under the call's budget


def test_constant_over_the_run_time_cap_is_still_refused_at_load():
    with pytest.raises(ScriptError) as caught:
        compile_script("X = ('ab' * 6000000) * 1\n" + HOOK, "s.py")
    assert caught.value.problems == ["s.py:1: this expression is too large (result of 12000000 items exceeds the "
                                     "sandbox limit of 10000000)"]


@pytest.mark.parametrize("template, found", [
    ("%((k))60000000s", ["60000000", None]),
    ("%(a(b)c)5.3d%%%*d", ["5", "3", None, None, "*", None]),
    ("%-08.2f", ["8", "2"]),
], ids=["nested-key", "key-escape-star", "flags"])
def test_percent_format_parsing_finds_every_width(template, found):
    assert list(guards._percent_numbers(template)) == found


def test_percent_width_behind_a_nested_key_is_refused():
    with pytest.raises(guards.LimitError, match="format width 60000000 exceeds the sandbox limit"):
        guards.guarded_mod("%((k))60000000s", {"(k)": "x"})


@pytest.mark.parametrize("body, kind", [
    ("    return 5 in iter(int, 1)\n", "timeout"),
    ("    import collections\n    return 'b' in collections.Counter({'a': 10 ** 12}).elements()\n", "timeout"),
    ("    s = set()\n    s.update(*[list(range(20000))] * 100000)\n", "timeout"),
    ("    return ('\\u00e9' * 5000000).translate({233: 'e'}) and ('\\u00e9' * 5000000).translate({233: 'e'}) "
     "and None\n", "timeout"),
    ("    import random\n    return random.getrandbits(200000)\n", "memory"),
    ("    import hashlib\n    return hashlib.pbkdf2_hmac('sha256', b'p', b's', 1000, 32 * 1000)\n", "memory"),
    ("    return int('f' * 40000, 16)\n", "memory"),
    ("    import re\n    return re.compile('(a+)').search('a' * 2000000)\n", "memory"),
    ("    t = ()\n    for _ in range(64):\n        t = (t, t)\n    return hash(t)\n", "memory"),
    ("    import json\n    row = ['x'] * 1000\n    return json.dumps([row] * 2000)\n", "memory"),
    ("    import hashlib\n    return hashlib.new('shake_128').hexdigest(30000000)\n", "memory"),
], ids=["iter-sentinel", "counter-elements", "set-update-many", "translate", "getrandbits", "pbkdf2-dklen",
        "int-hex", "regex-groups", "hash-shared", "json-shared", "shake-length"])
def test_c_calls_are_wrapped_or_capped(box, body, kind):
    assert box.load("w", compile_script(f"def before_request(request):\n{body}", "w.py"), {}, Budget()).ok
    result = box.run_phase("before_request", [Step("w", Budget(), "open")], dict(REQUEST))
    assert result.outcomes[0][1].kind == kind, result.outcomes[0][1].message


def test_loop_checkpoints_are_cleared_for_the_call_after_a_timeout(box):
    source = ("def before_request(request):\n    n = 0\n    while request['path'] == '/spin':\n        n = n + 1\n"
              "    for i in range(1000):\n        n = n + i\n    request['headers']['x-n'] = str(n)\n"
              "    return request\n")
    assert box.load("loops", compile_script(source, "loops.py"), {}, Budget()).ok
    steps = [Step("loops", Budget(), "open")]
    assert box.run_phase("before_request", steps, dict(REQUEST, path="/spin")).outcomes[0][1].kind == "timeout"
    result = box.run_phase("before_request", steps, dict(REQUEST, headers={}))
    assert result.outcomes[0][1].kind == "ok" and result.request["headers"]["x-n"] == "499500"


def test_a_finally_that_loops_while_a_timeout_unwinds_stops_at_its_first_iteration():
    from backworks.sandbox.limits import FLAGGED, Clock, clear_flags

    runner = Runner(memory=False)
    source = "def handle(request):\n    try:\n        pass\n    finally:\n        while True:\n            pass\n"
    assert runner.load("f", compile_script(source, "f.py"), {}, Budget()).ok
    scope = runner.loaded["f"].scope
    Clock.active, Clock.expired = True, True  # as if the alarm had fired: the flag is what the loop reads
    try:
        scope["_bw_expired"] = True
        FLAGGED.append(scope)
        with pytest.raises(BaseException) as caught:
            scope["handle"]({})
    finally:
        Clock.active, Clock.expired = False, False
        clear_flags()
    assert type(caught.value).__name__ == "Timeout" and scope["_bw_expired"] is False


@pytest.mark.parametrize("body, value", [
    ("    return (b'abc'.translate(None, delete=b'b') + bytes(70000).translate(None, b'\\x00')).decode()\n", "ac"),
    ("    return int.from_bytes(iter([1, 0]), 'big')\n", 256),
    ("    return int.from_bytes(b'\\x01\\x00', 'little')\n", 1),
    ("    return sorted(set([1, 2]).union([3], (4,)))\n", [1, 2, 3, 4]),
    ("    import collections\n    return sorted(collections.Counter('abca').elements())\n", ["a", "a", "b", "c"]),
    ("    return sum(iter([3, 2, 1, 0].pop, 0))\n", 0),
], ids=["translate-delete", "from-bytes-iterator", "from-bytes", "union-many", "elements", "iter-sentinel"])
def test_wrapped_calls_keep_their_everyday_meaning(box, body, value):
    assert box.load("w", compile_script(f"def handle(request):\n{body}", "w.py"), {}, Budget()).ok
    outcome = box.call("w", "handle", ({},), Budget())
    assert (outcome.kind, outcome.value) == ("ok", value), outcome.message


def test_int_from_an_iterator_of_too_many_bytes_is_refused(box):
    body = "    return int.from_bytes(iter([255] * 20000), 'big')\n"
    assert box.load("w", compile_script(f"def handle(request):\n{body}", "w.py"), {}, Budget()).ok
    outcome = box.call("w", "handle", ({},), Budget())
    assert outcome.kind == "memory"
    assert outcome.message.endswith("an integer of more than 100000 bits exceeds the sandbox limit")
