"""Budgets in this process: a re-firing SIGALRM timer for time, a lowered RLIMIT_AS for memory."""
from __future__ import annotations

import ctypes
import logging
import os
import _signal
import resource
import signal
import threading
import time
from typing import NamedTuple

logger = logging.getLogger(__name__)

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
try:
    _LIBC = ctypes.CDLL("libc.so.6")
    # Fixed thresholds (glibc otherwise raises them after big frees and then keeps freed memory): blocks of
    # 256 KB and more are mapped and unmapped on their own, and a free heap top over 1 MB goes back at once.
    # A memory bomb's pages thus return to the OS as soon as the script's objects are freed.
    _LIBC.mallopt(M_MMAP_THRESHOLD, 256 * 1024)
    _LIBC.mallopt(M_TRIM_THRESHOLD, 1024 * 1024)
except (OSError, AttributeError):
    _LIBC = None

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
    deadline = 0.0
    session = False  # a phase keeps one periodic timer for all its steps


def _on_alarm(signum, frame):
    if not Clock.active:
        if not Clock.session:
            signal.setitimer(signal.ITIMER_REAL, 0)
        return
    if not Clock.expired and time.perf_counter() < Clock.deadline:
        return  # a periodic tick of a phase session, before this step's deadline
    Clock.expired = True
    raise _timeout()


_TIMEOUT = Timeout()


def _timeout() -> Timeout:
    """The one Timeout instance, reset: creating an exception can itself fail at the recursion limit."""
    _TIMEOUT.__traceback__ = None
    _TIMEOUT.__context__ = None
    _TIMEOUT.__cause__ = None
    return _TIMEOUT


def tick() -> None:
    """Checkpoint compiled into scripts: once the budget is spent, every handler re-raises the timeout."""
    if Clock.expired or (Clock.active and time.perf_counter() > Clock.deadline):
        Clock.expired = True  # the alarm handler itself may fail at the recursion limit: check the clock too
        raise _timeout()


_MAIN_THREAD = threading.main_thread().ident
_raw_handler = _signal.getsignal  # signal.getsignal wraps it in an enum lookup that costs ~9 us


def timer_usable() -> bool:
    """Tell whether SIGALRM can time scripts here: main thread, and nobody else owns the signal."""
    if threading.get_ident() != _MAIN_THREAD:
        return False
    current = _raw_handler(signal.SIGALRM)
    if current is _on_alarm:
        return True
    return current in (signal.SIG_DFL, signal.SIG_IGN, None, _on_alarm)


def _install() -> None:
    signal.signal(signal.SIGALRM, _on_alarm)
    Clock.installed = True


class AddressSpace:
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
    if _raw_handler(signal.SIGALRM) is not _on_alarm:
        _install()
    old_limit = None
    if memory and not Clock.session:
        old_limit = resource.getrlimit(resource.RLIMIT_AS)
        ceiling = AddressSpace.current() + budget.memory_mb * 1024 * 1024
        if old_limit[1] != resource.RLIM_INFINITY:
            ceiling = min(ceiling, old_limit[1])
        resource.setrlimit(resource.RLIMIT_AS, (ceiling, old_limit[1]))
    Clock.expired = False
    Clock.deadline = time.perf_counter() + budget.timeout_ms / 1000.0
    Clock.active = True
    if not Clock.session:
        signal.setitimer(signal.ITIMER_REAL, budget.timeout_ms / 1000.0, REFIRE_S)
    return old_limit


def disarm(old_limit) -> None:
    """Stop the timer and restore the address-space limit (after `Clock.active = False`)."""
    Clock.active = False
    if not Clock.session:
        signal.setitimer(signal.ITIMER_REAL, 0)
    if old_limit is not None:
        resource.setrlimit(resource.RLIMIT_AS, old_limit)


def begin_session(memory_mb: int | None):
    """Start one periodic timer (and one address-space ceiling) for all the steps of a phase.

    Each step then only sets its deadline: the timer ticks every REFIRE_S and raises once the running
    step's deadline has passed. Returns what end_session() restores.
    """
    if _raw_handler(signal.SIGALRM) is not _on_alarm:
        _install()
    old_limit = None
    if memory_mb is not None:
        old_limit = resource.getrlimit(resource.RLIMIT_AS)
        ceiling = AddressSpace.current() + memory_mb * 1024 * 1024
        if old_limit[1] != resource.RLIM_INFINITY:
            ceiling = min(ceiling, old_limit[1])
        resource.setrlimit(resource.RLIMIT_AS, (ceiling, old_limit[1]))
    Clock.session = True
    signal.setitimer(signal.ITIMER_REAL, REFIRE_S, REFIRE_S)
    return old_limit


def end_session(old_limit) -> None:
    """Stop the phase's periodic timer and restore the address-space limit."""
    Clock.session = False
    Clock.active = False
    signal.setitimer(signal.ITIMER_REAL, 0)
    if old_limit is not None:
        resource.setrlimit(resource.RLIMIT_AS, old_limit)


def release_memory() -> None:
    """Give freed heap back to the OS (glibc keeps big freed blocks once its mmap threshold has grown)."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


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
