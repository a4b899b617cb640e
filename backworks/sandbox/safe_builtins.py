"""The builtins scripts see: everyday functions, with caps where a C loop could run past the timer."""
from __future__ import annotations

import builtins
import logging

from backworks.sandbox import guards, ranges, rules, wrapped
from backworks.sandbox.env import guarded_import
from backworks.sandbox.rewrites import HOST_NAMES

logger = logging.getLogger(__name__)

interruptible = wrapped.interruptible  # small containers as they are, anything else item by item

def _wrap_iterable(function):
    def wrapped(iterable=(), *args, **kwargs):
        return function(interruptible(iterable), *args, **kwargs)
    wrapped.__name__ = function.__name__
    wrapped.__doc__ = function.__doc__
    return wrapped


def _wrap_all_args(function):
    def wrapped(*iterables, **kwargs):
        return function(*(interruptible(it) for it in iterables), **kwargs)
    wrapped.__name__ = function.__name__
    return wrapped


def safe_sorted(iterable, *, key=None, reverse=False):
    """sorted() of at most MAX_SORT items."""
    items = list(interruptible(iterable))
    if len(items) > rules.MAX_SORT:
        raise guards.LimitError(f"sorting {len(items)} items exceeds the sandbox limit of {rules.MAX_SORT}")
    items.sort(key=key, reverse=reverse)
    return items


def _min_max(function):
    def wrapped(*args, **kwargs):
        if len(args) == 1:
            args = (interruptible(args[0]),)
        return function(*args, **kwargs)
    wrapped.__name__ = function.__name__
    return wrapped


def safe_getattr(obj, name, *default):
    """getattr() through the attribute guard."""
    return guards.guarded_getattr(obj, name, *default)


def safe_hasattr(obj, name):
    """hasattr() through the attribute guard."""
    try:
        guards.guarded_getattr(obj, name)
    except AttributeError:
        return False
    return True


def safe_format(value, spec=""):
    """format() with a checked spec."""
    guards.check_spec(value, spec)
    return format(value, spec)


_BUFFERS = (str, bytes, bytearray)


def safe_bytes(source=b"", *args):
    """bytes() that refuses huge zero-filled buffers and reads other iterables item by item when big."""
    if isinstance(source, int):
        guards._check_length(source)
    elif not isinstance(source, _BUFFERS):
        source = interruptible(source)
    return bytes(source, *args)


def safe_bytearray(source=b"", *args):
    """bytearray() that refuses huge zero-filled buffers and reads other iterables item by item when big."""
    if isinstance(source, int):
        guards._check_length(source)
    elif not isinstance(source, _BUFFERS):
        source = interruptible(source)
    return bytearray(source, *args)


def safe_str(*args, **kwargs):
    """str() (decoding bytes included)."""
    return str(*args, **kwargs)


def safe_dict(*args, **kwargs):
    """dict() from a mapping or an iterable of pairs."""
    if args and not isinstance(args[0], dict):
        args = (interruptible(args[0]),)
    return dict(*args, **kwargs)


def _map(function, *iterables):
    return map(function, *(interruptible(it) for it in iterables))


def _filter(function, iterable):
    return filter(function, interruptible(iterable))


type_proxy = wrapped.type_proxy


_PLAIN = "abs bool callable chr complex divmod float hex len oct ord repr round slice ascii bin".split()
_EXCEPTIONS = {name: getattr(builtins, name) for name in rules.EXCEPTION_NAMES}


def build() -> dict:
    """Return the builtins dict every script gets (the same object each time: it holds no state)."""
    names = {name: getattr(builtins, name) for name in _PLAIN}
    names.update(_EXCEPTIONS)
    names.update(
        range=ranges.safe_range, sorted=safe_sorted, min=_min_max(min), max=_min_max(max),
        sum=_wrap_iterable(sum), any=_wrap_iterable(any), all=_wrap_iterable(all),
        iter=wrapped.safe_iter, next=next, reversed=reversed, hash=wrapped.safe_hash,
        isinstance=wrapped.safe_isinstance, issubclass=wrapped.safe_issubclass,
        getattr=safe_getattr, hasattr=safe_hasattr, format=safe_format, pow=guards.guarded_pow,
    )
    for real, factory in ((list, _wrap_iterable(list)), (tuple, _wrap_iterable(tuple)),
                          (set, _wrap_iterable(set)), (frozenset, _wrap_iterable(frozenset)),
                          (enumerate, _wrap_iterable(enumerate)), (zip, _wrap_all_args(zip)),
                          (map, _map), (filter, _filter), (dict, safe_dict), (str, str),
                          (bytes, safe_bytes), (bytearray, safe_bytearray), (int, wrapped.safe_int)):
        names[real.__name__] = type_proxy(real, factory)
    names.update(HOST_NAMES)  # exception classes of allowed modules, for rewritten `except` clauses

    names["__import__"] = guarded_import
    return names


SAFE_BUILTINS = build()
