"""Runs scripts in this process under budgets: load, one hook call, or a whole request phase."""
from __future__ import annotations

import collections
import datetime
import dis
import functools
import gc
import logging
import marshal
import os
import time
import traceback
import types
import uuid
from dataclasses import dataclass, field
from time import monotonic_ns, perf_counter
from typing import Callable, NamedTuple

import re2
from RestrictedPython.Guards import guarded_iter_unpack_sequence, guarded_unpack_sequence

from backworks import backstop
from backworks.backstop import mark
from backworks.sandbox import env, guards, limits, module_state, rules, values
from backworks.sandbox.limits import Budget, Clock, Timeout
from backworks.sandbox.logs import ScriptLog
from backworks.sandbox.policy import Script
from backworks.sandbox.safe_builtins import SAFE_BUILTINS
from backworks.sandbox.state_facade import StateFacade

logger = logging.getLogger(__name__)

# The call never ran: its sandbox process was killed by another script's call and is being replaced. Not
# the script's failure: it never counts against its breaker.
SKIPPED = "skipped"


@dataclass(slots=True)
class Outcome:
    """What one script call produced: a value, or the kind of failure and the script's own traceback."""

    kind: str            # "ok" | "error" | "timeout" | "memory" | "invalid" | "crash" | SKIPPED
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


@dataclass(slots=True)
class PhaseResult:
    """The request/response after a phase, and what each step did."""

    request: dict
    response: dict | None
    short_circuit: bool = False
    outcomes: list = field(default_factory=list)
    failed_closed: tuple | None = None
    changed: set | None = None  # before_request: names of the request fields hooks may have changed (None: unknown)


class Loaded:
    """A script whose module body (and on_load) ran: the globals every call starts from.

    Calls reuse one globals dict (`scope`), reset to `base` after each call: the script's functions are
    bound to it once, at load, so a call creates no function objects and no reference cycles for the
    garbage collector. What a call could change (lists, dicts, sets and the tuples holding them, functions
    whose closure cells or default values hold such things...) is found at load and re-created from a
    pristine copy before each call; deeply immutable values are shared by every call.
    """

    def __init__(self, script: Script, snapshot: dict, state):
        self.script = script
        self.name = _short(script.filename)
        self.snapshot = snapshot
        self.state = state
        # A function takes its builtins from its globals' __builtins__ when it is created: the scope must
        # hold the safe ones by then, or the script would get the host's.
        self.scope: dict = dict(snapshot)
        names = [k for k in snapshot if not k.startswith("__") and k not in _HOST_NAMES]
        sizes = module_state.check(script.filename, {name: snapshot[name] for name in names})
        # Every script function reachable from the globals (in a dict, a closure, a default...) is rebound to
        # the reused scope once, here: one left bound to the load-time globals would reach their values.
        loading = _Cloner(script.filename, self.scope, frozenset())
        self.base = dict(snapshot)
        self.base.update(loading.clone_all({name: snapshot[name] for name in names}))
        for value in self.base.values():
            if isinstance(value, types.FunctionType) and value.__globals__ is self.scope \
                    and value.__builtins__ is not snapshot["__builtins__"]:
                raise RuntimeError(f"{self.name}: {value.__name__} would not run with the sandbox's builtins")
        scan = _Scan(script.filename, _rebound_cells(script.code))
        for name in names:
            scan.visit(self.base[name])
        self.shared, self.inert, plain = scan.solve()
        # A global no code of the script names is out of its reach (scripts reach no globals dict): however
        # mutable, it needs no copy (the `config` of a script that never reads it, say).
        named = _names(script.code)
        self.mutable = [name for name in names if name in named and not _atom(self.base[name])
                        and id(self.base[name]) not in self.shared]
        copied = sum(sizes[name] for name in self.mutable)
        if copied > module_state.MAX_COPIED_ITEMS:
            raise module_state.ModuleStateError(
                f"its module state cannot be copied for each call: the mutable module-level values hold {copied} "
                f"items (at most {module_state.MAX_COPIED_ITEMS}; use tuples and frozensets for tables, or build "
                "them inside the hook)")
        self.pristine = {name: self.base[name] for name in self.mutable}
        self.copies: list = []
        self.frozen = None
        self.cloner = None
        if all(id(self.base[name]) in plain for name in self.mutable):
            if not scan.aliased:  # plain trees: marshal format 2 (no shared parts or cycles) thaws fastest
                self.copies = [(name, type(value) if type(value) in (dict, list) and not value
                                else functools.partial(marshal.loads, marshal.dumps(value, 2)))
                               for name, value in self.pristine.items()]
            else:  # one marshal round trip copies it all and keeps what the globals share
                self.frozen = marshal.dumps(tuple(self.pristine.values()), 4)
        else:
            self.cloner = _Cloner(script.filename, self.scope, self.shared)
        self.scope.update(self.base)
        # Only `global` statements in the script's functions can rebind its globals during a call (scripts
        # reach no globals dict): without any, reset() has nothing to undo.
        self.rebinds = _global_stores(script.code)
        self.plain = not (self.copies or self.frozen is not None or self.cloner is not None)  # nothing to copy
        self.idle_log: ScriptLog | None = None
        self.busy = False

    def scope_for(self, log: ScriptLog) -> dict:
        """The globals for one call: the reused scope, with this call's log (and copies, see prepare)."""
        if self.plain:
            self.scope["log"] = log
            return self.scope
        return self.prepare(log)

    def prepare(self, log: ScriptLog) -> dict:
        """Ready the reused globals for one call: this call's log and fresh copies of mutable values."""
        scope = self.scope
        scope["log"] = log
        if self.copies:
            for name, copier in self.copies:
                scope[name] = copier()
        elif self.frozen is not None:
            scope.update(zip(self.mutable, marshal.loads(self.frozen), strict=True))
        elif self.cloner is not None:
            scope.update(self.cloner.clone_all(self.pristine))
        return scope

    def fresh(self, log: ScriptLog) -> dict:
        """Globals of their own (a call inside a call of the same script): every function rebound to them."""
        scope = dict(self.snapshot)
        scope["log"] = log
        names = {k: v for k, v in self.base.items() if not k.startswith("__") and k not in _HOST_NAMES}
        scope.update(_Cloner(self.script.filename, scope, self.inert).clone_all(names))
        return scope

    def after_call(self) -> None:
        """Undo what a call did to the globals; the call's copies of mutable values are let go at once."""
        if self.rebinds or len(self.scope) != len(self.base):
            self.reset()
        elif not self.plain:
            self.scope.update(self.pristine)

    def reset(self) -> None:
        """Undo what a call did to the globals: rebound names get their loaded values, new names go."""
        scope, base = self.scope, self.base
        scope.update(base)
        if len(scope) != len(base):
            for name in [name for name in scope if name not in base]:
                del scope[name]


_MISSING = object()
_PLAIN = (dict, list, tuple, set, frozenset)
_CONTAINER_TYPES = (list, dict, set, bytearray, collections.deque, types.SimpleNamespace)


def _code_objects(code: types.CodeType) -> list:
    """The script's module code and every function (or lambda, comprehension) code object nested in it."""
    found, todo = [], [code]
    while todo:
        code = todo.pop()
        found.append(code)
        todo.extend(const for const in code.co_consts if isinstance(const, types.CodeType))
    return found


def _rebound_cells(code: types.CodeType) -> frozenset:
    """Names of closure variables that some function of the script rebinds (`nonlocal n; n += 1`)."""
    return frozenset(op.argval for inner in _code_objects(code) if inner.co_freevars
                     for op in dis.get_instructions(inner)
                     if op.opname in ("STORE_DEREF", "DELETE_DEREF") and op.argval in inner.co_freevars)


def _names(code: types.CodeType) -> frozenset:
    """Every name the script's code (module body and functions) uses for a global or an attribute."""
    return frozenset(name for inner in _code_objects(code) for name in inner.co_names)


def _global_stores(code: types.CodeType) -> frozenset:
    """Names that some function of the script assigns or deletes with a `global` statement."""
    return frozenset(op.argval for inner in _code_objects(code) if inner is not code
                     for op in dis.get_instructions(inner) if op.opname in ("STORE_GLOBAL", "DELETE_GLOBAL"))


def _atom(value) -> bool:
    return type(value) in _ATOMS


def _shareable(value) -> bool:
    """Values nothing in a script can change: shared by every call without a look inside."""
    kind = type(value)
    if kind in _ATOMS or kind in _IMMUTABLE_TYPES or isinstance(value, (type, env.Facade)):
        return True
    if isinstance(value, _IMMUTABLE_CLASSES) or kind is StateFacade or kind is ScriptLog:
        return True
    if kind in module_state.RESULT_TUPLES:  # urlsplit(...) results: load refused any but atoms inside
        return True
    if kind is types.MethodType:  # a host object's method (scripts define no classes): random.choice
        return True
    if kind is types.BuiltinFunctionType:  # a builtin, or a method bound to an object: `append = seen.append`
        owner = value.__self__
        return owner is None or isinstance(owner, (types.ModuleType, type, env.Facade)) \
            or not isinstance(owner, _CONTAINER_TYPES + (types.FunctionType,))
    return False


class _Scan:
    """Which objects reachable from a script's globals are deeply immutable, found once at load.

    A script function counts as immutable when its default values and closure cells hold only immutable
    values (cells cannot be rebound: `nonlocal` is refused); tuples and frozensets when their items are.
    """

    def __init__(self, filename: str, rebound: frozenset = frozenset()):
        self.filename = filename
        self.rebound = rebound        # closure variables some script function rebinds (`nonlocal`)
        self.nodes: dict[int, object] = {}
        self.edges: dict[int, list] = {}
        self.mutable: set = set()
        self.functions: set = set()   # script functions (and what holds them): rebound per scope
        self.unplain: set = set()     # not a plain-data tree marshal copies faithfully
        self.aliased = False          # some object is reached twice: copies must keep it shared

    def children(self, value) -> list | None:
        """The objects inside `value`, or None when `value` itself can change."""
        kind = type(value)
        if kind is tuple or kind is frozenset:
            return list(value)
        if kind is types.FunctionType:
            if value.__code__.co_filename != self.filename:
                return []
            self.functions.add(id(value))
            if self.rebound and not self.rebound.isdisjoint(value.__code__.co_freevars):
                self.mutable.add(id(value))  # a cell a call may rebind: fresh cells for every call
            inside = list(value.__defaults__ or ()) + list((value.__kwdefaults__ or {}).values())
            for cell in value.__closure__ or ():
                try:
                    inside.append(cell.cell_contents)
                except ValueError:  # an empty cell
                    pass
            return inside
        if kind is types.MethodType:
            return [value.__func__, value.__self__]
        return None

    def visit(self, root) -> None:
        stack = [root]
        tick = limits.tick
        while stack:
            tick()
            value = stack.pop()
            key = id(value)
            if _atom(value):
                continue
            if key in self.nodes:
                self.aliased = True
                continue
            self.nodes[key] = value
            if _shareable(value):
                self.edges[key] = []
                self.unplain.add(key)
                continue
            inside = self.children(value)
            if type(value) not in _PLAIN:
                self.unplain.add(key)
            if inside is None:
                self.mutable.add(key)
                if type(value) in (dict, list, set):
                    inside = list(value.items()) if type(value) is dict else list(value)
                    inside = [part for item in inside for part in (item if type(value) is dict else (item,))]
                else:
                    inside = []
            self.edges[key] = [item for item in inside if not _atom(item)]
            stack.extend(self.edges[key])

    def solve(self) -> tuple[frozenset, frozenset, frozenset]:
        """(ids of immutable objects, of those also holding no script function, of plain-data trees)."""
        parents: dict[int, list] = {}
        for key, inside in self.edges.items():
            for item in inside:
                parents.setdefault(id(item), []).append(key)

        def spread(marked: set) -> set:
            marked, todo = set(marked), list(marked)
            while todo:
                for parent in parents.get(todo.pop(), ()):
                    if parent not in marked:
                        marked.add(parent)
                        todo.append(parent)
            return marked

        mutable = spread(self.mutable)
        holding = spread(self.functions)
        unplain = spread(self.unplain)
        shared = frozenset(key for key in self.nodes if key not in mutable)
        return shared, frozenset(key for key in shared if key not in holding), \
            frozenset(key for key in self.nodes if key not in unplain)


class _Cloner:
    """Deep copies of a script's values for one globals dict: script functions in them are bound to it."""

    def __init__(self, filename: str, scope: dict, shared: frozenset):
        self.filename = filename
        self.scope = scope
        self.shared = shared

    def clone_all(self, named: dict) -> dict:
        """Copies of every value in `named`, made together: what they share stays shared."""
        memo: dict = {}
        return {name: self.clone(value, memo) for name, value in named.items()}

    def clone(self, value, memo: dict):
        kind = type(value)
        if kind in _ATOMS:
            return value
        key = id(value)
        if key in self.shared:
            return value
        found = memo.get(key, _MISSING)
        if found is not _MISSING:
            return found
        clone = self.clone
        if Clock.expired:  # copies for a call are made under its deadline
            raise Timeout()
        if kind is list:
            new = memo[key] = []
            new.extend([clone(item, memo) for item in value])
        elif kind is dict:
            new = memo[key] = {}
            for k, v in value.items():
                new[clone(k, memo)] = clone(v, memo)
        elif kind is tuple:
            items = tuple([clone(item, memo) for item in value])
            new = memo.get(key, _MISSING)  # a cycle through a list inside may have made it already
            if new is _MISSING:
                new = memo[key] = value if all(a is b for a, b in zip(items, value, strict=True)) else items
        elif kind is set or kind is frozenset:
            items = [clone(item, memo) for item in value]
            new = memo.get(key, _MISSING)
            if new is _MISSING:
                new = memo[key] = kind(items)
        elif kind is types.FunctionType:
            if value.__code__.co_filename != self.filename:
                return value
            cells, fill = None, []
            if value.__closure__:  # closures made by one call share cells: their copies share new ones
                cells = []
                for old in value.__closure__:
                    cell = memo.get(id(old), _MISSING)
                    if cell is _MISSING:
                        cell = memo[id(old)] = types.CellType()
                        fill.append((old, cell))
                    cells.append(cell)
                cells = tuple(cells)
            new = types.FunctionType(value.__code__, self.scope, value.__name__, None, cells)
            memo[key] = new  # before its contents: a function may hold itself (recursion in a closure)
            new.__qualname__ = value.__qualname__
            if value.__defaults__ is not None:
                new.__defaults__ = clone(value.__defaults__, memo)
            if value.__kwdefaults__ is not None:
                new.__kwdefaults__ = clone(value.__kwdefaults__, memo)
            for old, cell in fill:
                try:
                    contents = old.cell_contents
                except ValueError:
                    continue
                cell.cell_contents = clone(contents, memo)
        elif kind is types.MethodType:
            new = memo[key] = types.MethodType(clone(value.__func__, memo), clone(value.__self__, memo))
        elif kind is bytearray:
            new = memo[key] = bytearray(value)
        elif kind is types.SimpleNamespace:
            new = memo[key] = types.SimpleNamespace()
            for k, v in vars(value).items():
                setattr(new, k, clone(v, memo))
        elif kind is collections.deque:
            new = memo[key] = collections.deque(maxlen=value.maxlen)
            new.extend([clone(item, memo) for item in value])
        elif kind is collections.defaultdict:
            new = memo[key] = collections.defaultdict(clone(value.default_factory, memo))
            for k, v in value.items():
                new[clone(k, memo)] = clone(v, memo)
        elif kind is collections.OrderedDict or kind is collections.Counter:
            new = memo[key] = kind()
            for k, v in value.items():
                new[clone(k, memo)] = clone(v, memo)
        elif kind is types.BuiltinFunctionType and not _shareable(value):  # `add = seen.add`
            new = memo[key] = getattr(clone(value.__self__, memo), value.__name__)
        elif _shareable(value):
            return value
        else:  # module_state.check refused every other kind at load: never shared, never deep-copied
            raise TypeError(f"a {kind.__name__} object cannot be copied for a call")
        return new


def _failure_kind(exc: BaseException) -> str:
    """How a call that raised `exc` failed: timeout, memory or error."""
    if Clock.expired or isinstance(exc, Timeout):
        return "timeout"
    return "memory" if isinstance(exc, MemoryError) else "error"


def _uncopyable(loaded: Loaded, exc: BaseException) -> Outcome:
    kind = "memory" if isinstance(exc, MemoryError) else "error"
    return Outcome(kind, message=f"{loaded.name}: its module state could not be copied for this call "
                                 f"({type(exc).__name__})")


def _apply(function, *args, **kwargs):
    return function(*args, **kwargs)


_HOST_NAMES = frozenset({"_apply_", "_bw_slice", "_getattr_", "_getitem_", "_getiter_", "_write_", "_inplacevar_",
                         "_bw_inplace",
                         "_iter_unpack_sequence_", "_unpack_sequence_", "_bw_mul", "_bw_pow", "_bw_lshift",
                         "_bw_mod", "_bw_format", "_bw_tick", "_bw_expired", "_print_", "log", "state"})


class Runner:
    """Loads scripts and runs their hooks in the calling process (inline, or inside a sandbox child)."""

    def __init__(self, state_settings: dict | None = None, memory: bool = True):
        self.state_settings = state_settings or {}
        self.memory = memory
        self.loaded: dict[str, Loaded] = {}
        self.garbage: list[BaseException] = []
        self.defer_cleanup = False
        self.extras: dict[str, dict] = {}  # key -> host facades its script gets as globals (runtime `db`)
        self.watched = False  # mark inline calls in this worker's backstop slot (an inline sandbox's runner)

    def make_state(self, key: str):
        """Build the `state` facade of the script loaded under `key` (lazily imports backworks.state)."""
        from backworks.state import make_state  # start-up cost: state (redis) only for scripts that use it

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
            "_bw_expired": False,
            "config": values.copy(config), "log": log, "state": state,
        }

    def load(self, key: str, script: Script, config: dict, budget: Budget) -> Outcome:
        """Run the module body, then on_load(config), within budget; keep the result as `key`."""
        log = ScriptLog(_short(script.filename))
        state = self.make_state(key)
        scope = self.globals_for(script, config, state, log)
        scope.update(self.extras.get(key, {}))

        made: list = []

        def body():
            exec(script.code, scope)
            hook = scope.get("on_load") if "on_load" in script.hooks else None
            if hook is not None:
                hook(values.copy(config))
            # Still under the load's budget (host code checks it): the module state is checked and readied.
            try:
                made.append(Loaded(script, scope, state))
            except module_state.ModuleStateError as exc:
                made.append(f"{_short(script.filename)}: {exc}")
            except (RecursionError, ValueError, MemoryError) as exc:  # nested too deep to copy per call
                made.append(f"{_short(script.filename)}: its module state cannot be copied for each call "
                            f"({type(exc).__name__}: {_describe(exc)})")
            return None

        outcome = self.run(script, body, (), budget, log)
        if outcome.ok:
            if isinstance(made[0], str):
                return Outcome("error", message=made[0], duration_ms=outcome.duration_ms, logs=outcome.logs)
            self.loaded[key] = made[0]
        return outcome

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
            try:
                scope = loaded.fresh(log)
            except (RecursionError, MemoryError) as exc:
                return _uncopyable(loaded, exc)
            return self.run(loaded.script, scope[hook], args, budget, log)
        loaded.busy = True
        failed = []

        def prepared(*args):  # the copies are made under the call's deadline (run arms it first)
            try:
                scope = loaded.scope_for(log)
            except (RecursionError, MemoryError) as exc:
                failed.append(exc)
                return None
            return scope[hook](*args)

        try:
            outcome = self.run(loaded.script, prepared, args, budget, log)
            return _uncopyable(loaded, failed[0]) if failed else outcome
        finally:
            loaded.busy = False
            loaded.after_call()

    def call_step(self, key: str, hook: str, args: tuple, budget: Budget, loaded: Loaded | None) -> Outcome:
        """call_with for one step of a phase (its timer already ticks): the common case in one frame.

        An inline sandbox's runner (`watched`) marks each call in this worker's backstop slot, for the
        master's watchdog. A script called from within itself goes through call_with.
        """
        slot = backstop.slot if self.watched else None
        if loaded is None or loaded.busy or not Clock.session:
            target = loaded or self.loaded.get(key)
            if slot is None or target is None:
                return self.call_with(key, hook, args, budget, loaded)
            slot.enter(target.script.digest, target.script.filename, budget.timeout_ms)
            try:
                return self.call_with(key, hook, args, budget, loaded)
            finally:
                slot.leave()
        log, loaded.idle_log = loaded.idle_log or ScriptLog(loaded.name), None
        if limits.FLAGGED:  # a call timed out before: its loop flags go down
            limits.clear_flags()
        loaded.busy = True
        started = perf_counter()
        try:
            try:
                if slot is not None:  # slot.enter(), inlined: the hot path
                    if slot.current != loaded.script.digest:
                        slot.identify(loaded.script.digest, loaded.script.filename)
                    deadline = monotonic_ns() + int(budget.timeout_ms * 1_000_000) + slot.margin_ns
                    mark(slot.buffer, slot.offset, deadline)
                Clock.expired = False
                Clock.deadline = started + budget.timeout_ms / 1000.0
                Clock.active = True
                if loaded.plain:  # nothing to copy (scope_for inlined: this is the hot path)
                    scope = loaded.scope
                    scope["log"] = log
                else:  # the copies are charged to the call's budget, under its deadline
                    try:
                        scope = loaded.prepare(log)
                    except (RecursionError, MemoryError) as exc:
                        Clock.active = False
                        return _uncopyable(loaded, exc)
                value = scope[hook](*args)
            finally:
                Clock.active = False  # first: from here on the alarm handler never raises
                if slot is not None:
                    mark(slot.buffer, slot.offset, 0)  # slot.leave()
                loaded.busy = False
                if loaded.rebinds or not loaded.plain or len(loaded.scope) != len(loaded.base):
                    loaded.after_call()  # (a plain script that bound nothing new has nothing to undo)
            if Clock.expired:
                raise Timeout()
        except (Timeout, Exception) as exc:
            return self.failure(_failure_kind(exc), loaded.script, exc, started, log, budget)
        lines = log._lines
        if not lines:  # a log the call did not write to serves the next call (scripts cannot keep it)
            loaded.idle_log, lines = log, []
        return Outcome("ok", value, "", "", (perf_counter() - started) * 1000.0, lines)

    def run(self, script: Script, function: Callable, args: tuple, budget: Budget, log: ScriptLog) -> Outcome:
        """Call `function(*args)` under the budget and classify what happened."""
        started = perf_counter()
        if limits.FLAGGED:
            limits.clear_flags()
        try:
            try:
                if Clock.session:  # a phase's timer already ticks: only this step's deadline is new (see arm)
                    Clock.expired = False
                    Clock.deadline = started + budget.timeout_ms / 1000.0
                    Clock.active = True
                else:
                    limits.arm(budget, self.memory, started)
                value = function(*args)
            finally:
                Clock.active = False  # first: from here on the alarm handler never raises
                if not Clock.session:  # within a phase session only the step's deadline was set
                    limits.disarm()
            if Clock.expired:
                raise Timeout()
        except (Timeout, Exception) as exc:
            return self.failure(_failure_kind(exc), script, exc, started, log, budget)
        return Outcome("ok", value, "", "", (perf_counter() - started) * 1000.0, log._lines)

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
_IMMUTABLE_TYPES = frozenset({complex, range, type(Ellipsis), types.ModuleType})
_IMMUTABLE_CLASSES = (datetime.date, datetime.time, datetime.timedelta, datetime.tzinfo, uuid.UUID,
                      time.struct_time, re2._Regexp)


MAX_FRAMES = 20


def _script_frames(exc, script: Script) -> list[tuple[int, str, str]]:
    """(line, function, source line) of the script's own frames, innermost last, at most MAX_FRAMES."""
    lines = script.source.splitlines()
    frames = [(lineno, frame.f_code.co_name) for frame, lineno in traceback.walk_tb(exc.__traceback__)
              if frame.f_code.co_filename == script.filename]
    return [(n, name, _cut(lines[n - 1].strip()) if 0 < n <= len(lines) else "") for n, name in frames[-MAX_FRAMES:]]


def _cut(line: str) -> str:
    """A source line as a traceback shows it: at most MAX_SOURCE_LINE characters (one line may be 256 KB)."""
    return line if len(line) <= rules.MAX_SOURCE_LINE else line[:rules.MAX_SOURCE_LINE] + "..."


def _format_frames(frames: list, filename: str) -> str:
    return "".join(f'  File "{filename}", line {n}, in {name}\n    {text}\n' for n, name, text in frames)


def _describe(exc: BaseException) -> str:
    """The exception's message, bounded: its arguments are never repr'd whole (they may be script-built)."""
    args = exc.args
    if type(args) is not tuple:
        text = f"<{type(args).__name__}>"
    elif len(args) == 1 and type(args[0]) is str:
        text = args[0][:MAX_DESCRIPTION + 1]
    else:
        text = ", ".join(values.bounded_repr(a) for a in args[:8]) + (", ..." if len(args) > 8 else "")
    text = text.replace("\n", " ")
    return text[:MAX_DESCRIPTION] + ("..." if len(text) > MAX_DESCRIPTION else "")


MAX_DESCRIPTION = 300


def _short(filename: str) -> str:
    return os.path.basename(filename)


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000.0, 3)
