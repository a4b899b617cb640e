"""Budgets in this process: a re-firing SIGALRM timer for time, a lowered RLIMIT_AS for memory."""
from __future__ import annotations

import logging
import os
import resource
import signal
import threading
from typing import NamedTuple

logger = logging.getLogger(__name__)

REFIRE_S = 0.005  # after the budget, the timer fires again every 5 ms until the script has unwound
PAGE = os.sysconf("SC_PAGE_SIZE")


class Budget(NamedTuple):
    """Wall-clock and memory budget of one hook call."""

    timeout_ms: int = 100
    memory_mb: int = 64


class Timeout(BaseException):
    """Raised into a script when its budget is spent; scripts cannot catch it (see checks.py)."""


class Clock:
    """The one timer of this process: armed only around script code, in the main thread."""

    active = False
    expired = False
    installed = False


def _on_alarm(signum, frame):
    if not Clock.active:
        signal.setitimer(signal.ITIMER_REAL, 0)
        return
    Clock.expired = True
    raise Timeout()


def tick() -> None:
    """Checkpoint compiled into scripts: once the budget is spent, every handler re-raises the timeout."""
    if Clock.expired:
        raise Timeout()


def timer_usable() -> bool:
    """Tell whether SIGALRM can time scripts here: main thread, and nobody else owns the signal."""
    if threading.current_thread() is not threading.main_thread():
        return False
    current = signal.getsignal(signal.SIGALRM)
    return current in (signal.SIG_DFL, signal.SIG_IGN, None, _on_alarm)


def _install() -> None:
    signal.signal(signal.SIGALRM, _on_alarm)
    Clock.installed = True


class _AddressSpace:
    """Reads this process's mapped size from /proc (fd kept open per process)."""

    fd = -1
    pid = -1

    @classmethod
    def current(cls) -> int:
        if cls.pid != os.getpid():
            cls.fd = os.open("/proc/self/statm", os.O_RDONLY)
            cls.pid = os.getpid()
        return int(os.pread(cls.fd, 64, 0).split(None, 1)[0]) * PAGE


def arm(budget: Budget, memory: bool = True):
    """Arm the timer and (if `memory`) lower RLIMIT_AS to now + budget; return what disarm() restores.

    The caller's `finally` must set `Clock.active = False` as its first statement (inline, not through a
    function call: a pending alarm is delivered at a function's entry), then call disarm().
    """
    if not Clock.installed:
        _install()
    old_limit = None
    if memory:
        old_limit = resource.getrlimit(resource.RLIMIT_AS)
        ceiling = _AddressSpace.current() + budget.memory_mb * 1024 * 1024
        if old_limit[1] != resource.RLIM_INFINITY:
            ceiling = min(ceiling, old_limit[1])
        resource.setrlimit(resource.RLIMIT_AS, (ceiling, old_limit[1]))
    Clock.expired = False
    Clock.active = True
    signal.setitimer(signal.ITIMER_REAL, budget.timeout_ms / 1000.0, REFIRE_S)
    return old_limit


def disarm(old_limit) -> None:
    """Stop the timer and restore the address-space limit (after `Clock.active = False`)."""
    Clock.active = False
    signal.setitimer(signal.ITIMER_REAL, 0)
    if old_limit is not None:
        resource.setrlimit(resource.RLIMIT_AS, old_limit)


def expired() -> bool:
    """Tell whether the last limited block ran out of time."""
    return Clock.expired


def choose_isolation(requested: str) -> str:
    """Resolve "auto"/"inline"/"process" to what can work in the calling thread of this process."""
    if requested == "process":
        return "process"
    usable = timer_usable()
    if requested == "inline" and not usable:
        logger.warning("inline isolation needs the main thread and SIGALRM; using process isolation")
        return "process"
    if requested not in ("inline", "auto"):
        raise ValueError(f"unknown isolation {requested!r} (inline, process or auto)")
    return "inline" if usable else "process"
