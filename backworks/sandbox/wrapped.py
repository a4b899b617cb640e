"""Python-level stand-ins for C calls that could outlive a budget: each one checks a cap or yields to the timer.

A C function runs to its end without the timer getting a say. The wrappers here either refuse work over a
named cap before starting it, or cut it into slices with a checkpoint (limits.tick) between them, or feed
the C function a Python-level iterator (the timer interrupts Python code between items). callables.py lists
every callable scripts can reach and which of these it goes through.
"""
from __future__ import annotations

import collections
import datetime
import hashlib
import json
import logging
import math

from backworks.sandbox import guards, limits, rules, uncached

logger = logging.getLogger(__name__)

SMALL = 10_000          # containers up to this size are handed to C as they are (well under a millisecond)
SLICE = 64 * 1024       # characters per slice of a sliced text operation
MAX_REGEX_TEXT = 1_000_000   # characters a regex with capture groups scans (re2 spent 300 ms on 5 M)
MAX_PBKDF2_BLOCKS = 100_000  # pbkdf2 iterations x output blocks
MAX_EXPANDED = 1_000_000     # items a C walk of a script-built value visits, shared parts counted each time
_SIZED = (list, tuple, dict, set, frozenset, str, bytes, range)


def interruptible(iterable):
    """Return `iterable` itself when small, else a Python-level iterator the timer can interrupt."""
    if type(iterable) in _SIZED and len(iterable) <= SMALL:
        return iterable
    return _step(iterable)


def _step(iterable):
    for item in iterable:
        yield item


def _call_source(function, sentinel):
    while True:
        value = function()
        if value == sentinel:
            return
        yield value


def safe_iter(obj, *sentinel):
    """iter(): the two-argument form (an endless source for C consumers) becomes a Python generator."""
    if sentinel:
        if len(sentinel) > 1:
            raise TypeError(f"iter expected at most 2 arguments, got {1 + len(sentinel)}")
        if not callable(obj):
            raise TypeError("iter(v, w): v must be callable")
        return _call_source(obj, sentinel[0])
    return iter(obj)


def elements(counter):
    """Counter.elements() as a Python generator (the C chain repeats a huge count without a checkpoint)."""
    def elements():
        for item, count in counter.items():
            for _ in range(count if type(count) is int else 0):
                yield item
    return elements


def most_common(counter):
    """Counter.most_common() sorts every item when n is None: at most MAX_SORT of them."""
    def most_common(n=None):
        if n is None and len(counter) > rules.MAX_SORT:
            raise guards.LimitError(f"sorting {len(counter)} items exceeds the sandbox limit of {rules.MAX_SORT}")
        return counter.most_common(n)
    return most_common


def fromkeys(kind):
    """dict.fromkeys and its subclasses' (defaultdict, OrderedDict): the keys come through the timer."""
    def fromkeys(iterable, value=None):
        return kind.fromkeys(interruptible(iterable), value)
    return fromkeys


def one_iterable(method):
    """list.extend, deque.extend, bytearray.extend...: a big or endless argument is fed item by item."""
    def wrapped(iterable=(), *args, **kwargs):
        return method(iterable if isinstance(iterable, dict) else interruptible(iterable), *args, **kwargs)
    return wrapped


def each_iterable(method, chain: bool):
    """set.update(*its), set.union(*its)...: one argument at a time, each fed through the timer."""
    def wrapped(*iterables):
        if len(iterables) == 1 or not iterables:
            return method(*[interruptible(it) for it in iterables])
        result = None
        for iterable in iterables:
            result = (method if result is None or not chain else getattr(result, method.__name__))(
                interruptible(iterable))
        return result
    return wrapped


def dict_update(method):
    """dict.update(other, **kw): a mapping is copied in C (bounded by its size), pairs come through the timer."""
    def update(*args, **kwargs):
        if args and not isinstance(args[0], dict) and not hasattr(args[0], "keys"):
            args = (interruptible(args[0]),) + args[1:]
        return method(*args, **kwargs)
    return update


def translate(text):
    """str.translate: a table lookup per character in C; long texts go slice by slice with checkpoints."""
    method = text.translate

    def translate(table, *args, **kwargs):
        if len(text) <= SLICE:
            return method(table, *args, **kwargs)
        parts = []
        for start in range(0, len(text), SLICE):
            limits.tick()
            parts.append(text[start:start + SLICE].translate(table, *args, **kwargs))
        result = text[:0].join(parts)
        return bytearray(result) if type(text) is bytearray else result
    return translate


def from_bytes(kind):
    """int.from_bytes: at most MAX_INT_BITS bits (huge ints make gcd, // and % quadratic in C)."""
    def from_bytes(data, byteorder="big", *, signed=False):
        if not isinstance(data, (bytes, bytearray)):
            data = bytes(interruptible(data))  # an iterator has no length to check before
        if len(data) * 8 > rules.MAX_INT_BITS:
            raise guards.LimitError(f"an integer of more than {rules.MAX_INT_BITS} bits exceeds the sandbox limit")
        return kind.from_bytes(data, byteorder, signed=signed)
    return from_bytes


def safe_int(*args, **kwargs):
    """int(): text of at most MAX_INT_BITS // 3 characters (bases 2, 4, 8, 16, 32 have no digit limit)."""
    if args and isinstance(args[0], (str, bytes, bytearray)) and len(args[0]) > rules.MAX_INT_BITS // 3:
        raise guards.LimitError(f"int() of {len(args[0])} characters exceeds the sandbox limit of "
                                f"{rules.MAX_INT_BITS // 3}")
    return int(*args, **kwargs)


def big_ints(function, bits: int = rules.MAX_INT_BITS):
    """math.gcd/lcm/isqrt...: integer arguments of at most `bits` bits (gcd of 400 k bits took 235 ms)."""
    def wrapped(*args):
        for arg in args:
            if isinstance(arg, int) and arg.bit_length() > bits:
                raise guards.LimitError(f"{function.__name__} of an integer over {bits} bits exceeds the sandbox "
                                        "limit")
        return function(*args)
    wrapped.__name__ = function.__name__
    return wrapped


def fsum(iterable):
    """math.fsum over a Python-level iterator when big."""
    return math.fsum(interruptible(iterable))


def getrandbits(source):
    """random.getrandbits(k) for k up to MAX_INT_BITS."""
    def getrandbits(k):
        if isinstance(k, int) and k > rules.MAX_INT_BITS:
            raise guards.LimitError(f"getrandbits over {rules.MAX_INT_BITS} bits exceeds the sandbox limit")
        return source.getrandbits(k)
    return getrandbits


def pbkdf2_hmac(name, password, salt, iterations, dklen=None):
    """hashlib.pbkdf2_hmac: iterations x output blocks at most MAX_PBKDF2_BLOCKS."""
    size = hashlib.new(name).digest_size if isinstance(name, str) else 64
    blocks = 1 if dklen is None else -(-int(dklen) // max(size, 1))
    if not isinstance(iterations, int) or iterations * max(blocks, 1) > MAX_PBKDF2_BLOCKS:
        raise guards.LimitError(f"pbkdf2_hmac over {MAX_PBKDF2_BLOCKS} iterations x output blocks exceeds the "
                                "sandbox limit")
    return hashlib.pbkdf2_hmac(name, password, salt, iterations, dklen)


def expanded_size(value, cap: int = MAX_EXPANDED, leaf=None) -> int:
    """How many items a recursive C walk (hash, ==, json.dumps) visits in `value`, or LimitError past `cap`.

    Shared parts count once per path to them (as the walk visits them), computed in O(distinct objects):
    a 64-level tuple `t = (t, t)` is 2**64 items for hash() but 64 objects here. With `leaf`, each item
    that is not a container (and each dict key) also adds leaf(item): a size in bytes, say.
    """
    sizes: dict = {}
    stack = [(value, False)]
    while stack:
        item, done = stack.pop()
        kind = type(item)
        if kind not in _CONTAINERS:
            continue
        key = id(item)
        if done:
            children = item.values() if kind is dict else item
            total = 1 + len(item) + sum(sizes.get(id(child), 0) for child in children
                                        if type(child) in _CONTAINERS)
            if kind is dict:
                total += len(item)
            if leaf is not None:
                total += sum(leaf(child) for child in children if type(child) not in _CONTAINERS)
                if kind is dict:
                    total += sum(leaf(key) for key in item)
            if total > cap:
                raise guards.LimitError(f"a value of more than {cap} items (counting shared parts each time they "
                                        "appear) exceeds the sandbox limit")
            sizes[key] = total
            continue
        if key in sizes:
            continue
        sizes[key] = 0  # in progress: a cycle adds nothing (json.dumps refuses cycles itself)
        if len(sizes) % 1024 == 0:
            limits.tick()
        stack.append((item, True))
        stack.extend((child, False) for child in (item.values() if kind is dict else item)
                     if type(child) in _CONTAINERS)
    return sizes.get(id(value), 0)


_CONTAINERS = frozenset({list, tuple, dict, set, frozenset, collections.deque, collections.OrderedDict,
                         collections.Counter, collections.defaultdict})


def _nested(value) -> bool:
    """Tell whether a container holds containers (only then can shared parts multiply a C walk)."""
    return any(type(item) in _CONTAINERS for item in value)


def safe_hash(value):
    """hash(): tuples and frozensets of containers are checked for shared parts first (hashing walks every path)."""
    if type(value) in _CONTAINERS and _nested(value):
        expanded_size(value)
    return hash(value)


def safe_isinstance(obj, classinfo):
    """isinstance(): a nested tuple of classes is walked along every path: checked first."""
    if type(classinfo) is tuple and _nested(classinfo):
        expanded_size(classinfo, SMALL)
    return isinstance(obj, classinfo)


def safe_issubclass(cls, classinfo):
    """issubclass(), checked as isinstance()."""
    if type(classinfo) is tuple and _nested(classinfo):
        expanded_size(classinfo, SMALL)
    return issubclass(cls, classinfo)


def json_dumps(obj, *, indent=None, sort_keys=False, separators=None, default=None, ensure_ascii=True):
    """json.dumps of at most MAX_EXPANDED items (shared parts counted each time), indent at most MAX_JSON_INDENT."""
    if indent is not None and (not isinstance(indent, int) or indent > rules.MAX_JSON_INDENT):
        raise ValueError(f"indent must be an integer up to {rules.MAX_JSON_INDENT}")
    expanded_size(obj)
    return json.dumps(obj, indent=indent, sort_keys=sort_keys, separators=separators, default=default,
                      ensure_ascii=ensure_ascii)


class _TypeProxy(type):
    """Metaclass of the names `list`, `dict`, ...: isinstance works, calls go through a capped factory."""

    def __instancecheck__(cls, obj):
        return isinstance(obj, cls._real)

    def __subclasscheck__(cls, other):
        return issubclass(other, cls._real)

    def __call__(cls, *args, **kwargs):
        return cls._factory(*args, **kwargs)

    def __getattr__(cls, name):
        return guards.guarded_getattr(cls._real, name)

    def __repr__(cls):
        return f"<class '{cls._real.__name__}'>"


def type_proxy(real: type, factory) -> type:
    """Return a stand-in for the builtin type `real` whose calls go through `factory`."""
    return _TypeProxy(real.__name__, (), {"_real": real, "_factory": staticmethod(factory), "__slots__": ()})


# re2's own sub/subn expand a template through its process-wide cache of templates: scripts get these.
_REGEX_OWN = {"sub": uncached.regex_sub, "subn": uncached.regex_subn}


def regex_method(name: str, text_at: int):
    """Pattern methods: a pattern with capture groups scans at most MAX_REGEX_TEXT characters."""
    own = _REGEX_OWN.get(name)

    def factory(regexp):
        method = getattr(regexp, name) if own is None else None

        def wrapped(*args, **kwargs):
            text = args[text_at] if len(args) > text_at else kwargs.get("text")
            if isinstance(text, (str, bytes)) and len(text) > MAX_REGEX_TEXT and regexp.groups:
                raise guards.LimitError(f"a regular expression with groups over {len(text)} characters exceeds "
                                        f"the sandbox limit of {MAX_REGEX_TEXT}")
            if own is not None:
                return own(regexp, *args, **kwargs)
            return method(*args, **kwargs)
        wrapped.__name__ = name
        return wrapped
    return factory


def regex_function(name: str, text_at: int):
    """re.search, re.sub, ...: the pattern compiled without re2's cache, then its checked method."""
    method = regex_method(name, text_at - 1)

    def function(pattern, *args, **kwargs):
        return method(uncached.regex_compile(pattern))(*args, **kwargs)
    function.__name__ = function.__qualname__ = name
    return function


def _register() -> None:
    import re2

    special = guards.special
    dicts = (dict, collections.OrderedDict, collections.defaultdict, collections.Counter)
    special("fromkeys", dicts, lambda obj: fromkeys(type(obj)))
    special("fromkeys", dicts, fromkeys, classes=True)
    special("update", dicts, lambda obj: dict_update(obj.update))
    special("elements", (collections.Counter,), elements)
    special("most_common", (collections.Counter,), most_common)
    special("extend", (list, bytearray, collections.deque), lambda obj: one_iterable(obj.extend))
    special("extendleft", (collections.deque,), lambda obj: one_iterable(obj.extendleft))
    for name in ("update", "intersection_update", "difference_update"):
        special(name, (set,), lambda obj, name=name: each_iterable(getattr(obj, name), False))
    for name in ("symmetric_difference_update", "issubset", "issuperset", "isdisjoint", "symmetric_difference"):
        special(name, (set, frozenset), lambda obj, name=name: one_iterable(getattr(obj, name)))
    for name in ("union", "intersection", "difference"):
        special(name, (set, frozenset), lambda obj, name=name: each_iterable(getattr(obj, name), True))
    special("translate", (str, bytes, bytearray), translate)
    special("from_bytes", (int, bool), lambda obj: from_bytes(int))
    special("from_bytes", (int, bool), from_bytes, classes=True)
    for name, at in (("search", 0), ("match", 0), ("fullmatch", 0), ("finditer", 0), ("findall", 0),
                     ("split", 0), ("sub", 1), ("subn", 1)):
        special(name, (re2._Regexp,), regex_method(name, at))


_register()


def _refused(obj):
    raise AttributeError(f"attribute of {type(obj).__name__} objects is not available in plugin scripts")


def _match_range(regexp):
    def possiblematchrange(maxlen):
        if not isinstance(maxlen, int) or maxlen > SMALL:
            raise guards.LimitError(f"possiblematchrange over {SMALL} characters exceeds the sandbox limit")
        return regexp.possiblematchrange(maxlen)
    return possiblematchrange


def _match_expand(match):
    def expand(template):
        return uncached.regex_expand(match, template)
    return expand


MAX_XOF_BYTES = 1_000_000  # output of one SHAKE digest(length): computed in C before it returns


def _xof_digest(name: str):
    def factory(hasher):
        method = getattr(hasher, name)

        def digest(length):
            if isinstance(length, int) and length > MAX_XOF_BYTES:
                raise guards.LimitError(f"a digest of {length} bytes exceeds the sandbox limit of {MAX_XOF_BYTES}")
            return method(length)
        return digest
    return factory


def _register_regexp() -> None:
    import re2

    guards.special("options", (re2._Regexp,), _refused)  # RE2's options object is shared by the cached pattern
    guards.special("possiblematchrange", (re2._Regexp,), _match_range)
    guards.special("expand", (re2._Match,), _match_expand)
    strptime = uncached.strptime(datetime.datetime.strptime)
    guards.special("strptime", (datetime.datetime,), lambda obj: strptime)
    guards.special("strptime", (datetime.datetime,), lambda cls: strptime, classes=True)
    xof = type(hashlib.new("shake_128"))
    for name in ("digest", "hexdigest"):
        guards.special(name, (xof, type(hashlib.shake_256())), _xof_digest(name))


_register_regexp()
