"""What a script's globals hold: safe builtins, read-only module facades, `log`, `state`, and the guards."""
from __future__ import annotations

import _strptime  # noqa: F401  (datetime.strptime imports it lazily through __import__)
import base64
import collections
import datetime
import hashlib
import hmac
import json
import logging
import math
import random
import string
import time
import types
import urllib.parse
import uuid

import re2

from backworks.sandbox import guards, rules, uncached, wrapped

logger = logging.getLogger(__name__)


class Facade:
    """A read-only view of an allowed module: only the listed names, no writes."""

    __slots__ = ("_name", "_names")

    def __init__(self, name: str, names: dict):
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_names", dict(names))

    def __getattr__(self, attr: str):
        try:
            return self._names[attr]
        except KeyError:
            raise AttributeError(f"module '{self._name}' has no attribute '{attr}' in plugin scripts") from None

    def __setattr__(self, attr, value):
        raise TypeError(f"module '{self._name}' is read-only")

    __delattr__ = __setattr__

    def __repr__(self) -> str:
        return f"<module '{self._name}'>"


def _pick(module, names: str) -> dict:
    return {name: getattr(module, name) for name in names.split()}


def _plain_function(method, name: str):
    """A plain function calling `method` (a bound method would hand scripts the object it is bound to)."""
    def function(*args, **kwargs):
        return method(*args, **kwargs)
    function.__name__ = function.__qualname__ = name
    function.__doc__ = method.__doc__
    return function


def _iterable_type(real: type):
    """collections' classes as stand-ins whose calls feed big or endless iterables through the timer."""
    def factory(*args, **kwargs):
        if args and not isinstance(args[0], dict) and real is not collections.defaultdict:
            args = (wrapped.interruptible(args[0]),) + args[1:]
        elif real is collections.defaultdict and len(args) > 1 and not isinstance(args[1], dict):
            args = (args[0], wrapped.interruptible(args[1])) + args[2:]
        return real(*args, **kwargs)
    return wrapped.type_proxy(real, factory)


_COLLECTIONS = {cls.__name__: _iterable_type(cls) for cls in (collections.OrderedDict, collections.defaultdict,
                                                                collections.Counter, collections.deque)}


def _json_loads(text, *, object_hook=None, parse_float=None, parse_int=None):
    return json.loads(text, object_hook=object_hook, parse_float=parse_float, parse_int=parse_int)


def _factorial(n):
    if isinstance(n, int) and n > 5000:
        raise guards.LimitError("factorial argument over 5000 exceeds the sandbox limit")
    return math.factorial(n)


def _capped(function, limit: int):
    def capped(*args):
        if any(isinstance(a, int) and a > limit for a in args):
            raise guards.LimitError(f"{function.__name__} argument over {limit} exceeds the sandbox limit")
        return function(*args)
    capped.__name__ = function.__name__
    return capped


def _prod(iterable, *, start=1):
    result = start
    for item in iterable:
        result = guards.guarded_mul(result, item)
    return result


_MATH = {name: getattr(math, name) for name in dir(math) if not name.startswith("_")}
_MATH.update(factorial=_factorial, prod=_prod, comb=_capped(math.comb, 10_000), perm=_capped(math.perm, 10_000),
             fsum=wrapped.fsum, gcd=wrapped.big_ints(math.gcd), lcm=wrapped.big_ints(math.lcm),
             isqrt=wrapped.big_ints(math.isqrt))
_HASHLIB = _pick(hashlib, "md5 sha1 sha224 sha256 sha384 sha512 sha3_256 sha3_512 blake2b blake2s new")
# The host's own sets would be shared with every script (`.add()` is a method call no write guard sees).
_HASHLIB.update(algorithms_available=frozenset(hashlib.algorithms_available),
                algorithms_guaranteed=frozenset(hashlib.algorithms_guaranteed), pbkdf2_hmac=wrapped.pbkdf2_hmac)
_RE = _pick(re2, "escape error")
_RE["compile"] = uncached.regex_compile
_RE.update({name: wrapped.regex_function(name, at)
            for name, at in (("search", 1), ("match", 1), ("fullmatch", 1), ("finditer", 1), ("findall", 1),
                             ("split", 1), ("sub", 2), ("subn", 2))})
# urlsplit (called by urlparse, urljoin, urldefrag) and quote's quoter factory are lru_caches: scripts get
# copies of the functions that call the plain functions under them (uncached.without_caches).
_PARSE = _pick(types.SimpleNamespace(**uncached.without_caches(urllib.parse)),
               "quote quote_plus unquote unquote_plus urlencode urlparse urlunparse urlunsplit urljoin parse_qs "
               "parse_qsl urldefrag urlsplit")
_PARSE_FACADE = Facade("urllib.parse", _PARSE)

FACADES = {
    "base64": Facade("base64", _pick(base64, "b64encode b64decode urlsafe_b64encode urlsafe_b64decode "
                                             "b32encode b32decode b16encode b16decode standard_b64encode "
                                             "standard_b64decode")),
    "collections": Facade("collections", _COLLECTIONS),
    "datetime": Facade("datetime", _pick(datetime, "date datetime time timedelta timezone MINYEAR MAXYEAR")),
    "hashlib": Facade("hashlib", _HASHLIB),
    "hmac": Facade("hmac", _pick(hmac, "new compare_digest digest")),
    "json": Facade("json", {"dumps": wrapped.json_dumps, "loads": _json_loads,
                            "JSONDecodeError": json.JSONDecodeError}),
    "math": Facade("math", _MATH),
    "re": Facade("re", _RE),  # google-re2: linear time; flags are written inline, e.g. "(?i)"
    "string": Facade("string", _pick(string, "ascii_letters ascii_lowercase ascii_uppercase digits hexdigits "
                                             "octdigits punctuation printable whitespace capwords")),
    "time": Facade("time", dict(_pick(time, "time time_ns monotonic monotonic_ns perf_counter perf_counter_ns gmtime "
                                       "localtime mktime strftime struct_time timezone"),
                           strptime=uncached.strptime(time.strptime))),
    "types": Facade("types", {"SimpleNamespace": types.SimpleNamespace}),
    "urllib": Facade("urllib", {"parse": _PARSE_FACADE}),
    "urllib.parse": _PARSE_FACADE,
    "uuid": Facade("uuid", _pick(uuid, "uuid4 uuid5 uuid3 UUID NAMESPACE_DNS NAMESPACE_URL NAMESPACE_OID "
                                       "NAMESPACE_X500")),
}
EXPORTS = {name: frozenset(object.__getattribute__(facade, "_names")) for name, facade in FACADES.items()}


_SYSTEM_RANDOM = random.SystemRandom()
# Backed by os.urandom: there is no seed to set or state to poison, so one facade serves every call. Scripts
# get plain functions, not the shared generator's bound methods; gauss() would keep its second value in the
# generator (`gauss_next`) for the next caller: normalvariate() keeps nothing.
RANDOM = Facade("random", {name: _plain_function(getattr(_SYSTEM_RANDOM, name), name) for name in
                           ("random", "randint", "randrange", "choice", "choices", "shuffle", "sample", "uniform")})
object.__getattribute__(RANDOM, "_names").update(
    gauss=_plain_function(_SYSTEM_RANDOM.normalvariate, "gauss"),
    getrandbits=wrapped.getrandbits(_SYSTEM_RANDOM))


def guarded_import(name, globals=None, locals=None, fromlist=(), level=0):
    """The __import__ scripts use: allowed modules only, as facades."""
    if name == "_strptime" and not level:
        return _strptime  # imported lazily by datetime/time.strptime from C; scripts cannot name it
    if level or name not in rules.ALLOWED_MODULES:
        raise ImportError(f"import of '{name}' is not allowed")
    if name == "urllib.parse" and not fromlist:
        return FACADES["urllib"]
    return FACADES[name]


FACADES["random"] = RANDOM
EXPORTS["random"] = frozenset(object.__getattribute__(RANDOM, "_names"))
