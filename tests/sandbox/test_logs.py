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


def test_log_is_bounded_per_call(box):
    outcome = run(box, "    for i in range(1000):\n        log.info('x' * 10000)\n    return 1")
    assert outcome.kind == "ok"
    assert len(outcome.logs) == 51 and outcome.logs[-1] == "WARNING log limit of 50 lines reached"
    assert all(len(line) <= 505 for line in outcome.logs)


def test_a_bad_format_in_a_log_call_does_not_fail_the_hook(box):
    outcome = run(box, "    log.info('%d items', 'many')\n    log.error('%*d', 10 ** 9, 1)\n    return 2")
    assert outcome.kind == "ok" and outcome.value == 2
    assert outcome.logs == ["INFO %d items 'many'", "ERROR %*d 1000000000 1"]


def test_log_lines_cannot_be_reached_or_replaced(box):
    outcome = run(box, "    log.info('a')\n    return getattr(log, 'lines', None)")
    assert outcome.kind == "ok" and outcome.value is None
