"""The parent side of a sandbox child: spawn by exec, send work, enforce hard deadlines, kill and respawn."""
from __future__ import annotations

import json
import logging
import marshal
import mmap
import os
import select
import signal
import struct
import subprocess
import sys
import threading
import time

from backworks.pids import current_pid
from backworks.sandbox import spare, values
from backworks.sandbox.child import BOARD_BYTES, FLUSH_S, READ_CHUNK, take_frame, write_frame
from backworks.sandbox.limits import Budget
from backworks.sandbox.policy import Script
from backworks.sandbox.runner import SKIPPED, Outcome, PhaseResult

logger = logging.getLogger(__name__)

GRACE_S = 0.030       # past the budget, the child's own timer has had its chance: SIGKILL
STARTUP_S = 10.0      # a fresh child must answer its first ping within this
# In the main thread (a sync worker), a reply is first awaited by polling the pipe and yielding the CPU,
# for at most this long, then by sleeping in select(). Waking a sleeping process on another CPU of a VM
# costs tens of microseconds; a parent that stays runnable is woken by nothing, and its yield lets a child
# on the same CPU run at once. Other threads (a gthread worker) sleep at once: the CPU a poll would take is
# then their other requests' (polling there cost 5-7% of the requests per second at 32 connections).
SPIN_S = 0.0003
MAX_FRAME = 64 * 1024 * 1024
PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


_DECODER = json.JSONDecoder()


class ChildGone(Exception):
    """The child died, overran its hard deadline, or sent garbage; it has been killed."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind
        self.message = message


class ChildProcess:
    """One persistent sandbox child; every method is thread-safe and returns within budget + grace."""

    def __init__(self, state_settings: dict, warm_spare: bool = True):
        self.state_settings = state_settings
        self.warm_spare = warm_spare  # False: a process that only loads (a check) never builds a spare
        self.lock = threading.Lock()
        self.proc: subprocess.Popen | None = None
        self.buffer = bytearray()  # what the child sent past the last frame read
        self.scripts: dict[str, tuple] = {}  # key -> (script, config, budget): replayed after a respawn
        self.ready = False
        self.spawns = 0
        self.running_step: int | None = None  # steps of the phase a killed child had finished (see fail)
        self.owner = current_pid()
        self.booted = False  # this process has had a child: from then on a request never waits for one
        # A warm spare: (process, read buffer) of a child that answered a ping and loaded every script. It is
        # built in a background thread and swapped in when the current child is killed (spare_lock guards it).
        self.spare_lock = threading.Lock()
        self.spare: tuple | None = None
        self.builder: spare.Builder | None = None
        self.closed = False

    # process management

    def start(self) -> subprocess.Popen:
        """Start a child by exec (safe from threaded processes); it boots in the background."""
        fd = os.memfd_create("backworks-steps")
        try:
            os.ftruncate(fd, BOARD_BYTES)
            board = mmap.mmap(fd, BOARD_BYTES)
            proc = subprocess.Popen(
                [sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {PACKAGE_ROOT!r}); "
                 f"from backworks.sandbox.child import main; main({fd})"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, close_fds=True, start_new_session=True,
                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONHASHSEED": "random"},
                pass_fds=(fd,))
        finally:
            os.close(fd)
        proc.step_board = board  # travels with the process (a warm spare keeps its own)
        self.spawns += 1
        write_frame(proc.stdin.fileno(), marshal.dumps(("init", self.state_settings)))
        return proc

    def spawn(self, request: bool = False) -> None:
        """Make a fresh child current: the warm spare if there is one, else (outside requests) a new one.

        A request never waits for a child to boot: with no warm spare it fails open at once (ChildGone)
        while the spare is built in the background. Loads, and the very first use, start one and wait.
        """
        warm = self.take_spare()
        if warm is not None:
            self.proc, self.buffer = warm
            self.ready = True  # pinged, and every script loaded
        elif request and self.booted and self.warm_spare:
            self.build_spare()
            raise ChildGone(SKIPPED, "sandbox process is being replaced after a kill: this call was skipped "
                                     "(not counted against the plugin's breaker; the replacement boots in the "
                                     "background)")
        else:
            self.proc = self.start()
            self.buffer = bytearray()
            self.ready = False
        os.set_blocking(self.proc.stdout.fileno(), False)  # receive() polls it
        self.booted = True

    def kill(self) -> int | None:
        """SIGKILL the current child and reap it; return its exit status."""
        proc, self.proc = self.proc, None
        self.ready = False
        return _reap(proc)

    def ensure(self, request: bool = False) -> None:
        """Make sure a child is running, ready, and holds every loaded script (see spawn for `request`)."""
        if self.owner != current_pid():  # this process was forked: the children and pipes are the parent's
            self.proc, self.buffer, self.ready, self.owner, self.booted = None, bytearray(), False, current_pid(), False
            self.spare, self.builder, self.spare_lock = None, None, threading.Lock()  # its builder is not here
        if self.proc is None:  # a child that died while idle is found by send_fresh(), without a system call here
            self.spawn(request)
        if not self.ready:
            self.send(("ping",))
            self.receive(time.monotonic() + STARTUP_S, "startup")
            self.ready = True
            for key, (script, config, budget) in list(self.scripts.items()):
                outcome = self.exchange(self.load_message(key, script, config, budget), budget, retry=False)
                if not outcome.ok:
                    logger.warning("plugin %s failed to reload in a new sandbox process: %s", key, outcome.message)
        if self.spare is None:
            self.build_spare()

    # the warm spare

    def take_spare(self) -> tuple | None:
        """Remove and return the warm spare (process, buffer), if one is booted and alive."""
        with self.spare_lock:
            warm, self.spare = self.spare, None
        if warm is not None and warm[0].poll() is not None:
            _reap(warm[0])
            return None
        return warm

    def build_spare(self) -> None:
        """Start building a warm spare in the background unless one exists or is being built."""
        if not self.warm_spare:
            return
        with self.spare_lock:
            if self.spare is not None or self.closed or (self.builder is not None and self.builder.alive()):
                return
            loads = [(key, self.load_message(key, *entry)) for key, entry in self.scripts.items()]
            self.builder = spare.Builder(self.start, loads, self.install_spare)
            self.builder.thread.start()

    def install_spare(self, proc, buffer) -> None:
        """Called by the builder thread: keep the booted spare, or reap it (failed, closed, or forked since)."""
        with self.spare_lock:
            keep = buffer is not None and not self.closed and self.owner == current_pid() and self.spare is None
            if keep:
                self.spare = (proc, buffer)
        if not keep:
            _reap(proc)

    def sync_spare(self, key: str, message: tuple) -> None:
        """A load also goes to the spare (after its build, which may predate the load), so a swap is complete."""
        builder = self.builder
        if builder is not None:
            builder.thread.join(spare.BOOT_S * (2 + len(self.scripts)))
        with self.spare_lock:
            warm = self.spare
            if warm is None:
                return
            try:
                spare.ask(warm[0], warm[1], message)
            except spare.BootFailed as exc:
                logger.warning("the spare sandbox process failed to load %s: %s", key, exc)
                self.spare = None
                _reap(warm[0])

    def close(self) -> None:
        """Stop the child, the spare and a spare being built."""
        with self.lock:
            self.kill()
            with self.spare_lock:
                self.closed = True
                warm, self.spare = self.spare, None
                building = self.builder.proc if self.builder is not None and self.builder.alive() else None
            if warm is not None:
                _reap(warm[0])
            if building is not None:
                _reap(building)  # its boot fails at once; install_spare reaps nothing more
            if self.builder is not None and self.builder.thread is not threading.current_thread():
                self.builder.thread.join(spare.BOOT_S)  # no thread outlives close() (a master forks after it)

    # wire

    def send(self, message) -> None:
        """Write one marshal frame to the child."""
        try:
            write_frame(self.proc.stdin.fileno(), marshal.dumps(message))
        except (OSError, ValueError) as exc:
            self.kill()
            raise ChildGone("crash", f"sandbox process is gone ({exc})") from None

    def send_fresh(self, message, request: bool = True) -> None:
        """Send a message to a ready child; one that died while idle is replaced and the message sent again.

        A dead child's pipe has no reader: the write fails at once (EPIPE), before anything ran.
        """
        try:
            self.send(message)
        except ChildGone:
            self.ensure(request)
            self.send(message)

    def receive(self, deadline: float, what: str) -> list:
        """Read one JSON frame before `deadline`, or kill the child."""
        fd = self.proc.stdout.fileno()
        spin_until = time.monotonic() + SPIN_S if threading.get_ident() == threading.main_thread().ident else 0.0
        while True:
            try:
                payload = take_frame(self.buffer, MAX_FRAME)
            except ValueError:
                self.fail("crash", "sandbox process sent an oversized frame")
            if payload is not None:
                try:  # the child writes compact JSON: no whitespace around it to strip
                    text = payload.decode()
                    message, end = _DECODER.raw_decode(text)
                    if end == len(text):
                        return message
                except ValueError:  # UnicodeDecodeError included
                    pass
                self.fail("crash", "sandbox process sent an unreadable frame")
            now = time.monotonic()
            if now < spin_until:
                try:
                    chunk = os.read(fd, READ_CHUNK)
                except BlockingIOError:
                    os.sched_yield()
                    continue
            else:
                left = deadline - now
                if left <= 0:
                    self.fail("timeout", f"sandbox process overran its deadline ({what}); killed")
                ready, _, _ = select.select([fd], [], [], left)
                try:
                    chunk = os.read(fd, READ_CHUNK) if ready else None
                except BlockingIOError:  # readiness that went away: wait again
                    chunk = None
                if chunk is None:
                    continue
            if not chunk:
                status = self.proc.wait()
                self.fail("crash", f"sandbox process died ({_describe_status(status)})")
            self.buffer += chunk

    def fail(self, kind: str, message: str):
        """Kill the child and raise ChildGone; the next use swaps in the warm spare (see spawn)."""
        board = getattr(self.proc, "step_board", None)
        self.running_step = _STEP.unpack_from(board, 0)[0] if board is not None else None  # where the child was
        self.kill()
        raise ChildGone(kind, message)

    @staticmethod
    def load_message(key: str, script: Script, config: dict, budget: Budget) -> tuple:
        """The frame that (re)defines a script in the child."""
        return ("load", key, script.filename, script.source, script.digest, sorted(script.hooks), script.code,
                config, tuple(budget))

    def exchange(self, message: tuple, budget: Budget, retry: bool = True) -> Outcome:
        """Send one load/call and wait for its outcome until budget + grace."""
        if retry:
            self.send_fresh(message, request=message[0] != "load")
        else:
            self.send(message)
        sent = time.monotonic()  # after a respawn by send_fresh too: the budget starts now
        reply = self.receive(sent + budget.timeout_ms / 1000.0 + GRACE_S, message[0])
        outcome = Outcome.from_wire(reply[1])
        if len(reply) > 2:
            self.retire(reply[2])
        return outcome

    def retire(self, grown) -> None:
        """Replace a child that kept too much memory past its post-load baseline (see Child.grown)."""
        logger.warning("sandbox process kept %s MB over its baseline after a call (more than half the largest "
                       "memory budget); replaced", round(grown / 1048576) if isinstance(grown, int) else "?")
        self.kill()
        self.want_spare = True

    # operations

    def load(self, key: str, script: Script, config: dict, budget: Budget) -> Outcome:
        """(Re)define `key` in the child and remember it for respawns."""
        with self.lock:
            started = time.monotonic()
            try:
                self.ensure()
                message = self.load_message(key, script, config, budget)
                outcome = self.exchange(message, budget)
            except ChildGone as gone:
                return _gone_outcome(gone, script, started)
            if outcome.ok:
                self.scripts[key] = (script, values.copy(config), budget)
                self.sync_spare(key, message)
            return outcome

    def call(self, key: str, hook: str, args: tuple, budget: Budget) -> Outcome:
        """Run one hook in the child."""
        with self.lock:
            started = time.monotonic()
            script = self.scripts.get(key, (None,))[0]
            try:
                self.ensure(request=True)
                outcome = self.exchange(("call", key, hook, list(args), tuple(budget)), budget)
            except ChildGone as gone:
                return _gone_outcome(gone, script, started)
            return outcome

    def run_phase(self, phase: str, steps: list, request: dict, response: dict | None) -> PhaseResult:
        """Run a whole phase in one round trip; if the child dies mid-phase, go on in a fresh one."""
        with self.lock:
            result = PhaseResult(request=request, response=response)
            pending = list(steps)
            while pending:
                pending = self.phase_round(phase, pending, result)
            return result

    def phase_round(self, phase: str, steps: list, result: PhaseResult) -> list:
        """One round trip; return the steps still to run (after a child failure), else []."""
        index = 0
        step_started = time.monotonic()
        self.running_step = None
        try:
            self.ensure(request=True)
            board = getattr(self.proc, "step_board", None)
            if board is not None:
                _STEP.pack_into(board, 0, 0)  # the child counts the steps it finished from here
            self.send_fresh(("phase", phase, tuple([(s.key, tuple(s.budget), s.on_error) for s in steps]),
                             result.request, result.response))
            step_started = time.monotonic()  # after a respawn by send_fresh too: the budget starts now
            while True:
                longest = max((s.budget.timeout_ms for s in steps[index:]), default=0) / 1000.0
                reply = self.receive(step_started + FLUSH_S + longest + GRACE_S, phase)
                for entry in reply[1]:
                    index = self.fold_step(entry, steps, result, index)
                step_started = time.monotonic()
                if reply[0] == "end":
                    if len(reply) > 2:
                        self.retire(reply[2])
                    return []
        except ChildGone as gone:
            return self.after_kill(gone, steps, result, index, step_started)

    def after_kill(self, gone: ChildGone, steps: list, result: PhaseResult, index: int, started: float) -> list:
        """Blame the step the child was running when it died; return the steps still to run (or [] if closed).

        Steps it finished but had not reported yet (fast steps share a frame) lost their outcome with it: they
        are SKIPPED (never charged to their breakers; one that fails closed still refuses this request).
        """
        running = max(index, self.running_step if self.running_step is not None else index)
        for step in steps[index:running]:
            lost = Outcome(SKIPPED, None, f"{_name(self.scripts.get(step.key, (None,))[0])}: its outcome was lost: "
                                          f"the sandbox process was killed during a later plugin's call", "", 0.0, [])
            result.outcomes.append((step.key, lost))
            if step.on_error == "closed" and result.failed_closed is None:
                result.failed_closed = (step.key, lost)
        if running >= len(steps):
            return []
        step = steps[running]
        outcome = _gone_outcome(gone, self.scripts.get(step.key, (None,))[0], started)
        result.outcomes.append((step.key, outcome))
        if step.on_error == "closed" and result.failed_closed is None:
            result.failed_closed = (step.key, outcome)
        return [] if result.failed_closed is not None else steps[running + 1:]

    def fold_step(self, entry: list, steps: list, result: PhaseResult, index: int) -> int:
        """Apply one step entry (see Child.emit_step) to the result; return the index of the next step.

        `index` is the first step the child may report on; an entry out of order or malformed kills it.
        """
        try:
            at = entry[0]
            if type(at) is not int or not index <= at < len(steps):
                raise ValueError(f"step index {at!r}")
            if len(entry) == 2:
                outcome = Outcome("ok", None, "", "", float(entry[1]), [])
            else:
                _, wire, request, response, short = entry
                outcome = Outcome.from_wire(wire)
                if request is not None:
                    result.request = values.request(request, result.request)
                if response is not None:
                    result.response = values.response(response, None)
                result.short_circuit = bool(short)
        except (ValueError, TypeError, IndexError, KeyError) as exc:  # values.InvalidValue is a ValueError
            self.fail("crash", f"sandbox process sent a malformed step ({exc})")
        step = steps[at]
        result.outcomes.append((step.key, outcome))
        if not outcome.ok and step.on_error == "closed":
            result.failed_closed = (step.key, outcome)
        return at + 1


_STEP = struct.Struct("i")  # the step board: how many steps of the current phase the child finished


def _reap(proc: subprocess.Popen | None) -> int | None:
    """SIGKILL a child if it still runs, close its pipes and wait for it; return its exit status."""
    if proc is None:
        return None
    if proc.poll() is None:
        try:
            os.kill(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for stream in (proc.stdin, proc.stdout):
        try:
            stream.close()
        except OSError:
            pass
    return proc.wait()


def _name(script: Script | None) -> str:
    return os.path.basename(script.filename) if script is not None else "sandbox"


def _gone_outcome(gone: ChildGone, script: Script | None, started: float) -> Outcome:
    name = _name(script)
    if gone.kind == "timeout":
        message = f"{name}: timed out (sandbox process killed at its hard deadline)"
    else:
        message = f"{name}: {gone.message}"
    return Outcome(gone.kind, None, message, "", round((time.monotonic() - started) * 1000.0, 3), [])


def _describe_status(status: int | None) -> str:
    if status is None:
        return "unknown status"
    if status < 0:
        try:
            return f"signal {signal.Signals(-status).name}"
        except ValueError:
            return f"signal {-status}"
    return f"exit status {status}"
