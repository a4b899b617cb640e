"""Every call starts from the module state as it was right after load (docs/sandbox.md), inline and in a child.

Each script below keeps something a call can change somewhere in its module state; its before_request
changes it and reports what it saw in a header. The second and third calls must report what the first did.
"""
from __future__ import annotations

import json

import pytest

from backworks.sandbox import Budget, Sandbox, Step, compile_script

REQUEST = {"method": "GET", "path": "/", "path_params": {}, "query": {}, "headers": {}, "body": None, "json": None,
           "client_ip": "127.0.0.1", "endpoint": "e"}

SCRIPTS = {
    "closure_cell": '''
def make():
    seen = []
    def add(x):
        seen.append(x)
        return len(seen)
    return add
counter = make()
def before_request(request):
    request["headers"]["x-n"] = str(counter(1))
    return request
''',
    "closure_cells_shared_by_two_functions": '''
def make():
    box = {"n": 0}
    def inc():
        box["n"] = box["n"] + 1
    def get():
        return box["n"]
    return inc, get
inc, get = make()
def before_request(request):
    inc()
    inc()
    request["headers"]["x-n"] = str(get())
    return request
''',
    "nonlocal_rebinding": '''
def make():
    n = 0
    def inc():
        nonlocal n
        n += 1
        return n
    def get():
        return n
    return inc, get
inc, get = make()
def before_request(request):
    inc()
    request["headers"]["x-n"] = str(get())
    return request
''',
    "list_in_tuple": '''
T = ([],)
def before_request(request):
    T[0].append(1)
    request["headers"]["x-n"] = str(len(T[0]))
    return request
''',
    "dict_in_nested_tuple": '''
T = (1, ("a", {"hits": 0}))
def before_request(request):
    T[1][1]["hits"] = T[1][1]["hits"] + 1
    request["headers"]["x-n"] = str(T[1][1]["hits"])
    return request
''',
    "mutable_default_argument": '''
def f(x, acc=[]):
    acc.append(x)
    return len(acc)
def g(x, *, seen={}):
    seen[x] = len(seen)
    return len(seen)
def before_request(request, cache=[]):
    cache.append(1)
    request["headers"]["x-n"] = str(f(1)) + str(g(len(cache))) + str(len(cache))
    return request
''',
    "closure_in_frozenset": '''
def make():
    seen = []
    def add():
        seen.append(1)
        return len(seen)
    return add
FS = frozenset([make()])
def before_request(request):
    add = list(FS)[0]
    request["headers"]["x-n"] = str(add())
    return request
''',
    "objects_in_dict_values": '''
import collections
import types
G = []
D = {"ns": types.SimpleNamespace(items=[]), "q": collections.deque(maxlen=5), "c": collections.Counter(),
     "dd": collections.defaultdict(list), "f": lambda: G.append(1) or len(G), "ba": bytearray(b"x")}
def before_request(request):
    D["ns"].items.append(1)
    D["q"].append(1)
    D["c"]["k"] = D["c"]["k"] + 1
    D["dd"]["k"].append(1)
    D["ba"].extend(b"y")
    n = [len(D["ns"].items), len(D["q"]), D["c"]["k"], len(D["dd"]["k"]), D["f"](), len(D["ba"])]
    request["headers"]["x-n"] = ",".join(str(x) for x in n)
    return request
''',
    "function_in_dict_reaches_globals": '''
seen = []
def remember(x):
    seen.append(x)
    return len(seen)
HANDLERS = {"r": remember}
def before_request(request):
    request["headers"]["x-n"] = str(HANDLERS["r"](1)) + str(len(seen))
    return request
''',
    "bound_method_of_a_global_list": '''
seen = []
add = seen.append
def before_request(request):
    add(1)
    request["headers"]["x-n"] = str(len(seen))
    return request
''',
    "aliasing_between_globals_is_kept": '''
shared = []
T = (shared, [shared])
def before_request(request):
    T[0].append(1)
    request["headers"]["x-n"] = str(len(shared)) + str(len(T[1][0]))
    return request
''',
    "state_built_by_on_load": '''
CACHE = ()
def make(items):
    def lookup():
        items.append(len(items))
        return len(items)
    return lookup
def on_load(config):
    global CACHE
    CACHE = ([1, 2], make([0]))
def before_request(request):
    CACHE[0].append(3)
    request["headers"]["x-n"] = str(len(CACHE[0])) + str(CACHE[1]())
    return request
''',
}

EXPECTED = {"closure_cell": "1", "closure_cells_shared_by_two_functions": "2", "nonlocal_rebinding": "1",
            "list_in_tuple": "1", "dict_in_nested_tuple": "1", "mutable_default_argument": "111",
            "closure_in_frozenset": "1", "objects_in_dict_values": "1,1,1,1,1,2",
            "function_in_dict_reaches_globals": "11", "bound_method_of_a_global_list": "1",
            "aliasing_between_globals_is_kept": "11", "state_built_by_on_load": "32"}


@pytest.fixture(scope="module", params=["inline", "process"])
def box(request):
    sandbox = Sandbox(request.param, {})
    yield sandbox
    sandbox.close()


def header_after_call(box, key: str) -> str:
    result = box.run_phase("before_request", [Step(key, Budget(), "open")], dict(REQUEST, headers={}))
    outcome = result.outcomes[0][1]
    assert outcome.ok, outcome.message
    return result.request["headers"]["x-n"]


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_a_call_never_sees_what_the_previous_call_changed(box, name):
    assert box.load(name, compile_script(SCRIPTS[name], f"{name}.py"), {}, Budget()).ok
    first = header_after_call(box, name)
    if name in EXPECTED:
        assert first == EXPECTED[name]
    assert header_after_call(box, name) == first
    assert header_after_call(box, name) == first


def test_a_failed_call_leaves_nothing_for_the_next(box):
    source = SCRIPTS["closure_cell"].replace("    return request\n", "    if request['path'] == '/boom':\n"
                                              "        raise ValueError('boom')\n    return request\n")
    assert box.load("fails", compile_script(source, "fails.py"), {}, Budget()).ok
    assert box.run_phase("before_request", [Step("fails", Budget(), "open")],
                         dict(REQUEST, path="/boom", headers={})).outcomes[0][1].kind == "error"
    assert header_after_call(box, "fails") == "1"


def test_immutable_globals_are_shared_not_copied():
    from backworks.sandbox.runner import Runner

    source = '''
import json
LIMITS = (("a", 1), frozenset({"x"}), {"k": (1, 2)}.get("k"))
def make(prefix):
    def tag(x):
        return prefix + x
    return tag
tag = make("p-")
def helper(x, scale=2, *, names=("a",)):
    return x * scale
def before_request(request):
    return config.get("x")
'''
    runner = Runner(memory=False)
    assert runner.load("s", compile_script(source, "s.py"), {}, Budget()).ok
    loaded = runner.loaded["s"]
    assert loaded.mutable == ["config"]  # the config copy: a dict, re-created for every call
    scope = loaded.prepare(None)
    assert scope["tag"] is loaded.base["tag"] and scope["tag"].__globals__ is scope
    assert scope["LIMITS"] is loaded.base["LIMITS"]


def test_mutable_globals_no_code_names_are_not_copied():
    from backworks.sandbox.runner import Runner

    source = '''
SEEN = []
def before_request(request):
    return None
'''
    runner = Runner(memory=False)
    assert runner.load("quiet", compile_script(source, "quiet.py"), {"k": [1]}, Budget()).ok
    assert runner.loaded["quiet"].mutable == ["SEEN"]  # `config` is out of the script's reach
    assert runner.loaded["quiet"].scope_for(None)["SEEN"] is not runner.loaded["quiet"].pristine["SEEN"]
    assert runner.load("reads", compile_script(source.replace("return None", "return config"), "reads.py"),
                       {"k": [1]}, Budget()).ok
    assert runner.loaded["reads"].mutable == ["config", "SEEN"]


def test_module_state_too_deep_to_copy_is_a_load_error_not_a_host_crash(box):
    source = ("D = ()\nfor i in range(100000):\n    D = (D, [])\n"
              "def before_request(request):\n    return None\n")
    outcome = box.load("deep", compile_script(source, "deep.py"), {}, Budget(timeout_ms=5000))
    assert outcome.kind == "error" and "cannot be copied" in outcome.message
    assert box.load("ok", compile_script(SCRIPTS["list_in_tuple"], "ok.py"), {}, Budget()).ok
    assert header_after_call(box, "ok") == "1"


SPOIL_AND_PASS = '''
def before_request(request):
    request["headers"]["x-spoiled"] = "yes"
    request["path"] = "/spoiled"
'''
SWAP_TRUE_FOR_ONE = '''
def before_request(request):
    if request["json"]:
        request["json"]["flag"] = 1
'''
REPORT = '''
import json
def before_request(request):
    seen = json.dumps([request["path"], request["headers"], request["json"]])
    return {"response": {"status": 200, "body": seen}}
'''
LOOK_ONLY = "def before_request(request):\n    return None\n"


@pytest.mark.parametrize("body", [None, {"flag": True}], ids=["no-json", "json-with-a-bool"])
def test_a_hook_that_returns_none_hands_on_the_request_as_it_was_before_it(box, body):
    scripts = {"spoil": SPOIL_AND_PASS, "swap": SWAP_TRUE_FOR_ONE, "look": LOOK_ONLY, "report": REPORT}
    for key, source in scripts.items():
        assert box.load(key, compile_script(source, f"{key}.py"), {}, Budget()).ok
    request = dict(REQUEST, headers={"accept": "*/*"}, json=body)
    steps = [Step(key, Budget(), "open") for key in ("look", "spoil", "look", "swap", "report")]
    result = box.run_phase("before_request", steps, request)
    assert [o.kind for _, o in result.outcomes] == ["ok"] * 5
    assert json.loads(result.response["body"]) == ["/", {"accept": "*/*"}, body]
    if body is not None:  # True, not 1: a copy equal to the request (1 == True) but not identical is not reused
        assert result.response["body"].endswith('{"flag": true}]')
    assert request == dict(REQUEST, headers={"accept": "*/*"}, json=body)
