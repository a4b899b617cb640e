"""A sandbox child's memory: a fixed ceiling from its post-load baseline, replaced when it keeps too much."""
from __future__ import annotations

import logging

import pytest

from backworks.sandbox import Budget, Sandbox, compile_script
from backworks.sandbox import child as child_module
from backworks.sandbox.child import MB, Child, _Limits, _memory_ceiling
from backworks.sandbox.runner import Outcome

HOOK = "def handle(request):\n    return 1\n"


class FakeSize:
    """Stands in for limits.AddressSpace: the mapped size a test says."""

    def __init__(self, size: int):
        self.size = size

    def current(self, max_age_s: float = 0.0) -> int:
        return self.size

    def invalidate(self) -> None:
        pass


@pytest.fixture
def fake(monkeypatch):
    size = FakeSize(100 * MB)
    limits_set = []
    monkeypatch.setattr(child_module, "AddressSpace", size)
    def setrlimit(which, value):  # recorded, never applied to the test process
        if which == child_module.resource.RLIMIT_AS:
            limits_set.append(value[0])

    monkeypatch.setattr(child_module.resource, "setrlimit", setrlimit)
    monkeypatch.setattr(child_module, "_state_allowance", lambda: 0)
    for name, value in (("ceiling", None), ("baseline", None), ("largest_mb", 0)):
        monkeypatch.setattr(_Limits, name, value)
    return size, limits_set


def test_the_ceiling_is_the_baseline_plus_the_largest_budget_never_the_current_size(fake):
    size, limits_set = fake
    _memory_ceiling(64)
    size.size += 40 * MB  # a script kept 40 MB: the next message must not get 40 MB more
    _memory_ceiling(64)
    _memory_ceiling(32)
    assert limits_set == [164 * MB]
    _memory_ceiling(128)  # a larger budget raises it, from the same baseline
    assert limits_set == [164 * MB, 228 * MB]


def test_a_load_moves_the_baseline_by_what_the_load_itself_kept(fake, monkeypatch):
    size, limits_set = fake
    box = Child({})
    sent = []
    monkeypatch.setattr(box, "send", sent.append)

    def load(key, script, config, budget):
        size.size += 10 * MB  # the module body's data
        return Outcome("ok")

    monkeypatch.setattr(box.runner, "load", load)
    box.handle(("load", "k", "p.py", HOOK, "d", ["handle"], compile_script(HOOK, "p.py").code, {}, (100, 64)))
    assert _Limits.baseline == 110 * MB
    _memory_ceiling(64)
    assert limits_set == [164 * MB, 174 * MB]


def test_a_child_that_kept_more_than_half_the_largest_budget_asks_to_be_replaced(fake, monkeypatch):
    size, _ = fake
    box = Child({})
    _memory_ceiling(64)
    assert box.grown() == []
    size.size += 32 * MB
    assert box.grown() == []  # exactly half: still fine
    size.size += 1 * MB
    assert box.grown() == [33 * MB]
    monkeypatch.setattr(child_module, "_state_allowance", lambda: 2 * MB)  # what `state` holds does not count
    assert box.grown() == []


def test_the_parent_replaces_a_child_that_reports_it_grew(monkeypatch, caplog):
    box = Sandbox("process", {})
    try:
        assert box.load("k", compile_script(HOOK, "p.py"), {}, Budget()).ok
        first = box.child.proc
        real_receive = box.child.receive
        monkeypatch.setattr(box.child, "receive", lambda *a: real_receive(*a) + [40 * MB])
        with caplog.at_level(logging.WARNING, logger="backworks.sandbox.process"):
            outcome = box.call("k", "handle", ({},), Budget())
        assert (outcome.kind, outcome.value) == ("ok", 1)
        assert box.child.proc is None and first.poll() is not None
        assert [r.getMessage() for r in caplog.records] == [
            "sandbox process kept 40 MB over its baseline after a call (more than half the largest memory budget); "
            "replaced"]
        monkeypatch.undo()
        again = box.call("k", "handle", ({},), Budget())
        assert (again.kind, again.value) == ("ok", 1) and box.child.proc.pid != first.pid
    finally:
        box.close()


def test_a_real_child_under_calls_keeps_one_ceiling(tmp_path):
    # Ten calls that each allocate and free 30 MB: the child is never replaced, its ceiling never moves.
    source = "def handle(request):\n    data = ['x' * 1000 for _ in range(30000)]\n    return len(data)\n"
    box = Sandbox("process", {})
    try:
        assert box.load("k", compile_script(source, "p.py"), {}, Budget()).ok
        pid = box.child.proc.pid
        for _ in range(10):
            outcome = box.call("k", "handle", ({},), Budget(timeout_ms=2000, memory_mb=64))
            assert (outcome.kind, outcome.value) == ("ok", 30000), outcome.message
        assert box.child.proc.pid == pid
    finally:
        box.close()
