"""`state` for scripts: set measures a value before the host encodes it; the store is reached only by functions."""
from __future__ import annotations

import json
import random
import time

import pytest

from backworks.sandbox import Budget, Sandbox, Step, compile_script
from backworks.sandbox.state_facade import StateFacade, measure
from backworks.state import MemoryState, StateError

REQUEST = {"method": "GET", "path": "/", "path_params": {}, "query": {}, "headers": {}, "body": None, "json": None,
           "client_ip": "127.0.0.1", "endpoint": "e"}
SHARED_TREE = """
def before_request(request):
    a = [1.2345678901234567e-300]
    for i in range(40):
        a = [a, a]
    state.set("k", a)
    return None
"""
REFUSED = ("StateError: state value is more than 65536 bytes as JSON; the limit is 65536 "
           "(state.max_value_bytes)")


@pytest.mark.parametrize("isolation", ["inline", "process"])
def test_a_shared_tree_is_refused_before_the_host_encodes_it(isolation):
    box = Sandbox(isolation, {})
    try:
        assert box.load("s", compile_script(SHARED_TREE, "s.py"), {}, Budget()).ok
        started = time.monotonic()
        result = box.run_phase("before_request", [Step("s", Budget(), "open")], REQUEST, None)
        took = time.monotonic() - started
        (_, outcome), = result.outcomes
        assert (outcome.kind, outcome.message) == ("error", f"s.py:6: {REFUSED}")
        assert took < 0.1  # 2**40 leaves for json.dumps: 6 s on a 100 ms budget before
    finally:
        box.close()


def _value(rng: random.Random, depth: int = 0):
    roll = rng.random()
    if depth > 3 or roll < 0.4:
        return rng.choice([rng.random(), rng.randint(-10**30, 10**30), "é" * rng.randint(0, 50), True, None])
    if roll < 0.7:
        return [_value(rng, depth + 1) for _ in range(rng.randint(0, 6))]
    return {f"k{i}" * rng.randint(1, 3): _value(rng, depth + 1) for i in range(rng.randint(0, 6))}


def test_measure_never_refuses_a_value_whose_json_fits():
    rng = random.Random(13)
    for _ in range(2000):
        value = _value(rng)
        size = len(json.dumps(value, separators=(",", ":")))
        measure(value, size)  # the limit is exactly its size: never refused
        shared = [value, value, value]
        measure(shared, len(json.dumps(shared, separators=(",", ":"))))


def test_measure_refuses_what_is_surely_over_the_limit():
    with pytest.raises(StateError) as caught:
        measure(["x" * 40] * 2, 80)
    assert str(caught.value) == "state value is more than 80 bytes as JSON; the limit is 80 (state.max_value_bytes)"
    with pytest.raises(StateError):
        measure("y" * 100, 80)
    with pytest.raises(StateError):
        measure(10 ** 300, 200)


def test_state_hands_scripts_plain_functions_over_the_store():
    store = MemoryState("p", 10, 1000)
    state = StateFacade(store)
    state.set("k", {"a": [1, 2]}, ttl=60)
    assert state.get("k") == {"a": [1, 2]} and state.get("missing", 5) == 5
    assert state.incr("n") == 1 and state.incr("n", 4) == 5
    assert all(type(getattr(state, name)).__name__ == "function" for name in ("get", "set", "incr"))
    store.limit(10, 20, 4096)  # a reload lowered state.max_value_bytes: set measures against the new one
    with pytest.raises(StateError):
        state.set("k", ["x" * 30])
