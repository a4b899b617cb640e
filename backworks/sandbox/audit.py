"""The reachability audit: every object a script can reach, walked from its builtins and facades.

Used by the test suite (tests/sandbox/test_reachability.py): no shared object a script reaches may be
mutable, every callable it reaches must be listed in callables.py as bounded or wrapped, and none may feed
a process-wide cache (an lru_cache, or a cache known_feeders() names) with what a script passes it.
"""
from __future__ import annotations

import collections
import datetime
import dis
import enum
import functools
import hashlib
import hmac
import json
import logging
import time
import types
import uuid

import re2

from backworks.sandbox import env, guards, wrapped
from backworks.sandbox.logs import ScriptLog
from backworks.sandbox.safe_builtins import SAFE_BUILTINS
from backworks.sandbox.state_facade import StateFacade
from backworks.state import MemoryState

logger = logging.getLogger(__name__)


def instance_samples() -> dict:
    """One object of each kind scripts make during a call (literals, constructors, results of calls)."""
    pattern = re2.compile("(a)(?P<b>b)?")
    d = {"a": 1}
    samples = {
        "str": "s", "bytes": b"b", "bytearray": bytearray(b"b"), "int": 1, "bool": True, "float": 1.0,
        "complex": 1j, "list": [], "tuple": (), "dict": d, "set": set(), "frozenset": frozenset(),
        "range": range(1), "slice": slice(1), "NoneType": None,
        "dict_keys": d.keys(), "dict_values": d.values(), "dict_items": d.items(),
        "deque": collections.deque(), "Counter": collections.Counter(), "OrderedDict": collections.OrderedDict(),
        "defaultdict": collections.defaultdict(), "SimpleNamespace": types.SimpleNamespace(),
        "date": datetime.date(2000, 1, 1), "datetime": datetime.datetime(2000, 1, 1),
        "time": datetime.time(), "timedelta": datetime.timedelta(1), "timezone": datetime.timezone.utc,
        "struct_time": time.gmtime(0), "UUID": uuid.UUID(int=1),
        "hash": hashlib.sha256(), "blake2b": hashlib.blake2b(), "blake2s": hashlib.blake2s(),
        "sha3": hashlib.sha3_256(), "HMAC": hmac.new(b"k", b"m", "sha256"),
        "Regexp": pattern, "Match": pattern.search("ab"),
        "generator": wrapped.safe_iter(int, 1), "exception": ValueError("x"),
        "JSONDecodeError": _json_error(),
        "SplitResult": env.FACADES["urllib.parse"].urlsplit("http://h/p"),
        "ParseResult": env.FACADES["urllib.parse"].urlparse("http://h/p"),
        "DefragResult": env.FACADES["urllib.parse"].urldefrag("http://h/p#f"),
        "SplitResultBytes": env.FACADES["urllib.parse"].urlsplit(b"http://h/p"),
        "ParseResultBytes": env.FACADES["urllib.parse"].urlparse(b"http://h/p"),
        "DefragResultBytes": env.FACADES["urllib.parse"].urldefrag(b"http://h/p#f"),
        "shake": hashlib.new("shake_128"), "IsoCalendarDate": datetime.date(2000, 1, 1).isocalendar(),
        "odict_keys": collections.OrderedDict().keys(), "odict_items": collections.OrderedDict().items(),
    }
    for kind in (iter([]), iter(()), iter(""), iter(b""), iter({}), iter(set()), iter(d.values()), iter(d.items()),
                 reversed([]), map(str, []), filter(None, []), zip(), enumerate([]), iter(range(1)),
                 iter(collections.deque())):
        samples[type(kind).__name__] = kind
    return samples


def _json_error():
    try:
        json.loads("{")
    except json.JSONDecodeError as exc:
        return exc


def roots() -> list:
    """(path, object, shared) for what every script's globals hold, and for what a call makes."""
    found = [(f"builtins.{name}", value, True) for name, value in SAFE_BUILTINS.items()]
    for module, facade in env.FACADES.items():
        found.append((module, facade, True))
    found += [(f"<{name} made by a call>", value, False) for name, value in instance_samples().items()]
    # `log` is made for each call; `state` for each script (its store is the one channel between calls that
    # the contract allows, so it is not "shared" here).
    found += [("log", ScriptLog("audit.py"), False), ("state", StateFacade(MemoryState("audit", 10, 100)), False)]
    return found


def attributes(obj) -> list:
    """(name, value) for every attribute guarded_getattr lets a script read on `obj`."""
    if isinstance(obj, env.Facade):
        names = sorted(object.__getattribute__(obj, "_names"))
    else:
        try:
            names = dir(obj)
        except Exception:
            return []
    found = []
    for name in names:
        if name.startswith("_"):
            continue
        try:
            found.append((name, guards.guarded_getattr(obj, name)))
        except Exception:  # refused, or a property that fails on this sample
            continue
    return found


def walk():
    """Yield (path, label, object, shared) for every reachable object, each object and instance type once.

    `label` names a callable in callables.py: `module.name`, `builtins.name` or `Type.attribute`.
    """
    seen: set = set()
    kept: list = []  # every object walked stays alive: a fresh bound method's id must not be reused
    types_seen: set = set()
    stack = [(path, path.split(" ")[0].strip("<"), obj, shared) for path, obj, shared in reversed(roots())]
    while stack:
        path, label, obj, shared = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        kept.append(obj)
        yield path, label, obj, shared
        kind = type(obj)
        if isinstance(obj, env.Facade):
            prefix = object.__getattribute__(obj, "_name")
        elif isinstance(obj, type):
            prefix = obj.__name__
        else:
            if callable(obj):
                continue  # functions and methods: nothing public to walk on them
            if shared and isinstance(obj, (tuple, frozenset, list, set, dict, types.MappingProxyType)):
                types_seen.discard((kind, shared))  # every shared container's items are walked
            if (kind, shared) in types_seen:
                continue  # recursively by type: one instance of a kind shows what every one offers
            types_seen.add((kind, shared))
            prefix = kind.__name__
        for name, value in attributes(obj):
            stack.append((f"{path}.{name}", f"{prefix}.{name}", value, shared))
        if shared and isinstance(obj, (tuple, frozenset, list, set, dict, types.MappingProxyType)):
            items = list(obj.items()) if isinstance(obj, (dict, types.MappingProxyType)) else list(enumerate(obj))
            stack.extend((f"{path}[{key!r}]", f"{prefix}[]", value, True) for key, value in items)


def canonical(label: str, obj) -> str:
    """A stable allow-list name: methods are named after the class that defines them (`BaseException.add_note`)."""
    if label.startswith("builtins.") and isinstance(obj, type):
        return f"builtins.{obj.__name__}"  # IOError is OSError
    owner = getattr(obj, "__objclass__", None)
    if isinstance(owner, type):
        return f"{owner.__name__}.{obj.__name__}"
    if isinstance(obj, (types.BuiltinMethodType, types.MethodType)):
        bound = obj.__self__
        if bound is not None and not isinstance(bound, types.ModuleType):
            name = obj.__func__.__name__ if isinstance(obj, types.MethodType) else obj.__name__
            kind = bound if isinstance(bound, type) else type(bound)
            if not isinstance(bound, type):  # named after the class that defines it: bool.bit_length is int's
                kind = next((k for k in kind.__mro__ if name in vars(k)), kind)
            return f"{kind.__name__}.{name}"
    return label


def reachable_callables() -> dict:
    """{allow-list name: (path, callable)} for every callable a script can reach."""
    found = {}
    for path, label, obj, _shared in walk():
        if callable(obj):
            found.setdefault(canonical(label, obj), (path, obj))
    return found


_IMMUTABLE = (str, bytes, int, float, complex, bool, type(None), range, slice, type(Ellipsis), tuple, frozenset,
              types.MappingProxyType, datetime.date, datetime.time, datetime.timedelta, datetime.tzinfo, uuid.UUID,
              time.struct_time, type, types.FunctionType, env.Facade, property, types.MethodDescriptorType,
              types.WrapperDescriptorType, types.ClassMethodDescriptorType, types.GetSetDescriptorType,
              types.MemberDescriptorType, types.MethodWrapperType, enum.Enum)


def shared_mutable() -> list:
    """Paths of objects reached from builtins and facades (shared by every call) that a script could change."""
    found = []
    for path, _label, obj, shared in walk():
        if not shared or isinstance(obj, _IMMUTABLE):
            continue
        if isinstance(obj, (types.BuiltinFunctionType, types.MethodType)) and (
                obj.__self__ is None or isinstance(obj.__self__, (types.ModuleType,) + _IMMUTABLE)):
            continue  # a builtin function, or a method of an immutable object or class (int.from_bytes)
        found.append(f"{path}: {type(obj).__name__}")
    return found


def known_feeders() -> list:
    """(callable, cache) for library code that feeds a process-wide cache in a way the walk cannot see.

    C functions (the walk cannot read them) may be reached only through a sandbox wrapper that bounds
    their input; Python functions listed here feed a cache through an attribute of an object whose type
    the walk cannot know (`match.expand(template)` in re2's Pattern.subn).
    """
    import re2

    return [(datetime.datetime.strptime, "_strptime._regex_cache and re._cache (one regex per format)"),
            (time.strptime, "_strptime._regex_cache and re._cache (one regex per format)"),
            (vars(re2._Regexp)["subn"], "re2._Match._split (its str template, through match.expand)")]


def cache_feeders() -> list:
    """Paths of reachable callables that feed a process-wide cache with their arguments, and the cache."""
    known = known_feeders()
    memo: dict = {}
    found = []
    for path, _label, obj, _shared in walk():
        if not callable(obj):
            continue
        cache = next((cache for feeder, cache in known if _same(obj, feeder)), None) or _feeds(obj, known, memo)
        if cache:
            found.append(f"{path}: feeds {cache}")
    return found


def _same(obj, known) -> bool:
    try:
        return obj is known or (isinstance(obj, types.BuiltinMethodType) and obj == known)
    except Exception:
        return False


def _feeds(obj, known: list, memo: dict) -> str | None:
    """The cache a Python callable feeds, walking the names its code uses (globals, its class, closures)."""
    if isinstance(obj, (classmethod, staticmethod, types.MethodType)):
        obj = obj.__func__
    if isinstance(obj, functools._lru_cache_wrapper):
        return f"{obj.__module__}.{obj.__qualname__} (an lru_cache)"
    if not isinstance(obj, types.FunctionType):
        return None
    key = (obj.__code__, id(obj.__globals__), tuple(id(cell) for cell in obj.__closure__ or ()))
    if key not in memo:
        memo[key] = None  # a recursive call finds nothing more on the way back here
        memo[key] = next((cache for feeder, cache in known if obj is feeder), None) or _walk_code(obj, known, memo)
    return memo[key]


def _walk_code(obj: types.FunctionType, known: list, memo: dict) -> str | None:
    global_names, attribute_names = _names(obj.__code__)
    values = [obj.__globals__[name] for name in global_names if name in obj.__globals__]
    spaces = [vars(value) for value in values if isinstance(value, (type, types.ModuleType))]  # `Class.name`
    owner = obj.__globals__.get(obj.__qualname__.split(".")[0])
    if isinstance(owner, type) and "." in obj.__qualname__:
        spaces.append(vars(owner))  # `self.name` in a method: its class's name
    values += [space[name] for space in spaces for name in attribute_names if name in space]
    values += [cell.cell_contents for cell in obj.__closure__ or () if _filled(cell)]
    values += [*(obj.__defaults__ or ()), *(obj.__kwdefaults__ or {}).values()]  # urlencode(quote_via=quote_plus)
    for value in values:
        cache = _feeds(value, known, memo)
        if cache:
            return cache
    return None


def _names(code: types.CodeType) -> tuple[set, set]:
    """(global names, attribute names) the code and the functions nested in it use."""
    global_names, attribute_names = set(), set()
    for instruction in dis.get_instructions(code):
        if instruction.opname in ("LOAD_GLOBAL", "LOAD_NAME"):
            global_names.add(instruction.argval)
        elif instruction.opname in ("LOAD_ATTR", "LOAD_METHOD"):
            attribute_names.add(instruction.argval)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            nested = _names(const)
            global_names |= nested[0]
            attribute_names |= nested[1]
    return global_names, attribute_names


def _filled(cell) -> bool:
    try:
        _ = cell.cell_contents
    except ValueError:  # an empty cell
        return False
    return True
