"""Runs scripts in this process under budgets: load, one hook call, or a whole request phase."""
from __future__ import annotations

import collections
import copy
import functools
import gc
import logging
import os
import reprlib
import time
import traceback
import types
from dataclasses import dataclass, field
from typing import Callable, NamedTuple

from RestrictedPython.Guards import guarded_iter_unpack_sequence, guarded_unpack_sequence

from backworks.sandbox import guards, limits, values
from backworks.sandbox.limits import Budget, Clock, Timeout
from backworks.sandbox.logs import ScriptLog
from backworks.sandbox.policy import Script
from backworks.sandbox.safe_builtins import SAFE_BUILTINS

logger = logging.getLogger(__name__)

_repr = reprlib.Repr()
_repr.maxstring = 200
_repr.maxother = 200


@dataclass(slots=True)
class Outcome:
    """What one script call produced: a value, or the kind of failure and the script's own traceback."""

    kind: str            # "ok" | "error" | "timeout" | "memory" | "invalid" | "crash"
    value: object = None
    message: str = ""
    traceback: str = ""
    duration_ms: float = 0.0
    logs: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when the call returned a valid value."""
        return self.kind == "ok"

    def to_wire(self) -> list:
        """Plain-data form for the pipe between a sandbox child and its parent."""
        return [self.kind, self.value, self.message, self.traceback, self.duration_ms, self.logs]

    @classmethod
    def from_wire(cls, data: list) -> "Outcome":
        """Rebuild an Outcome sent by a sandbox child."""
        kind, value, message, trace, duration, logs = data
        return cls(str(kind), value, str(message), str(trace), float(duration), [str(x) for x in logs])


class Step(NamedTuple):
    """One plugin's hook in a phase: which script, its budget, and what a failure does."""

    key: str
    budget: Budget
    on_error: str  # "open" | "closed"


@dataclass
class PhaseResult:
    """The request/response after a phase, and what each step did."""

    request: dict
    response: dict | None
    short_circuit: bool = False
    outcomes: list = field(default_factory=list)
    failed_closed: tuple | None = None


class Loaded:
    """A script whose module body (and on_load) ran: the globals every call starts from.

    Calls reuse one globals dict (`scope`), reset to `base` after each call: the script's functions are
    bound to it once, at load, so a call creates no function objects and no reference cycles for the
    garbage collector. Mutable values are copied into it before each call.
    """

    def __init__(self, script: Script, snapshot: dict, state):
        self.script = script
        self.name = _short(script.filename)
        self.snapshot = snapshot
        self.state = state
        self.functions = [k for k, v in snapshot.items() if isinstance(v, types.FunctionType)
                          and v.__code__.co_filename == script.filename]
        self.mutable_defaults = {k for k in self.functions
                                 if not _immutable((snapshot[k].__defaults__, snapshot[k].__kwdefaults__))}
        self.mutable = [k for k, v in snapshot.items() if not k.startswith("__") and k not in _HOST_NAMES
                        and isinstance(v, _MUTABLE)]
        self.copies = [(name, _copier(snapshot[name])) for name in self.mutable]
        # A function takes its builtins from its globals' __builtins__ when it is created: the scope must
        # hold the safe ones by then, or the script would get the host's.
        self.scope: dict = dict(snapshot)
        self.base = dict(snapshot)
        for name in self.functions:
            fn = snapshot[name]
            rebound = types.FunctionType(fn.__code__, self.scope, fn.__name__, fn.__defaults__, fn.__closure__)
            if rebound.__builtins__ is not snapshot["__builtins__"]:
                raise RuntimeError(f"{self.name}: {name} would not run with the sandbox's builtins")
            rebound.__kwdefaults__ = fn.__kwdefaults__
            self.base[name] = rebound
        self.scope.update(self.base)
        self.busy = False

    def prepare(self, log: ScriptLog) -> dict:
        """Ready the reused globals for one call: this call's log and fresh copies of mutable values."""
        scope = self.scope
        scope["log"] = log
        for name, copier in self.copies:
            scope[name] = copier()
        for name in self.mutable_defaults:  # def f(seen=[]) must not remember across calls either
            original, function = self.snapshot[name], scope[name]
            function.__defaults__ = _copy_value(original.__defaults__)
            function.__kwdefaults__ = _copy_value(original.__kwdefaults__)
        return scope

    def reset(self) -> None:
        """Undo what a call did to the globals: rebound names get their loaded values, new names go."""
        scope, base = self.scope, self.base
        scope.update(base)
        if len(scope) != len(base):
            for name in [name for name in scope if name not in base]:
                del scope[name]


def _apply(function, *args, **kwargs):
    return function(*args, **kwargs)


_HOST_NAMES = frozenset({"_apply_", "_bw_slice", "_getattr_", "_getitem_", "_getiter_", "_write_", "_inplacevar_",
                         "_bw_inplace",
                         "_iter_unpack_sequence_", "_unpack_sequence_", "_bw_mul", "_bw_pow", "_bw_lshift",
                         "_bw_mod", "_bw_format", "_bw_tick", "_print_", "log", "state"})


class StateFacade:
    """What scripts see as `state`: get, set and incr of their own namespace, nothing else."""

    __slots__ = ("get", "set", "incr")

    def __init__(self, store):
        self.get, self.set, self.incr = store.get, store.set, store.incr


class Runner:
    """Loads scripts and runs their hooks in the calling process (inline, or inside a sandbox child)."""

    def __init__(self, state_settings: dict | None = None, memory: bool = True):
        self.state_settings = state_settings or {}
        self.memory = memory
        self.loaded: dict[str, Loaded] = {}
        self.garbage: list[BaseException] = []
        self.defer_cleanup = False

    def make_state(self, key: str):
        """Build the `state` facade of the script loaded under `key` (lazily imports backworks.state)."""
        from backworks.state import make_state

        return StateFacade(make_state(self.state_settings, key))

    def globals_for(self, script: Script, config: dict, state, log: ScriptLog) -> dict:
        """Fresh globals: builtins, guards, config copy, log, state, a private random generator."""
        return {
            "__builtins__": SAFE_BUILTINS,
            "__name__": "plugin", "__metaclass__": None,
            "_getattr_": guards.guarded_getattr, "_getitem_": guards.guarded_getitem,
            "_getiter_": guards.guarded_iter, "_write_": guards.guarded_write,
            "_inplacevar_": guards.inplace, "_bw_inplace": guards.inplace,
            "_iter_unpack_sequence_": guarded_iter_unpack_sequence,
            "_unpack_sequence_": guarded_unpack_sequence,
            "_apply_": _apply, "_bw_slice": slice, "_bw_mul": guards.guarded_mul, "_bw_pow": guards.guarded_pow,
            "_bw_lshift": guards.guarded_lshift,
            "_bw_mod": guards.guarded_mod, "_bw_format": guards.guarded_format, "_bw_tick": limits.tick,
            "config": values.copy(config), "log": log, "state": state,
        }

    def load(self, key: str, script: Script, config: dict, budget: Budget) -> Outcome:
        """Run the module body, then on_load(config), within budget; keep the result as `key`."""
        log = ScriptLog(_short(script.filename))
        state = self.make_state(key)
        scope = self.globals_for(script, config, state, log)

        def body():
            exec(script.code, scope)
            hook = scope.get("on_load") if "on_load" in script.hooks else None
            if hook is not None:
                hook(values.copy(config))
            return None

        outcome = self.run(script, body, (), budget, log)
        if outcome.ok:
            self.loaded[key] = Loaded(script, scope, state)
        return outcome

    def fresh(self, loaded: Loaded, log: ScriptLog) -> dict:
        """Per-call globals: the loaded snapshot with functions rebound and mutable values copied."""
        scope = dict(loaded.snapshot)
        scope["log"] = log
        for name in loaded.mutable:
            value = scope[name]
            scope[name] = type(value)() if type(value) in (dict, list) and not value else _copy_value(value)
        for name in loaded.functions:
            fn = scope[name]
            defaults, kwdefaults = fn.__defaults__, fn.__kwdefaults__
            if name in loaded.mutable_defaults:  # def f(seen=[]) must not remember across calls either
                defaults, kwdefaults = _copy_value(defaults), _copy_value(kwdefaults)
            rebound = types.FunctionType(fn.__code__, scope, fn.__name__, defaults, fn.__closure__)
            rebound.__kwdefaults__ = kwdefaults
            scope[name] = rebound
        return scope

    def call(self, key: str, hook: str, args: tuple, budget: Budget) -> Outcome:
        """Call one hook of the script loaded as `key` with copies of `args`."""
        return self.call_with(key, hook, values.copy(tuple(args)), budget)

    def call_with(self, key: str, hook: str, args: tuple, budget: Budget, loaded: Loaded | None = None) -> Outcome:
        """Call one hook with `args` that are already this call's own copies (nothing else holds them)."""
        loaded = loaded or self.loaded.get(key)
        if loaded is None:
            return Outcome("error", message=f"{key}: no script is loaded under this name")
        if hook not in loaded.script.hooks:
            return Outcome("error", message=f"{loaded.name}: defines no {hook}()")
        log = ScriptLog(loaded.name)
        if loaded.busy:  # a call inside a call of the same script: it gets globals of its own
            return self.run(loaded.script, self.fresh(loaded, log)[hook], args, budget, log)
        loaded.busy = True
        try:
            return self.run(loaded.script, loaded.prepare(log)[hook], args, budget, log)
        finally:
            loaded.busy = False
            loaded.reset()  # nothing a call leaves in its globals reaches the next one

    def run(self, script: Script, function: Callable, args: tuple, budget: Budget, log: ScriptLog) -> Outcome:
        """Call `function(*args)` under the budget and classify what happened."""
        started = time.perf_counter()
        try:
            try:
                limits.arm(budget, self.memory)
                value = function(*args)
            finally:
                Clock.active = False  # first: from here on the alarm handler never raises
                limits.disarm()
            if Clock.expired:
                raise Timeout()
        except (Timeout, Exception) as exc:
            if Clock.expired or isinstance(exc, Timeout):
                kind = "timeout"
            else:
                kind = "memory" if isinstance(exc, MemoryError) else "error"
            return self.failure(kind, script, exc, started, log, budget)
        return Outcome("ok", value, "", "", round((time.perf_counter() - started) * 1000.0, 3), log._lines)

    def failure(self, kind, script, exc, started, log, budget) -> Outcome:
        """Build a failed Outcome with the script's own frames only."""
        duration = _ms(started)
        frames = _script_frames(exc, script) if exc is not None else []
        where = f"{_short(script.filename)}:{frames[-1][0]}" if frames else _short(script.filename)
        if kind == "timeout":
            message = f"{where}: timed out after {budget.timeout_ms} ms"
        elif kind == "memory" and not isinstance(exc, guards.LimitError):
            message = f"{where}: MemoryError: memory budget of {budget.memory_mb} MB exceeded"
        else:
            message = f"{where}: {type(exc).__name__}: {_describe(exc)}"
        trace = _format_frames(frames, script.filename)
        if exc is not None:
            self.garbage.append(exc)  # its frames hold what the script built: freed by collect()
        if not self.defer_cleanup:
            self.collect()
        return Outcome(kind, None, message, trace, duration, log._lines)

    def collect(self) -> None:
        """Free what failed calls left behind (a sandbox child does it after answering, off the clock)."""
        while self.garbage:
            exc = self.garbage.pop()
            exc.__traceback__ = exc.__context__ = exc.__cause__ = None
            del exc
            gc.collect(1)  # young generations only: a full collection of a big worker heap costs tens of ms
            limits.release_memory()  # heaps glibc opened with mmap when brk hit RLIMIT_AS are not trimmed alone

    def drop(self, key: str) -> None:
        """Forget the script loaded as `key`."""
        self.loaded.pop(key, None)


_ATOMS = (str, int, float, bool, bytes, type(None))
_MUTABLE = (dict, list, set, bytearray, collections.deque, types.SimpleNamespace)


def _immutable(value) -> bool:
    if type(value) in _ATOMS:
        return True
    return type(value) is tuple and all(_immutable(item) for item in value)


def _copier(value) -> Callable[[], object]:
    """A function returning a new deep copy of a mutable global at each call (prepared once, at load)."""
    if type(value) in (dict, list) and not value:
        return type(value)
    try:
        return functools.partial(values.thaw, values.freeze(value))
    except ValueError:  # not plain data (a deque, a namespace): copied the slow way
        return functools.partial(_copy_value, value)


def _copy_value(value):
    if type(value) is types.SimpleNamespace:
        return types.SimpleNamespace(**{k: _copy_value(v) for k, v in vars(value).items()})
    try:
        return values.copy(value)
    except ValueError:
        pass
    try:
        return copy.deepcopy(value)
    except Exception:  # an object that cannot be copied (a module facade inside a tuple): share it
        return value


MAX_FRAMES = 20


def _script_frames(exc, script: Script) -> list[tuple[int, str, str]]:
    """(line, function, source line) of the script's own frames, innermost last, at most MAX_FRAMES."""
    lines = script.source.splitlines()
    frames = [(lineno, frame.f_code.co_name) for frame, lineno in traceback.walk_tb(exc.__traceback__)
              if frame.f_code.co_filename == script.filename]
    return [(n, name, lines[n - 1].strip() if 0 < n <= len(lines) else "") for n, name in frames[-MAX_FRAMES:]]


def _format_frames(frames: list, filename: str) -> str:
    return "".join(f'  File "{filename}", line {n}, in {name}\n    {text}\n' for n, name, text in frames)


def _describe(exc: BaseException) -> str:
    args = exc.args
    if len(args) == 1 and isinstance(args[0], str):
        text = args[0]
    else:
        text = ", ".join(_repr.repr(a) for a in args)
    text = text.replace("\n", " ")
    return text[:300] + ("..." if len(text) > 300 else "")


def _short(filename: str) -> str:
    return os.path.basename(filename)


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000.0, 3)
