"""The load-time check of what a script keeps at module level: only kinds the runner rebuilds exactly per call.

Every call starts from a copy of the module state as it was after load (docs/sandbox.md, "Module-level
values and long C calls"). Plain data and the script's own functions can be copied exactly; an iterator,
a generator, a hash object or a method of some host object cannot (a deep copy would share it, or its
frame would keep load-time values). Such values are refused at load, with the path to the first one,
instead of being shared between calls.
"""
from __future__ import annotations

import collections
import datetime
import logging
import time
import types
import urllib.parse
import uuid

import re2

from backworks.sandbox import env, limits
from backworks.sandbox.safe_builtins import SAFE_BUILTINS

logger = logging.getLogger(__name__)

MAX_MODULE_ITEMS = 200_000   # items in all module-level containers: bounds the load-time walk and copies
MAX_COPIED_ITEMS = 50_000    # items in what is copied before each call (mutable module state)
MAX_MODULE_DEPTH = 200       # nesting of module-level values (copies recurse)
_TICK_EVERY = 1024           # the walk checks the load's deadline this often (it runs under the budget)

HINT = "build it inside the hook (module-level values must be plain data, the script's own functions or " \
       "imported names)"

_ATOMS = frozenset({str, bytes, int, float, bool, complex, type(None), range, slice, type(Ellipsis)})
_PLAIN = frozenset({list, dict, tuple, set, frozenset})
# Containers the runner's copier rebuilds exactly, item by item.
_REBUILT = frozenset({collections.deque, collections.OrderedDict, collections.Counter, collections.defaultdict,
                      types.SimpleNamespace, bytearray})
# Values no script can change (no method mutates them, attributes are read-only to scripts).
_IMMUTABLE = (datetime.date, datetime.time, datetime.timedelta, datetime.tzinfo, uuid.UUID, time.struct_time,
              re2._Regexp)
# Named tuples the facades return (urlsplit(...), date.isocalendar()): immutable when their items are atoms.
RESULT_TUPLES = frozenset({urllib.parse.SplitResult, urllib.parse.ParseResult, urllib.parse.DefragResult,
                           urllib.parse.SplitResultBytes, urllib.parse.ParseResultBytes,
                           urllib.parse.DefragResultBytes, type(datetime.date(2000, 1, 1).isocalendar())})


class ModuleStateError(Exception):
    """A module-level value is of a kind that cannot be rebuilt per call, or the state is too big to copy."""


def _shared_ids() -> frozenset:
    """Ids of what the host hands every script (builtins, facades and their names): shared, immutable."""
    found = {id(value) for value in SAFE_BUILTINS.values()}
    for facade in env.FACADES.values():
        found.add(id(facade))
        found.update(id(value) for value in object.__getattribute__(facade, "_names").values())
    return frozenset(found)


_SHARED = _shared_ids()


def check(filename: str, named: dict) -> dict:
    """Refuse module-level values that are not rebuildable; return {name: items inside it} for copy caps."""
    walker = _Walker(filename)
    return {name: walker.walk(name, value) for name, value in named.items()}


class _Walker:
    def __init__(self, filename: str):
        self.filename = filename
        self.seen: set = set()
        self.items = 0

    def walk(self, name: str, root) -> int:
        """Walk one global; return how many container items it holds (shared parts counted once)."""
        start = self.items
        stack = [(root, name, 0)]
        while stack:
            value, path, depth = stack.pop()
            kind = type(value)
            if kind in _ATOMS:
                continue
            key = id(value)
            if key in self.seen:
                continue
            self.seen.add(key)
            if depth > MAX_MODULE_DEPTH:
                raise ModuleStateError(f"{path} is nested more than {MAX_MODULE_DEPTH} levels deep: its module "
                                       "state cannot be copied for each call")
            stack.extend((item, sub, depth + 1) for item, sub in self.inside(value, kind, path))
            if self.items >= MAX_MODULE_ITEMS:
                raise ModuleStateError(f"module-level values hold more than {MAX_MODULE_ITEMS} items: its module "
                                       "state cannot be copied for each call (keep big tables in a tuple of "
                                       "strings, or build them inside the hook)")
            if len(self.seen) % _TICK_EVERY == 0:
                limits.tick()
        return self.items - start

    def inside(self, value, kind, path: str) -> list:
        """(item, path) pairs inside `value`, or raise for a value that cannot be rebuilt."""
        if kind in _PLAIN or kind in _REBUILT:
            if kind is types.SimpleNamespace:
                pairs = [(v, f"{path}.{k}") for k, v in vars(value).items()]
                self.items += len(pairs)
                return pairs
            elif kind is bytearray:
                pairs = []
            elif isinstance(value, dict):
                pairs = [(k, f"{path} (a key)") for k in value] + [(v, f"{path}[{k!r:.40}]") for k, v in value.items()
                                                                   if type(v) not in _ATOMS]
                if kind is collections.defaultdict:
                    pairs.append((value.default_factory, f"{path}.default_factory"))
            else:
                pairs = [(item, f"{path}[{i}]") for i, item in enumerate(value) if type(item) not in _ATOMS]
            self.items += len(value)
            return pairs
        if kind is types.FunctionType and value.__code__.co_filename == self.filename:
            pairs = [(v, f"{path} (default value)") for v in value.__defaults__ or ()]
            pairs += [(v, f"{path} (default value)") for v in (value.__kwdefaults__ or {}).values()]
            for cell_name, cell in zip(value.__code__.co_freevars, value.__closure__ or (), strict=True):
                try:
                    pairs.append((cell.cell_contents, f"{path} (variable '{cell_name}' it closes over)"))
                except ValueError:  # an empty cell
                    pass
            return pairs
        if kind is types.BuiltinFunctionType and type(value.__self__) in _PLAIN | _REBUILT:
            return [(value.__self__, f"{path} (the object it is a method of)")]  # `add = seen.append`
        if id(value) in _SHARED or isinstance(value, (env.Facade,) + _IMMUTABLE):
            return []
        if kind in RESULT_TUPLES and all(type(item) in _ATOMS for item in value):
            return []
        raise ModuleStateError(f"module-level value {path} is {_kind(value)}, which cannot be rebuilt for each "
                               f"call: {HINT}")


def _kind(value) -> str:
    kind = type(value)
    if kind is types.FunctionType:
        return "a function of another script"
    if kind is types.BuiltinFunctionType and value.__self__ is not None:
        return f"a method of a {type(value.__self__).__name__} object"
    if kind is types.GeneratorType:
        return "a generator"
    name = kind.__name__
    return f"an {name} object" if name[:1] in "aeiou" else f"a {name} object"
