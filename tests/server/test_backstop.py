"""The inline backstop in one process: slots, the watchdog's decision, quarantine, and routing to the child."""
from __future__ import annotations

import json
import subprocess
import time

import pytest

from backworks import backstop
from backworks.backstop import Board
from backworks.sandbox import Budget, Sandbox, compile_script
from backworks.server.watchdog import Watchdog, died_in_script
from tests.helpers.ops import wait_for

TAG = "def before_request(request):\n    request['headers']['x-tag'] = 'v1'\n    return request\n"


@pytest.fixture
def runtime_dir(tmp_path, monkeypatch):
    monkeypatch.setenv(backstop.RUNTIME_DIR_ENV, str(tmp_path))
    yield tmp_path
    backstop.slot = None


@pytest.fixture
def victim():
    proc = subprocess.Popen(["sleep", "30"])
    yield proc
    proc.kill()
    proc.wait()


def test_a_worker_past_its_deadline_is_killed_and_its_script_quarantined(runtime_dir, victim):
    board = Board(4)
    backstop.attach(board, 2)
    backstop.slot.margin_ns = 0
    backstop.slot.enter("ab" * 32, "/srv/scripts/slow.py", timeout_ms=1)
    watchdog = Watchdog(board, lambda: {victim.pid: 2})
    assert watchdog.check(time.monotonic_ns() - 10**9) == []  # not yet past the deadline
    assert watchdog.check(time.monotonic_ns() + 10**9) == [victim.pid]
    assert victim.wait(5) == -9
    entries = json.loads((runtime_dir / backstop.QUARANTINE_FILE).read_text())
    assert entries["ab" * 16]["script"] == "slow.py"
    assert entries["ab" * 16]["reason"] == "overran its budget and hard margin"
    assert board.generation == 1
    assert watchdog.check(time.monotonic_ns() + 10**9) == []  # killed once


def test_a_worker_that_left_its_script_is_never_killed(runtime_dir, victim):
    board = Board(4)
    backstop.attach(board, 0)
    backstop.slot.enter("cd" * 32, "ok.py", timeout_ms=1)
    backstop.slot.leave()
    assert Watchdog(board, lambda: {victim.pid: 0}).check(time.monotonic_ns() + 10**12) == []
    assert not died_in_script(board, 0, victim.pid)
    assert backstop.entries() == {}


def test_a_worker_that_died_inside_a_script_quarantines_it_once(runtime_dir):
    board = Board(4)
    backstop.attach(board, 1)
    backstop.slot.enter("ef" * 32, "deep.py", timeout_ms=100)
    assert died_in_script(board, 1, 4242)
    assert board.deadline(1) == 0  # the slot is free for the next worker
    assert backstop.is_quarantined("ef" * 32 + "00")
    assert backstop.entries()["ef" * 16]["reason"] == "died"


def test_a_quarantined_script_runs_in_the_child_from_the_next_call(runtime_dir):
    board = Board(4)
    backstop.attach(board, 0)
    box = Sandbox("inline", {}, warm_spare=False)
    try:
        script = compile_script(TAG, "tag.py")
        assert box.load("plugin:tag", script, {}, Budget(1000, 64)).ok
        request = {"method": "GET", "path": "/", "headers": {}}
        assert box.call("plugin:tag", "before_request", (request,), Budget(1000, 64)).value["headers"] == {
            "x-tag": "v1"}
        backstop.add(backstop.digest_key(script.digest), "tag.py", "died")
        board.bump()

        def inline_call(*args):
            raise AssertionError("a quarantined script ran inline")

        box.runner.call = inline_call
        box.runner.call_step = inline_call
        outcome = box.call("plugin:tag", "before_request", (request,), Budget(1000, 64))
        assert outcome.ok and outcome.value["headers"] == {"x-tag": "v1"}
        assert box.quarantined("plugin:tag")
    finally:
        box.close()


def test_script_code_loads_inline_only_after_a_child_loaded_it(runtime_dir, monkeypatch):
    from backworks.sandbox import host

    seen = []
    real = host.Sandbox.load

    def spy(self, key, *args, **kwargs):
        seen.append((self.isolation, key))
        return real(self, key, *args, **kwargs)

    monkeypatch.setattr(host.Sandbox, "load", spy)
    box = Sandbox("inline", {}, warm_spare=False)
    try:
        script = compile_script(TAG.replace("v1", "first-load"), "fresh.py")
        assert box.load("plugin:fresh", script, {}, Budget(1000, 64)).ok
        assert seen == [("inline", "plugin:fresh"), ("process", "vet:plugin:fresh")]
        assert host.is_vetted(script, {})
    finally:
        box.close()


def test_the_watchdog_quarantines_at_once_when_a_worker_dies_in_a_script(runtime_dir, victim):
    import signal

    board = Board(4)
    backstop.attach(board, 3)
    backstop.slot.enter("12" * 32, "deep.py", timeout_ms=60_000)  # far from its deadline: a death, not a hang
    Watchdog(board, lambda: {victim.pid: 3} if victim.returncode is None else {}).start()
    time.sleep(0.1)
    victim.send_signal(signal.SIGSEGV)  # not reaped: only the pidfd can tell
    wait_for(lambda: board.generation == 1, timeout=2, what="the quarantine")
    assert board.quarantined() == frozenset({"12" * 16})
    assert backstop.entries()["12" * 16]["reason"] == "died"


def test_a_worker_inside_a_script_that_gets_quarantined_ends_the_call_when_signalled(runtime_dir):
    import os
    import signal
    import threading

    board = Board(4)
    backstop.attach(board, 0)
    box = Sandbox("inline", {}, warm_spare=False)
    try:
        loop = "def before_request(request):\n    n = 0\n    while True:\n        n += 1\n"
        script = compile_script(loop, "spin.py")
        assert box.load("plugin:spin", script, {}, Budget(5000, 64)).ok

        def master():  # what the master does when another worker died inside the same script
            time.sleep(0.2)
            board.quarantine(backstop.digest_key(script.digest))
            board.bump()
            os.kill(os.getpid(), signal.SIGALRM)

        threading.Thread(target=master).start()
        started = time.monotonic()
        outcome = box.call("plugin:spin", "before_request", ({"method": "GET"},), Budget(5000, 64))
        assert outcome.kind == "timeout"
        assert time.monotonic() - started < 2.0  # not the 5 s budget
    finally:
        box.close()
