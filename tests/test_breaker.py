"""The circuit breaker: consecutive failures open it, one half-open trial decides, thread-safe."""
from __future__ import annotations

import threading

from backworks.breaker import CLOSED, HALF_OPEN, OPEN, Breaker


class Clock:
    """A clock the test moves by hand."""

    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make(threshold=3, recovery=10.0):
    clock = Clock()
    changes = []
    return Breaker(threshold, recovery, on_change=changes.append, clock=clock), clock, changes


def test_breaker_opens_after_threshold_consecutive_failures():
    breaker, _, changes = make()
    for _ in range(2):
        assert breaker.allow()
        breaker.record(False)
    assert breaker.state == CLOSED
    breaker.record(False)
    assert breaker.state == OPEN
    assert not breaker.allow()
    assert changes == [OPEN]


def test_breaker_success_resets_the_consecutive_count():
    breaker, _, _ = make()
    breaker.record(False)
    breaker.record(False)
    breaker.record(True)
    breaker.record(False)
    breaker.record(False)
    assert breaker.state == CLOSED


def test_breaker_half_open_lets_exactly_one_trial_through():
    breaker, clock, _ = make()
    for _ in range(3):
        breaker.record(False)
    clock.now += 9.9
    assert not breaker.allow()
    assert round(breaker.retry_in(), 6) == 0.1
    clock.now += 0.1
    assert breaker.allow()
    assert breaker.state == HALF_OPEN
    assert not breaker.allow()
    assert not breaker.allow()


def test_breaker_trial_success_closes_it():
    breaker, clock, changes = make()
    for _ in range(3):
        breaker.record(False)
    clock.now += 10
    assert breaker.allow()
    breaker.record(True)
    assert breaker.state == CLOSED
    assert breaker.allow()
    assert changes == [OPEN, HALF_OPEN, CLOSED]


def test_breaker_trial_failure_reopens_for_another_recovery_period():
    breaker, clock, _ = make()
    for _ in range(3):
        breaker.record(False)
    clock.now += 10
    assert breaker.allow()
    breaker.record(False)
    assert breaker.state == OPEN
    clock.now += 9
    assert not breaker.allow()
    clock.now += 1
    assert breaker.allow()


def test_breaker_trial_that_never_reports_does_not_wedge_it():
    breaker, clock, _ = make(recovery=2.0)
    for _ in range(3):
        breaker.record(False)
    clock.now += 2
    assert breaker.allow()
    assert not breaker.allow()
    clock.now += 2
    assert breaker.allow()


def test_breaker_reset_closes_it():
    breaker, _, _ = make()
    for _ in range(3):
        breaker.record(False)
    breaker.reset()
    assert breaker.state == CLOSED and breaker.failures == 0 and breaker.allow()


def test_breaker_grants_one_trial_among_concurrent_callers():
    breaker, clock, _ = make(threshold=1)
    breaker.record(False)
    clock.now += 10
    granted = []
    barrier = threading.Barrier(8)

    def call():
        barrier.wait(5)
        granted.append(breaker.allow())

    threads = [threading.Thread(target=call) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert granted.count(True) == 1


def test_ready_answers_like_allow_without_taking_the_half_open_trial():
    breaker, clock, _ = make(threshold=1, recovery=10.0)
    breaker.record(False)
    assert not breaker.ready()
    clock.now += 10
    assert breaker.ready() and breaker.state == OPEN  # asking took nothing
    assert breaker.allow() and breaker.state == HALF_OPEN
    assert not breaker.ready()  # the trial is in flight
    clock.now += 10
    assert breaker.ready()  # a trial that never reported back does not wedge it


def _upstream(threshold: int, recovery_s: float):
    from backworks.upstreams import Upstream

    target = {"url": "http://127.0.0.1:9", "weight": 1}
    settings = {"balance": "round_robin", "retries": 0, "retry_backoff_ms": 0, "host_header": "upstream",
                "total_timeout_ms": None, "targets": [target], "connect_timeout_ms": 100, "read_timeout_ms": 100,
                "pool_size": 1,
                "circuit_breaker": {"failure_threshold": threshold, "recovery_s": recovery_s}}
    return Upstream("api", settings)


def test_upstream_target_releases_a_trial_that_never_reported_back():
    upstream = _upstream(threshold=1, recovery_s=0.0)
    target = upstream.targets[0]
    clock = Clock()
    target.breaker.clock = clock
    target.breaker.record(False)
    assert target.breaker.state == OPEN
    assert upstream.pick() is target  # recovery due: the half-open trial
    assert target.breaker.state == HALF_OPEN
    assert upstream.pick() is None  # the trial's caller died without reporting
    clock.now += 1.0
    assert upstream.pick() is target  # released after max(recovery_s, 1 s)


def test_clean_is_true_exactly_when_closed_with_no_failure_counted():
    breaker, clock, _ = make(threshold=2, recovery=10.0)

    def clean_matches():
        return breaker.clean == (breaker.state == CLOSED and breaker.failures == 0)

    assert breaker.clean and clean_matches()
    breaker.record(False)
    assert not breaker.clean and clean_matches()  # closed, one failure: a success must reset the count
    breaker.record(True)
    assert breaker.clean and breaker.failures == 0
    breaker.record(False)
    breaker.record(False)
    assert breaker.state == OPEN and clean_matches()
    clock.now += 11
    assert breaker.allow() and breaker.state == HALF_OPEN and clean_matches()
    breaker.record(True)
    assert breaker.state == CLOSED and breaker.clean
    breaker.record(False)
    breaker.reset()
    assert breaker.clean and clean_matches()
