"""The sandbox child: a process that only runs scripts, under setrlimit, talking to its parent over pipes.

Parent -> child frames are marshal (they carry compiled code); child -> parent frames are JSON, so a
child that misbehaves can at worst send data the parent rejects.
"""
from __future__ import annotations

import json
import json.encoder
import logging
import marshal
import math
import mmap
import os
import resource
import signal
import struct
import sys
import time

from backworks.sandbox import values
from backworks.sandbox.limits import SIZE_MAX_AGE_S, AddressSpace, Budget, keep_timer_between_phases
from backworks.sandbox.phases import check_phase, run_steps
from backworks.sandbox.policy import Script
from backworks.sandbox.runner import Outcome, Runner, Step

logger = logging.getLogger(__name__)

HEADER = struct.Struct(">I")
# A pipe holds 64 KB: a read asked for more allocates the whole size, and from 256 KB on (limits.py sets
# that mmap threshold) every such read maps and unmaps memory (measured: 12 us instead of 0.7 us).
READ_CHUNK = 64 * 1024
# json.dumps, and JSONEncoder.encode too, build a C encoder per call: this one is built once. No check for
# cycles: everything sent was validated as plain data (a cycle would stop the child: RecursionError).
_ENCODER = json.encoder.c_make_encoder(None, None, json.encoder.encode_basestring_ascii, None, ":", ",",
                                       False, False, True)
MAX_OPEN_FILES = 32
FLUSH_S = 0.001
MAX_PLANS = 256


def take_frame(buffer: bytearray, max_size: int | None = None) -> bytearray | None:
    """Remove the first whole length-prefixed frame from `buffer` and return its payload (None: not all here).

    ValueError when the announced size is over `max_size`.
    """
    if len(buffer) < HEADER.size:
        return None
    end = HEADER.size + HEADER.unpack_from(buffer)[0]
    if max_size is not None and end - HEADER.size > max_size:
        raise ValueError(f"frame of {end - HEADER.size} bytes")
    if len(buffer) < end:
        return None
    payload = buffer[HEADER.size:end]
    del buffer[:end]
    return payload


def read_frames(fd: int):
    """Yield the payloads of the frames read from fd until end of file (usually one read per frame)."""
    buffer = bytearray()
    while True:
        payload = take_frame(buffer)
        if payload is not None:
            yield payload
            continue
        chunk = os.read(fd, READ_CHUNK)
        if not chunk:
            return
        if not buffer and len(chunk) >= HEADER.size and HEADER.unpack_from(chunk)[0] == len(chunk) - HEADER.size:
            yield memoryview(chunk)[HEADER.size:]  # the usual read: exactly one whole frame
            continue
        buffer += chunk


def write_frame(fd: int, payload: bytes) -> None:
    """Write one length-prefixed frame."""
    data = HEADER.pack(len(payload)) + payload
    while data:
        data = data[os.write(fd, data):]


def _confine() -> None:
    for limit, value in ((resource.RLIMIT_CORE, 0), (resource.RLIMIT_NOFILE, MAX_OPEN_FILES),
                         (resource.RLIMIT_NPROC, 0), (resource.RLIMIT_FSIZE, 0)):
        try:
            resource.setrlimit(limit, (value, value))
        except (ValueError, OSError):
            logger.debug("cannot set rlimit %s", limit)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)


class _Limits:
    """The limits last set, so that a message under the same budget makes no system call for them."""

    ceiling = None
    cpu_budget_ms = None
    cpu_set_at = float("-inf")
    baseline = None  # mapped size after boot and the loads: what calls are measured against
    largest_mb = 0   # the largest memory budget of any message so far


MB = 1024 * 1024


def _memory_ceiling(memory_mb: int) -> None:
    """Cap this process's address space at its post-load baseline + the largest budget seen.

    Never its current size: a script that keeps what it allocates (caches, `state`, fragments) would
    otherwise raise the ceiling at every message. An unchanged ceiling is not set again.
    """
    if _Limits.baseline is None:
        _Limits.baseline = AddressSpace.current()
    if memory_mb > _Limits.largest_mb:
        _Limits.largest_mb = memory_mb
    ceiling = _Limits.baseline + _Limits.largest_mb * MB
    if ceiling != _Limits.ceiling:
        resource.setrlimit(resource.RLIMIT_AS, (ceiling, resource.RLIM_INFINITY))
        _Limits.ceiling = ceiling


def _state_allowance() -> int:
    """Bytes the in-memory `state` stores of this child may hold (their own budget, with object overhead)."""
    from backworks.state import _memory_stores  # start-up cost: a child imports state (redis) only when asked

    return sum(store.used_bytes + STATE_ENTRY_OVERHEAD * len(store._items) for store in _memory_stores.values())


STATE_ENTRY_OVERHEAD = 256  # an entry's Python objects beyond its counted bytes (str headers, dict slot, tuple)


def _cpu_backstop(budget_ms: int) -> None:
    """RLIMIT_CPU at the CPU time used + the budget + 2 s: kills the child if its parent failed to.

    It is re-set once a second or when the budget changes: the CPU time used cannot grow faster than the
    wall clock, so until then every message still has at least its budget + 1 s before the limit.
    """
    now = time.monotonic()
    if budget_ms == _Limits.cpu_budget_ms and now - _Limits.cpu_set_at < 1.0:
        return
    usage = resource.getrusage(resource.RUSAGE_SELF)
    used = usage.ru_utime + usage.ru_stime
    soft = int(math.ceil(used + budget_ms / 1000.0)) + 2
    resource.setrlimit(resource.RLIMIT_CPU, (soft, resource.RLIM_INFINITY))
    _Limits.cpu_budget_ms, _Limits.cpu_set_at = budget_ms, now


_BOARD_SLOT = struct.Struct("i")  # the index of the step running now (steps before it have finished)


class Child:
    """The message loop: load, call, phase, drop."""

    def __init__(self, state_settings: dict, board: mmap.mmap | None = None):
        self.runner = Runner(state_settings, memory=False)  # RLIMIT_AS is set once per message instead
        self.board = board  # where this child counts the steps of a phase it finished (process.py reads it)
        self.runner.defer_cleanup = True  # answer first, free the failed script's objects after
        self.last = (None, None)
        self.pending: list = []
        self.flushed = 0.0
        self.plans: dict = {}

    def send(self, message) -> None:
        """Send one JSON frame to the parent."""
        write_frame(1, "".join(_ENCODER(message, 0)).encode())

    def handle(self, message: tuple) -> None:
        """Answer one request from the parent."""
        kind = message[0]
        if kind == "load":
            _, key, filename, source, digest, hooks, code, config, budget = message
            script = Script(filename, source, digest, frozenset(hooks), code)
            _cpu_backstop(budget[0])
            _memory_ceiling(budget[1])
            before = AddressSpace.current()
            self.send(["load", self.runner.load(key, script, config, Budget(*budget)).to_wire()])
            self.runner.collect()
            AddressSpace.invalidate()  # the script's module state grew the heap: the baseline grows with it
            _Limits.baseline += max(0, AddressSpace.current() - before)
        elif kind == "call":
            _, key, hook, args, budget = message
            _cpu_backstop(budget[0])
            _memory_ceiling(budget[1])
            outcome = self.runner.call(key, hook, tuple(args), Budget(*budget))
            AddressSpace.invalidate()
            self.send(["call", plain_outcome(outcome).to_wire(), *self.grown()])
        elif kind == "phase":
            _, phase, steps, request, response = message
            steps, cpu_ms, memory_mb = self.plan(phase, steps)
            _cpu_backstop(cpu_ms)
            _memory_ceiling(memory_mb)
            self.last = (request, response)
            self.pending, self.flushed = [], time.monotonic()
            if steps:
                run_steps(self.runner, phase, steps, request, response, emit=self.emit_step)
            self.send(["end", self.pending, *self.grown()])
        elif kind == "drop":
            self.runner.drop(message[1])
        elif kind == "ping":
            self.send(["ready"])
        self.runner.collect()

    def grown(self) -> list:
        """[bytes over the baseline] when this child kept more than half the largest budget, else [].

        The parent then replaces it: every call keeps at least half its budget under the fixed ceiling.
        What the `state` stores hold (within their own budget) does not count.
        """
        over = AddressSpace.current(SIZE_MAX_AGE_S) - _Limits.baseline
        if over <= _Limits.largest_mb * MB // 2:
            return []
        self.runner.collect()  # a failed call's objects, freed after answering otherwise
        AddressSpace.invalidate()
        over = AddressSpace.current() - _Limits.baseline - _state_allowance()
        return [over] if over > _Limits.largest_mb * MB // 2 else []

    def plan(self, phase: str, steps: tuple) -> tuple:
        """The checked phase's Step list, total time budget and largest memory budget.

        Cached: a plugin chain sends the same steps (a tuple of (key, budget, on_error)) every time.
        """
        plan = self.plans.get((phase, steps))
        if plan is None:
            check_phase(phase)
            built = [Step(key, Budget(*budget), on_error) for key, budget, on_error in steps]
            plan = (built, sum(step.budget.timeout_ms for step in built),
                    max((step.budget.memory_mb for step in built), default=0))
            if len(self.plans) >= MAX_PLANS:
                self.plans.clear()
            self.plans[phase, steps] = plan
        return plan

    def emit_step(self, index, key, outcome, result) -> None:
        """Queue one finished step; send the queue when 1 ms has passed since the last frame or it failed.

        An entry is [index, duration_ms] for a step that went fine, logged nothing and changed nothing
        (a phase's ok outcomes carry no value: it travels as the request/response), else
        [index, outcome, request or None, response or None, short_circuit], None meaning "unchanged".

        The parent's deadline for the running step is "last frame + FLUSH_S + the step's budget + grace",
        so fast steps share one frame without loosening the deadline.
        """
        request = None if result.request is self.last[0] else result.request
        response = None if result.response is self.last[1] else result.response
        self.last = (result.request, result.response)
        if request is None and response is None and outcome.kind == "ok" and not outcome.logs:
            self.pending.append([index, outcome.duration_ms])  # the usual step: fine, changed nothing
        else:
            self.pending.append([index, outcome.to_wire(), request, response, result.short_circuit])
        if self.board is not None:  # the parent learns which step a kill interrupted, even of a batched phase
            _BOARD_SLOT.pack_into(self.board, 0, index + 1)
        now = time.monotonic()
        if not outcome.ok or now - self.flushed >= FLUSH_S:
            self.send(["steps", self.pending])
            self.pending, self.flushed = [], now
            self.runner.collect()


def plain_outcome(outcome: Outcome) -> Outcome:
    """Validate an ok outcome's value as plain data (tuples become lists), or make it "invalid"."""
    if outcome.ok:
        try:
            outcome.value = values.plain(outcome.value, "return value")
        except values.InvalidValue as exc:
            outcome.kind, outcome.value, outcome.message = "invalid", None, f"invalid return: {exc}"
    return outcome


BOARD_BYTES = 8  # the step board: memory shared with the parent, where a phase's progress is written


def open_board(fd: int | None) -> mmap.mmap | None:
    """Map the step board the parent passed as descriptor `fd`, or None without one."""
    if fd is None:
        return None
    board = mmap.mmap(fd, BOARD_BYTES)
    os.close(fd)
    return board


def main(board_fd: int | None = None) -> None:
    """Serve the parent until it closes the pipe."""
    board = open_board(board_fd)  # before _confine: mapping it takes a file descriptor
    _confine()
    keep_timer_between_phases()
    sys.stdout = sys.stderr
    logging.getLogger().addHandler(logging.NullHandler())  # script log lines travel in outcomes instead
    child = None
    for payload in read_frames(0):
        message = marshal.loads(payload)
        if message[0] == "init":
            child = Child(message[1], board)
            continue
        child.handle(message)


if __name__ == "__main__":
    main()
