"""Process isolation, round two (issue 13 section 3): respawning a child is never charged to a request."""
from __future__ import annotations

import os
import signal

import pytest

from backworks.sandbox import Budget, Sandbox, Step, compile_script

REQUEST = {"method": "GET", "path": "/x", "path_params": {}, "query": {}, "headers": {}, "body": None,
           "json": None, "client_ip": "127.0.0.1", "endpoint": "x"}
GREET = ("def on_load(config):\n    global GREETING\n    GREETING = config['greeting']\n"
         "def before_request(request):\n    return {'path': '/' + GREETING}\n")
CRASH = "def before_request(request):\n    t = ()\n    for i in range(300000):\n        t = (t,)\n    return hash(t)\n"
SKIPPED = ("greet.py: sandbox process is being replaced after a kill: this call was skipped (not counted against "
           "the plugin's breaker; the replacement boots in the background)")


@pytest.fixture
def box():
    sandbox = Sandbox("process", {})
    assert sandbox.load("greet", compile_script(GREET, "greet.py"), {"greeting": "hello"}, Budget()).ok
    yield sandbox
    sandbox.close()


def greet(box):
    result = box.run_phase("before_request", [Step("greet", Budget(), "open")], dict(REQUEST))
    return result.outcomes[0][1], result.request["path"]


def wait_for_spare(box) -> None:
    builder = box.child.builder
    if builder is not None:
        builder.thread.join(30)
    assert box.child.spare is not None


def test_after_a_kill_the_warm_spare_serves_the_next_request_with_every_script_loaded(box):
    assert box.load("crash", compile_script(CRASH, "crash.py"), {}, Budget(timeout_ms=5000)).ok
    wait_for_spare(box)
    spare_pid, spawns = box.child.spare[0].pid, box.child.spawns
    crashed = box.run_phase("before_request", [Step("crash", Budget(timeout_ms=5000, memory_mb=256), "open")],
                            dict(REQUEST))
    assert crashed.outcomes[0][1].kind == "crash"
    outcome, path = greet(box)
    assert (outcome.kind, path) == ("ok", "/hello")  # the spare ran on_load too, before it was needed
    assert box.child.proc.pid == spare_pid
    wait_for_spare(box)  # the next spare is built in the background
    assert box.child.spawns == spawns + 1


def test_a_request_that_finds_no_warm_child_fails_open_at_once(box, monkeypatch):
    wait_for_spare(box)
    warm = box.child.take_spare()
    os.kill(warm[0].pid, signal.SIGKILL)
    warm[0].wait()
    monkeypatch.setattr(box.child, "build_spare", lambda: None)  # as if the replacement were still booting
    current = box.child.proc
    os.kill(current.pid, signal.SIGKILL)
    current.wait()
    spawns = box.child.spawns
    outcome, path = greet(box)
    assert (outcome.kind, outcome.message, path) == ("skipped", SKIPPED, "/x")
    assert box.child.spawns == spawns  # nothing was started on the request's time
    monkeypatch.undo()
    box.child.build_spare()
    wait_for_spare(box)
    outcome, path = greet(box)
    assert (outcome.kind, path) == ("ok", "/hello")


def test_a_load_reaches_the_spare_too(box):
    wait_for_spare(box)
    assert box.load("late", compile_script(GREET, "late.py"), {"greeting": "late"},
                    Budget()).ok
    current = box.child.proc
    os.kill(current.pid, signal.SIGKILL)
    current.wait()
    result = box.run_phase("before_request", [Step("late", Budget(), "open")], dict(REQUEST))
    assert (result.outcomes[0][1].kind, result.request["path"]) == ("ok", "/late")


def test_close_stops_the_spare(box):
    wait_for_spare(box)
    spare_pid = box.child.spare[0].pid
    box.close()
    with pytest.raises(ChildProcessError):
        os.waitpid(spare_pid, 0)


def test_a_sandbox_that_only_checks_scripts_keeps_no_spare_and_restarts_synchronously():
    box = Sandbox("process", {}, warm_spare=False)
    try:
        assert box.load("greet", compile_script(GREET, "greet.py"), {"greeting": "hello"}, Budget()).ok
        assert box.child.spare is None and box.child.builder is None
        current = box.child.proc
        os.kill(current.pid, signal.SIGKILL)
        current.wait()
        outcome, path = greet(box)
        assert (outcome.kind, path) == ("ok", "/hello")
        assert box.child.spare is None and box.child.builder is None
    finally:
        box.close()


def test_close_leaves_no_builder_thread_running(box):
    wait_for_spare(box)
    warm = box.child.take_spare()
    os.kill(warm[0].pid, signal.SIGKILL)
    warm[0].wait()
    box.child.build_spare()  # a new build, still booting when close() comes
    builder = box.child.builder
    assert builder.alive()
    box.close()
    assert not builder.alive() and box.child.spare is None


def test_a_spare_whose_process_was_closed_while_booting_fails_the_boot_cleanly():
    import subprocess

    from backworks.sandbox.spare import BootFailed, ask

    proc = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    proc.stdout.close()  # what close() does to a child while its spare thread still boots it
    try:
        with pytest.raises(BootFailed, match="closed"):
            ask(proc, bytearray(), ("ping",), timeout_s=1.0)
    finally:
        proc.kill()
        proc.wait()
