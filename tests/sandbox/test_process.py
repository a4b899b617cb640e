"""Process isolation: crashes and hard overruns are contained, the child respawns, threads may use it."""
from __future__ import annotations

import logging
import os
import threading
import time

import pytest

from backworks.sandbox import Budget, Sandbox, Step, choose_isolation, compile_script

REQUEST = {"method": "GET", "path": "/x", "path_params": {}, "query": {}, "headers": {}, "body": None,
           "json": None, "client_ip": "127.0.0.1", "endpoint": "x"}
DEEP_HASH = ("def handle(request):\n    t = ()\n    for i in range(300000):\n        t = (t,)\n"
             "    return hash(t)\n")
ON_LOAD = ("def on_load(config):\n    global GREETING\n    GREETING = config['greeting']\n"
           "def handle(request):\n    return GREETING\n")


@pytest.fixture
def box():
    sandbox = Sandbox("process", {})
    yield sandbox
    sandbox.close()


def test_c_stack_overflow_is_a_crash_and_the_child_respawns_with_its_scripts(box):
    assert box.load("greet", compile_script(ON_LOAD, "greet.py"), {"greeting": "hello"}, Budget()).ok
    assert box.load("deep", compile_script(DEEP_HASH, "deep.py"), {}, Budget(timeout_ms=5000)).ok
    first_pid = box.child.proc.pid
    outcome = box.call("deep", "handle", ({},), Budget(timeout_ms=5000, memory_mb=256))
    assert outcome.kind == "crash"
    assert outcome.message == "deep.py: sandbox process died (signal SIGSEGV)"
    again = box.call("greet", "handle", ({},), Budget())
    assert again.kind == "ok" and again.value == "hello"
    assert box.child.proc.pid != first_pid


@pytest.mark.parametrize("use", ["phase", "call"])
def test_a_child_killed_while_idle_is_replaced_and_the_next_use_runs_normally(box, use):
    import signal

    script = ON_LOAD + "def before_request(request):\n    return {'path': '/' + GREETING}\n"
    assert box.load("greet", compile_script(script, "greet.py"), {"greeting": "hello"}, Budget()).ok
    first = box.child.proc
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    short = Budget(timeout_ms=20)  # shorter than starting a new child: the budget counts from the send
    if use == "phase":
        result = box.run_phase("before_request", [Step("greet", short, "closed")], REQUEST)
        assert [(key, o.kind) for key, o in result.outcomes] == [("greet", "ok")] and result.failed_closed is None
        assert result.request["path"] == "/hello"  # the new child ran the script's on_load again
    else:
        outcome = box.call("greet", "handle", (REQUEST,), short)
        assert outcome.kind == "ok" and outcome.value == "hello"
    assert box.child.proc.pid != first.pid


def test_a_crash_mid_phase_leaves_the_request_and_later_steps_run(box):
    box.load("deep", compile_script(DEEP_HASH.replace("handle", "before_request"), "deep.py"), {}, Budget())
    box.load("tag", compile_script("def before_request(request):\n    request['headers']['x-tag'] = '1'\n"
                                   "    return request\n", "tag.py"), {}, Budget())
    big = Budget(timeout_ms=5000, memory_mb=256)
    result = box.run_phase("before_request", [Step("deep", big, "open"), Step("tag", Budget(), "open")], REQUEST)
    assert [(key, o.kind) for key, o in result.outcomes] == [("deep", "crash"), ("tag", "ok")]
    assert result.request["headers"] == {"x-tag": "1"}


def test_on_error_closed_stops_the_phase_at_the_failed_step(box):
    box.load("boom", compile_script("def before_request(request):\n    raise ValueError('no key')\n", "boom.py"),
             {}, Budget())
    box.load("tag", compile_script("def before_request(request):\n    return {'path': '/tagged'}\n", "tag.py"),
             {}, Budget())
    result = box.run_phase("before_request", [Step("boom", Budget(), "closed"), Step("tag", Budget(), "open")],
                           REQUEST)
    key, outcome = result.failed_closed
    assert key == "boom" and outcome.message == "boom.py:2: ValueError: no key"
    assert [k for k, _ in result.outcomes] == ["boom"] and result.request == REQUEST


def test_short_circuit_response_is_validated_and_stops_the_phase(box):
    box.load("deny", compile_script("def before_request(request):\n    return {'response': {'status': 401, "
                                    "'json': {'error': 'no'}}}\n", "deny.py"), {}, Budget())
    box.load("tag", compile_script("def before_request(request):\n    return {'path': '/tagged'}\n", "tag.py"),
             {}, Budget())
    result = box.run_phase("before_request", [Step("deny", Budget(), "open"), Step("tag", Budget(), "open")],
                           REQUEST)
    assert result.short_circuit
    assert result.response == {"status": 401, "headers": {}, "json": {"error": "no"}}
    assert [k for k, _ in result.outcomes] == ["deny"]


def test_after_response_replaces_the_response_with_a_validated_one(box):
    box.load("wrap", compile_script("def after_response(request, response):\n    response['headers']['x-w'] = '1'\n"
                                    "    return response\n", "wrap.py"), {}, Budget())
    result = box.run_phase("after_response", [Step("wrap", Budget(), "open")], REQUEST,
                           {"status": 200, "headers": {"a": "b"}, "body": "hi"})
    assert result.response == {"status": 200, "headers": {"a": "b", "x-w": "1"}, "body": "hi"}


def test_process_sandbox_works_from_a_non_main_thread(box):
    box.load("spin", compile_script("def handle(request):\n    while True:\n        pass\n", "spin.py"), {}, Budget())
    box.load("ok", compile_script("def handle(request):\n    return request['n'] * 2\n", "ok.py"), {}, Budget())
    results = {}

    def worker(n):
        started = time.monotonic()
        results[n] = (box.call("spin", "handle", ({},), Budget()).kind, time.monotonic() - started,
                      box.call("ok", "handle", ({"n": n},), Budget()).value)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert sorted(results) == [0, 1, 2]
    assert all(kind == "timeout" and value == n * 2 for n, (kind, _, value) in results.items())


def test_inline_sandbox_called_off_the_main_thread_falls_back_to_a_child(caplog):
    box = Sandbox("inline", {})
    box.load("spin", compile_script("def handle(request):\n    while True:\n        pass\n", "spin.py"), {}, Budget())
    out = {}
    with caplog.at_level(logging.WARNING, logger="backworks.sandbox.host"):
        thread = threading.Thread(target=lambda: out.update(o=box.call("spin", "handle", ({},), Budget())))
        thread.start()
        thread.join(10)
    try:
        assert out["o"].kind == "timeout"
        assert "inline sandbox called off the main thread; running scripts in a sandbox process" in caplog.text
    finally:
        box.close()


def test_choose_isolation_follows_the_thread():
    assert choose_isolation("auto") == "inline"
    assert choose_isolation("process") == "process"
    seen = {}
    thread = threading.Thread(target=lambda: seen.update(auto=choose_isolation("auto"),
                                                         inline=choose_isolation("inline")))
    thread.start()
    thread.join(5)
    assert seen == {"auto": "process", "inline": "process"}


def test_close_stops_the_child():
    box = Sandbox("process", {})
    box.load("ok", compile_script("def handle(request):\n    return 1\n", "ok.py"), {}, Budget())
    pid = box.child.proc.pid
    box.close()
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, 0)


def test_a_forked_worker_gets_its_own_child():
    box = Sandbox("process", {})
    box.load("ok", compile_script("def handle(request):\n    return 7\n", "ok.py"), {}, Budget())
    parent_child = box.child.proc.pid
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the forked process
        try:
            outcome = box.call("ok", "handle", ({},), Budget())
            os.write(write, f"{outcome.value} {box.child.proc.pid != parent_child}".encode())
            box.close()
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    try:
        assert os.read(read, 100).decode() == "7 True"
        assert box.call("ok", "handle", ({},), Budget()).value == 7
        assert box.child.proc.pid == parent_child
    finally:
        os.close(read)
        os.close(write)
        box.close()


def test_inline_sandbox_loaded_from_another_thread_runs_inline_later():
    box = Sandbox("inline", {})
    script = compile_script("def handle(request):\n    return (1, 2)\n", "late.py")
    thread = threading.Thread(target=lambda: box.load("late", script, {}, Budget()))
    thread.start()
    thread.join(10)
    try:
        outcome = box.call("late", "handle", ({},), Budget())
        assert outcome.kind == "ok" and outcome.value == [1, 2] and "late" in box.runner.loaded
    finally:
        box.close()


class _FramesFrom:
    """A stand-in for a child process whose stdout is a pipe the test writes frames into."""

    def __init__(self, frames: list):
        read_end, write_end = os.pipe()
        for payload in frames:
            os.write(write_end, len(payload).to_bytes(4, "big") + payload)
        os.close(write_end)
        self.stdout = os.fdopen(read_end, "rb")
        self.stdin = open(os.devnull, "wb")

    def poll(self):
        return 0

    def wait(self):
        return 0


@pytest.mark.parametrize("payload", [b'["end",[]] x', b'["end",[]', b"\xff\xfe", b' ["end",[]]', b""])
def test_a_frame_that_is_not_exactly_one_json_value_kills_the_child(payload):
    from backworks.sandbox.process import ChildGone, ChildProcess

    child = ChildProcess({})
    child.proc = _FramesFrom([b'["end",[]]', payload])
    assert child.receive(time.monotonic() + 5, "test") == ["end", []]
    with pytest.raises(ChildGone, match="unreadable frame"):
        child.receive(time.monotonic() + 5, "test")
    assert child.proc is None


def _phase_from_frames(frames: list):
    """Run a one-step before_request phase in the parent against a child that answers with `frames`."""
    from backworks.sandbox.process import ChildProcess

    child = ChildProcess({})
    child.proc = _FramesFrom(frames)
    child.ensure = lambda request=False: None  # the stand-in is "running" and ready
    return child.run_phase("before_request", [Step("p0", Budget(), "open")], dict(REQUEST), None)


def test_a_short_entry_is_an_ok_step_that_changed_nothing():
    result = _phase_from_frames([b'["end",[[0,0.25]]]'])
    [(key, outcome)] = result.outcomes
    assert (key, outcome.kind, outcome.duration_ms, outcome.logs) == ("p0", "ok", 0.25, [])
    assert result.request == REQUEST and not result.short_circuit and result.failed_closed is None


@pytest.mark.parametrize("entry", [b'[1,0.1]', b'[-1,0.1]', b'["0",0.1]', b'[true,0.1]', b'[0,[1]]', b'[0]',
                                   b'[0,["ok",null,"","",0.1],null,null,false]',
                                   b'[0,["ok",null,"","",0.1,[]],{"method":5},null,false]',
                                   b'[0,["ok",null,"","",0.1,[]],null,{"status":"x"},false]'])
def test_a_malformed_step_entry_kills_the_child_and_fails_that_step_open(entry):
    result = _phase_from_frames([b'["end",[' + entry + b']]'])
    [(key, outcome)] = result.outcomes
    assert key == "p0" and outcome.kind == "crash" and "malformed step" in outcome.message
    assert result.request == REQUEST and result.failed_closed is None


def test_only_the_main_thread_polls_for_the_answer(box, monkeypatch):
    """A sync worker's main thread polls (yielding the CPU) before it sleeps; gthread request threads sleep at
    once, leaving the CPU to the other requests."""
    busy = "def before_request(request):\n    for i in range(20000):\n        pass\n"
    assert box.load("busy", compile_script(busy, "busy.py"), {}, Budget()).ok
    steps = [Step("busy", Budget(), "open")]
    box.run_phase("before_request", steps, REQUEST)  # the child is up
    yields = {}

    def run(where: str) -> None:
        count = 0

        def counting_yield():
            nonlocal count
            count += 1

        monkeypatch.setattr(os, "sched_yield", counting_yield)
        result = box.run_phase("before_request", steps, REQUEST)
        assert [o.kind for _, o in result.outcomes] == ["ok"]
        yields[where] = count

    run("main")
    thread = threading.Thread(target=run, args=("thread",))
    thread.start()
    thread.join()
    assert yields["main"] > 0 and yields["thread"] == 0


HANG = ("def before_request(request):\n    a = []\n    b = []\n    for i in range(64):\n        a = [a, a]\n"
        "        b = [b, b]\n    return None if a == b else None\n")
CRASH = "def before_request(request):\n    t = ()\n    for i in range(300000):\n        t = (t,)\n    return hash(t)\n"


@pytest.mark.parametrize("killer, kind, timeout_ms", [(HANG, "timeout", 100), (CRASH, "crash", 3000)],
                         ids=["hard-deadline", "crash"])
def test_a_kill_is_blamed_on_the_step_that_ran_never_on_the_fast_steps_before_it(box, killer, kind, timeout_ms):
    """Fast steps share one frame: the child says on shared memory how far it got, so the kill is blamed right."""
    fast = "def before_request(request):\n    return None\n"
    for key, source in (("a", fast), ("b", fast), ("k", killer), ("z", fast)):
        assert box.load(key, compile_script(source, f"{key}.py"), {}, Budget(timeout_ms=3000)).ok
    box.child.warm_spare = False  # the steps after the kill run in a fresh process, started for them
    steps = [Step("a", Budget(), "open"), Step("b", Budget(), "closed"), Step("k", Budget(timeout_ms), "open"),
             Step("z", Budget(), "open")]
    result = box.run_phase("before_request", steps, REQUEST)
    kinds = {key: outcome.kind for key, outcome in result.outcomes}
    assert kinds["k"] == kind
    assert kinds["a"] in ("ok", "skipped") and kinds["b"] in ("ok", "skipped")  # finished; maybe not reported
    lost = [outcome.message for key, outcome in result.outcomes if outcome.kind == "skipped"]
    assert all(m.endswith(": its outcome was lost: the sandbox process was killed during a later plugin's call")
               for m in lost)
    if kinds["b"] == "skipped":  # a closed plugin whose answer was lost refuses the request (never blamed)
        assert result.failed_closed[0] == "b" and "z" not in kinds
    else:
        assert kinds["z"] == "ok"
