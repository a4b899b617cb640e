"""Budgets in this process: a re-firing SIGALRM timer for time, a lowered RLIMIT_AS for memory."""
from __future__ import annotations

import _signal
import ctypes
import gc
import logging
import os
import resource
import signal
import sys
import threading
import time
from typing import NamedTuple

from backworks import backstop

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


class _Clock:
    """The one timer of this process: armed only around script code, in the main thread.

    One instance (`Clock`) with slots: its fields change several times per hook call, and setting a class
    attribute would cost three times as much (every such write invalidates the class's lookup caches).
    """

    __slots__ = ("active", "expired", "deadline", "session", "old_limit", "hard_limit", "froze_host",
                 "host_froze", "keep_ticking")

    def __init__(self):
        self.active = False
        self.expired = False
        self.deadline = 0.0
        self.session = False  # a phase keeps one periodic timer for all its steps
        self.old_limit = None  # the RLIMIT_AS that disarm() / end_session() restore
        self.hard_limit = None  # this process's hard RLIMIT_AS, read on first use (only ever lowered, and rarely)
        self.froze_host = False  # the host's objects sit in gc's permanent generation while script code runs
        self.host_froze = False  # the host froze its own heap (seen once, remembered)
        self.keep_ticking = False  # a phase's timer outlives it (see keep_timer_between_phases)


Clock = _Clock()


def _on_alarm(signum, frame):
    if not Clock.active:
        if not Clock.session:  # a stray tick after the call: stop the timer, never raise into the host
            signal.setitimer(signal.ITIMER_REAL, 0)
        return
    if not Clock.expired and time.perf_counter() < Clock.deadline and not backstop.aborted():
        return  # a periodic tick before the running step's deadline (and not the master's quarantine signal)
    Clock.expired = True
    flag_scripts(frame)
    if in_script(frame):
        raise _timeout()
    # Host code (the runner just before or after the call): the script's next checkpoint raises, or
    # the runner reports the timeout once the call returns.


def in_script(frame) -> bool:
    """Tell whether a plugin script's frame is on the stack (script globals hold the `_bw_tick` checkpoint)."""
    while frame is not None:
        if frame.f_globals.get("_bw_tick") is tick:
            return True
        frame = frame.f_back
    return False


_TIMEOUT = Timeout()


def _timeout() -> Timeout:
    """The one Timeout instance, reset: creating an exception can itself fail at the recursion limit."""
    _TIMEOUT.__traceback__ = None
    _TIMEOUT.__context__ = None
    _TIMEOUT.__cause__ = None
    return _TIMEOUT


def tick() -> None:
    """Checkpoint compiled into scripts: once the budget is spent, every handler re-raises the timeout."""
    if Clock.active and (Clock.expired or time.perf_counter() > Clock.deadline):
        Clock.expired = True  # the alarm handler itself may fail at the recursion limit: check the clock too
        flag_scripts(sys._getframe(1))
        raise _timeout()


FLAGGED: list = []  # script globals whose `_bw_expired` flag is set (cleared before the next call)


def flag_scripts(frame) -> None:
    """Set `_bw_expired` in the globals of every script frame on the stack: their loop headers then raise.

    Each loop header is compiled to `if _bw_expired: _bw_tick()`: a global read per iteration, no call.
    """
    while frame is not None:
        scope = frame.f_globals
        if scope.get("_bw_expired") is False and scope.get("_bw_tick") is tick:
            scope["_bw_expired"] = True
            FLAGGED.append(scope)
        frame = frame.f_back


def clear_flags() -> None:
    """Reset the flags a timed-out call left set (call it before the next call starts)."""
    while FLAGGED:
        FLAGGED.pop()["_bw_expired"] = False


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


def ensure_handler() -> None:
    """Reinstall the alarm handler unless it is in place; call it before arming the timer.

    Host code may have reset it since the last call (pytest-timeout's signal method leaves SIG_DFL, whose
    action would kill the process at the next tick).
    """
    if _raw_handler(signal.SIGALRM) is not _on_alarm:
        signal.signal(signal.SIGALRM, _on_alarm)


class _AddressSpace:
    """Reads this process's mapped size from /proc (fd kept open per process, reopened after a fork)."""

    __slots__ = ("fd", "size", "read_at")

    def __init__(self):
        self.fd = -1
        self.size = 0
        self.read_at = float("-inf")

    def current(self, max_age_s: float = 0.0) -> int:
        """The mapped size in bytes, read again unless the last reading is younger than `max_age_s`."""
        now = time.monotonic()
        if now - self.read_at >= max_age_s:
            if self.fd < 0:
                self.fd = os.open("/proc/self/statm", os.O_RDONLY | os.O_CLOEXEC)
            self.size = int(os.pread(self.fd, 64, 0).split(None, 1)[0]) * PAGE
            self.read_at = now
        return self.size

    def invalidate(self) -> None:
        """Make the next current() read /proc again (script code may have grown the heap since)."""
        self.read_at = float("-inf")

    def forget(self) -> None:
        """In a forked child: the inherited fd reads the parent's /proc entry; close it, reopen on next use."""
        fd, self.fd = self.fd, -1
        self.invalidate()
        Clock.hard_limit = None
        if fd >= 0:
            try:
                os.close(fd)
            except OSError:
                pass


AddressSpace = _AddressSpace()
os.register_at_fork(after_in_child=AddressSpace.forget)


SIZE_MAX_AGE_S = 0.01  # a phase reuses a reading of the mapped size taken at most 10 ms before


def _lower_address_space(memory_mb: int, max_age_s: float = 0.0) -> None:
    ceiling = AddressSpace.current(max_age_s) + memory_mb * 1024 * 1024
    hard = Clock.hard_limit
    if hard is None:
        hard = Clock.hard_limit = resource.getrlimit(resource.RLIMIT_AS)[1]
    if hard != resource.RLIM_INFINITY:
        ceiling = min(ceiling, hard)
    try:  # one system call sets the ceiling and returns the limit to restore
        old_limit = resource.prlimit(0, resource.RLIMIT_AS, (ceiling, hard))
        if old_limit[1] != hard:  # changed from outside since it was read: keep the process's own
            Clock.hard_limit = old_limit[1]
            if old_limit[1] != resource.RLIM_INFINITY:
                ceiling = min(ceiling, old_limit[1])
            resource.setrlimit(resource.RLIMIT_AS, (ceiling, old_limit[1]))
        Clock.old_limit = old_limit
    except (ValueError, OSError):  # the hard limit was lowered since it was read: read it again
        Clock.hard_limit = None
        old_limit = resource.getrlimit(resource.RLIMIT_AS)
        resource.setrlimit(resource.RLIMIT_AS, (min(ceiling, old_limit[1]), old_limit[1]))
        Clock.old_limit = old_limit


def _restore_address_space() -> None:
    old_limit, Clock.old_limit = Clock.old_limit, None
    if old_limit is not None:
        resource.setrlimit(resource.RLIMIT_AS, old_limit)


def arm(budget: Budget, memory: bool = True, now: float | None = None) -> None:
    """Start one call's budget: the timer (or, in a phase session, the step's deadline) and, if `memory`
    outside a session, RLIMIT_AS lowered to now + budget.

    Call it inside the `try` whose `finally` disarms: its first statement must be `Clock.active = False`
    (inline, not through a function call: a pending alarm is delivered at a function's entry), then
    disarm(). Whatever was armed is then undone even if arming itself was interrupted.
    """
    if not Clock.session:
        ensure_handler()
        _freeze_host()
        if memory:
            _lower_address_space(budget.memory_mb)
    Clock.expired = False
    Clock.deadline = (now or time.perf_counter()) + budget.timeout_ms / 1000.0
    Clock.active = True
    if not Clock.session:
        signal.setitimer(signal.ITIMER_REAL, budget.timeout_ms / 1000.0, REFIRE_S)


def disarm() -> None:
    """Stop the call's timer and restore the address-space limit (after `Clock.active = False`)."""
    Clock.active = False
    if not Clock.session:
        signal.setitimer(signal.ITIMER_REAL, 0)
        AddressSpace.invalidate()  # a load or handler may have grown the heap
        _restore_address_space()
        _thaw_host()


def _freeze_host() -> None:
    # A full collection triggered by the script's allocations would scan the whole host heap in C, where
    # no timer can interrupt it (measured: a recursing script in a long-lived process overran its 100 ms
    # budget by 25-90 ms). Frozen, the host's objects are skipped; freeze/unfreeze are O(1) list splices.
    # A host that froze its heap itself is left alone. gc.get_freeze_count() walks the frozen objects:
    # it is asked only while it finds none.
    if Clock.host_froze:
        return
    if gc.get_freeze_count() == 0:
        gc.freeze()
        Clock.froze_host = True
    else:
        Clock.host_froze = True


def _thaw_host() -> None:
    if Clock.froze_host:
        Clock.froze_host = False
        gc.unfreeze()


def begin_session(memory_mb: int | None, first_s: float = REFIRE_S) -> None:
    """Start one timer (and one address-space ceiling) for all the steps of a phase.

    The handler is verified once here, not per step. Each step then only sets its deadline: the timer
    fires first after `first_s` (no step ends sooner: its shortest budget), then every REFIRE_S, and raises
    once the running step's deadline has passed. Call it inside the `try` whose `finally` calls
    end_session().
    """
    ensure_handler()
    _freeze_host()
    Clock.session = True
    if memory_mb is not None:
        # Under load a worker starts a phase every few hundred microseconds and reading /proc costs a few
        # of them; its mapped size moves little in 10 ms (a request body at most, server.max_body_bytes).
        _lower_address_space(memory_mb, SIZE_MAX_AGE_S)
    signal.setitimer(signal.ITIMER_REAL, max(first_s, 0.001), REFIRE_S)  # 0 would disarm it


def end_session() -> None:
    """Stop the phase's timer (unless it is left to run out: see keep_timer_between_phases) and restore the
    address-space limit."""
    Clock.active = False
    if not Clock.keep_ticking:
        signal.setitimer(signal.ITIMER_REAL, 0)
    Clock.session = False
    _restore_address_space()
    _thaw_host()


def keep_timer_between_phases() -> None:
    """Leave a phase's timer armed after it, for a process that only runs scripts (a sandbox child).

    The next phase re-arms it anyway, so under load the timer never fires between phases and each phase
    makes one setitimer call instead of two; after the last phase, its one tick finds no phase running and
    stops it (off any request's clock). On a virtual machine each setitimer is a VM exit: two children
    used in turn, one of each kind, measured 3-10 us less per round trip (of 125-235) for this one. Not for
    a worker: its host code would get that late SIGALRM.
    """
    Clock.keep_ticking = True


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
