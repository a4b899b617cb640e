"""`log` in scripts: lines come back with the outcome, bounded, and never break the call."""
from __future__ import annotations

import pytest

from backworks.sandbox import Budget, Sandbox, compile_script


@pytest.fixture(scope="module", params=["inline", "process"])
def box(request):
    sandbox = Sandbox(request.param, {})
    yield sandbox
    sandbox.close()


def run(box, body: str):
    box.load("logs", compile_script(f"def handle(request):\n{body}\n", "logs.py"), {}, Budget())
    return box.call("logs", "handle", ({},), Budget())


def test_log_lines_come_back_with_their_level_even_when_the_hook_fails(box):
    outcome = run(box, "    log.info('user %s', 'ann')\n    log.warning('careful', 3)\n    return 1 / 0")
    assert outcome.kind == "error"
    assert outcome.logs == ["INFO user ann", "WARNING careful 3"]


def test_log_is_bounded_per_call_in_lines(box):
    outcome = run(box, "    for i in range(1000):\n        log.info('x')\n    return 1")
    assert outcome.kind == "ok"
    assert len(outcome.logs) == 51 and outcome.logs[-1] == (
        "WARNING log limit of 50 lines or 16384 bytes a call reached: 950 more lines suppressed")


def test_log_is_bounded_per_call_in_bytes(box):
    outcome = run(box, "    for i in range(1000):\n        log.info('x' * 10000)\n    return 1")
    assert outcome.kind == "ok"
    assert outcome.logs[:-1] == ["INFO " + "x" * 500] * 32  # 32 lines of 505 bytes fit in 16384
    assert outcome.logs[-1] == "WARNING log limit of 50 lines or 16384 bytes a call reached: 968 more lines suppressed"


def test_a_bad_format_in_a_log_call_does_not_fail_the_hook(box):
    outcome = run(box, "    log.info('%d items', 'many')\n    log.error('%*d', 10 ** 9, 1)\n    return 2")
    assert outcome.kind == "ok" and outcome.value == 2
    assert outcome.logs == ["INFO %d items 'many'", "ERROR %*d 1000000000 1"]


def test_log_lines_cannot_be_reached_or_replaced(box):
    outcome = run(box, "    log.info('a')\n    return getattr(log, 'lines', None)")
    assert outcome.kind == "ok" and outcome.value is None


def test_python_warnings_inside_a_call_become_bounded_log_lines(box, capfd):
    import hmac

    source = ("import hmac\nfrom types import SimpleNamespace\n\ndef handle(request):\n    n = request['n']\n"
              "    def fake(data=b''):\n        return SimpleNamespace(block_size=n, digest_size=16, "
              "update=lambda b: None)\n    for i in range(request['times']):\n"
              "        hmac.new(b'k', None, digestmod=fake)\n    return 1\n")
    box.load("warns", compile_script(source, "warns.py"), {}, Budget())
    for n in range(3, 9):
        outcome = box.call("warns", "handle", ({"n": n, "times": 1},), Budget())
        assert (outcome.kind, outcome.logs) == ("ok", [
            f"WARNING RuntimeWarning: block_size of {n} seems too small; using our default of 64."])
    many = box.call("warns", "handle", ({"n": 3, "times": 200},), Budget())
    assert len(many.logs) == 51  # the call's own bound
    assert len(vars(hmac).get("__warningregistry__", {})) <= 2  # no entry per distinct text
    assert "RuntimeWarning" not in capfd.readouterr().err


def test_a_traceback_cuts_long_source_lines():
    box = Sandbox("inline", {})
    long_line = "    x = '" + "a" * 240_000 + "' + 1"
    source = "def handle(request):\n    return inner(20)\n\ndef inner(n):\n    if n:\n        return inner(n - 1)\n" \
             f"{long_line}\n"
    box.load("long", compile_script(source, "long.py"), {}, Budget(timeout_ms=2000))
    outcome = box.call("long", "handle", ({},), Budget(timeout_ms=2000))
    assert outcome.kind == "error"
    assert len(outcome.traceback.splitlines()) == 40  # 20 frames (the cap), two lines each
    assert outcome.traceback.splitlines()[-1] == "    " + long_line.strip()[:200] + "..."


def test_the_server_log_takes_a_bounded_number_of_bytes_a_minute_per_script(monkeypatch, caplog):
    from backworks.sandbox import logs

    now = [1000.0]
    monkeypatch.setattr(logs.time, "monotonic", lambda: now[0])
    monkeypatch.setattr(logs, "_windows", {})
    with caplog.at_level("INFO", logger="backworks.plugin"):
        for _ in range(600):
            logs.emit("flood.py", 20, "y" * 1000)  # 600 KB asked, 256 KiB a minute allowed
        logs.emit("quiet.py", 20, "other scripts are not affected")
        now[0] += 61
        logs.emit("flood.py", 20, "a new minute")
    lines = [r.getMessage() for r in caplog.records]
    assert len([line for line in lines if line == "flood.py: " + "y" * 1000]) == 262
    assert lines[262:] == [
        "flood.py: log limit of 262144 bytes a minute reached: its lines and failures are suppressed until the "
        "minute is over",
        "quiet.py: other scripts are not affected",
        "flood.py: 338 log lines suppressed in the last minute (limit: 262144 bytes a minute)",
        "flood.py: a new minute"]


SHARED = "    a = [1.5]\n    for i in range(64):\n        a = [a, a]\n"


@pytest.mark.parametrize("call", ["log.info(a)", "log.info('got %s', a)", "log.info('got', a)"])
def test_logged_values_are_shown_within_the_line_never_walked_whole(box, call):
    """str() or repr() of a 64-level shared list would walk 2**64 items in C (hours past the budget)."""
    outcome = run(box, f"{SHARED}    {call}\n    return 1")
    assert outcome.kind == "ok" and outcome.duration_ms < 100
    (line,) = outcome.logs
    assert line.startswith("INFO ") and "[[[[[[[[<list>, <list>], [<list>, <list>]]" in line
    assert len(line) <= 5 + 4 + 500


def test_logged_values_keep_their_formats(box):
    outcome = run(box, "    log.info('%d users: %s, %r', 3, {'ann': [1, 'x']}, 'q' * 600)\n    return 1")
    assert outcome.logs == ["INFO " + ("3 users: {'ann': [1, 'x']}, '" + "q" * 600)[:500]]
