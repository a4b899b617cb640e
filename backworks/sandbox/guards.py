"""Run-time guards the compiled scripts call: attribute access, writes, and size caps on C-level work."""
from __future__ import annotations

import _string
import collections
import logging
import operator
import re
import string
import types

from RestrictedPython.transformer import INSPECT_ATTRIBUTES

from backworks.sandbox import rules
from backworks.sandbox.ranges import LongRange
from backworks.sandbox.rules import LimitError

logger = logging.getLogger(__name__)

_SPEC = re.compile(r"(?:.?[<>=^])?[+\- ]?z?#?0?(\d*)[,_]?(?:\.(\d+))?[a-zA-Z%]?\Z", re.S)
_SEQUENCES = (str, bytes, list, tuple, bytearray, collections.deque)
_NUMBERS = (int, float, complex)


def _too_big(what: str) -> LimitError:
    return LimitError(f"{what} exceeds the sandbox limit")


def _check_bits(bits: int) -> None:
    if bits > rules.MAX_INT_BITS:
        raise LimitError(f"this expression is too large (more than {rules.MAX_INT_BITS} bits)")


def _check_length(length: int) -> None:
    if length > rules.MAX_SEQUENCE:
        raise LimitError(f"result of {length} items exceeds the sandbox limit of {rules.MAX_SEQUENCE}")


def _is_int(value) -> bool:
    return isinstance(value, int)


def guarded_mul(left, right):
    """Multiply, refusing huge repetitions and integer products."""
    if _is_int(left) and _is_int(right):
        if left.bit_length() + right.bit_length() > 64:
            _check_bits(left.bit_length() + right.bit_length())
    elif isinstance(left, _SEQUENCES) and _is_int(right):
        _check_length(len(left) * max(right, 0))
    elif isinstance(right, _SEQUENCES) and _is_int(left):
        _check_length(len(right) * max(left, 0))
    return left * right


def guarded_pow(base, exponent, modulo=None):
    """Raise to a power, refusing integer results over the bit cap."""
    if modulo is not None:
        for value in (base, exponent, modulo):
            if _is_int(value):
                _check_bits(value.bit_length() * 20)
        return pow(base, exponent, modulo)
    if _is_int(base) and _is_int(exponent) and exponent > 0 and abs(base) > 1:
        _check_bits(base.bit_length() * exponent)
    return base ** exponent


def guarded_lshift(left, right):
    """Shift left, refusing results over the bit cap."""
    if _is_int(left) and _is_int(right) and left and right > 0:
        _check_bits(left.bit_length() + right)
    return left << right


def guarded_mod(left, right):
    """Apply %, refusing huge widths in %-formatting."""
    if isinstance(left, (str, bytes, bytearray)):
        return _percent_format(left, right)
    return left % right


def _percent_format(template, args):
    text = template.decode("latin-1") if isinstance(template, (bytes, bytearray)) else template
    for group in _percent_numbers(text):
        if group == "*":
            raise _too_big("'*' width in %-formatting")
        if group and int(group) > rules.MAX_FORMAT_WIDTH:
            raise _too_big(f"format width {group}")
    return template % args


def _percent_numbers(text: str):
    """Yield each width and precision of a %-format, parsed as CPython does (nested parentheses in keys)."""
    at = text.find("%")
    while at >= 0:
        at += 1
        if text.startswith("(", at):  # a mapping key: CPython counts parentheses, `%((k))9s` is one key
            depth = 0
            while at < len(text):
                depth += {"(": 1, ")": -1}.get(text[at], 0)
                at += 1
                if depth == 0:
                    break
        match = _PERCENT_TAIL.match(text, at)
        yield from match.groups()
        at = text.find("%", max(match.end(), at + (text.startswith("%", at))))


_PERCENT_TAIL = re.compile(r"[-#0 +]*(\*|\d+)?(?:\.(\*|\d*))?")


def check_spec(value, spec: str) -> None:
    """Refuse format specs whose width or precision exceeds the cap."""
    if not spec or not isinstance(value, _NUMBERS + (str,)):
        return  # other types (datetime) interpret specs as strftime patterns
    match = _SPEC.match(spec)
    if match is None:
        return  # an invalid spec fails in format() itself
    for group in match.groups():
        if group and int(group) > rules.MAX_FORMAT_WIDTH:
            raise _too_big(f"format width {group}")


def guarded_format(value, spec: str = "", conversion: int = -1):
    """Format one f-string field: conversion, then a checked spec."""
    if conversion == ord("r"):
        value = repr(value)
    elif conversion == ord("s"):
        value = str(value)
    elif conversion == ord("a"):
        value = ascii(value)
    check_spec(value, spec)
    return format(value, spec)


class _SafeFormatter(string.Formatter):
    """str.format without attribute walks and with checked widths."""

    def get_field(self, field_name, args, kwargs):
        first, rest = _string.formatter_field_name_split(field_name)
        obj = self.get_value(first, args, kwargs)
        for is_attr, key in rest:
            obj = guarded_getattr(obj, key) if is_attr else guarded_getitem(obj, key)
        return obj, first

    def format_field(self, value, format_spec):
        check_spec(value, format_spec)
        return format(value, format_spec)


_FORMATTER = _SafeFormatter()


def _pad_method(text, name):
    method = getattr(text, name)

    def padded(width, *args):
        if _is_int(width):
            _check_length(width)
        return method(width, *args)
    return padded


def _replace_method(text):
    def replace(old, new, count=-1):
        hits = text.count(old) if old else len(text) + 1
        if count >= 0:
            hits = min(hits, count)
        _check_length(len(text) + hits * max(len(new) - len(old), 0))
        return text.replace(old, new, count)
    return replace


def _join_method(sep):
    def join(items):
        items = list(items)
        texts = sum(len(x) for x in items if isinstance(x, (str, bytes, bytearray)))
        _check_length(len(sep) * max(len(items) - 1, 0) + texts)
        return sep.join(items)
    return join


def _expandtabs_method(text):
    def expandtabs(tabsize=8):
        _check_length(len(text) + text.count("\t") * max(tabsize, 0))
        return text.expandtabs(tabsize)
    return expandtabs


def _sort_method(items):
    def sort(*, key=None, reverse=False):
        if len(items) > rules.MAX_SORT:
            raise _too_big(f"sorting {len(items)} items")
        items.sort(key=key, reverse=reverse)
    return sort


_TEXT_METHODS = {
    "format": lambda text: lambda *a, **k: _FORMATTER.vformat(text, a, k),
    "format_map": lambda text: lambda mapping: _FORMATTER.vformat(text, (), mapping),
    "ljust": lambda text: _pad_method(text, "ljust"),
    "rjust": lambda text: _pad_method(text, "rjust"),
    "center": lambda text: _pad_method(text, "center"),
    "zfill": lambda text: _pad_method(text, "zfill"),
    "replace": _replace_method,
    "join": _join_method,
    "expandtabs": _expandtabs_method,
}
# Frames, code objects and generator internals (by any route), and mro(), which walks to `object`.
_REFUSED_ATTRS = INSPECT_ATTRIBUTES | {"mro", "cr_frame", "cr_code", "ag_frame", "ag_code", "f_locals",
                                      "tb_next", "co_code"}


# name -> {type of the object: factory(obj) -> the method scripts get}; classes are keyed as ("class", cls).
# Filled here and by wrapped.py; only these names cost more than a set lookup in guarded_getattr.
SPECIAL: dict[str, dict] = {}


def special(names: str, kinds: tuple, factory, classes: bool = False) -> None:
    """Route `obj.name` for objects of exactly `kinds` (or the classes themselves) through `factory(obj)`."""
    for name in names.split():
        table = SPECIAL.setdefault(name, {})
        for kind in kinds:
            table[("class", kind) if classes else kind] = factory


def guarded_getattr(obj, name, *default):
    """getattr that refuses private names and wraps amplifying methods."""
    if not isinstance(name, str):
        raise TypeError("attribute name must be a string")
    if name.startswith("_") or name in _REFUSED_ATTRS:
        raise AttributeError(f"attribute '{name}' is not allowed (names starting with '_' are private to the "
                             "host)")
    table = SPECIAL.get(name)
    if table is not None:
        factory = table.get(type(obj))
        if factory is not None:
            return factory(obj)
        if isinstance(obj, type):  # `str.join`, `set.update`: through the bound method's guard
            factory = table.get(("class", obj))
            if factory is not None:
                return factory(obj)
            if obj in table:
                return _unbound(obj, name)
        if name == "obj" and isinstance(obj, BaseException):
            raise AttributeError("attribute 'obj' of exceptions is not available (it can hold host objects)")
    return getattr(obj, name, *default)


def _unbound(kind: type, name: str):
    """str.join(sep, items) and friends, through the same caps as the bound methods."""
    def method(self, *args, **kwargs):
        if not isinstance(self, kind):
            raise TypeError(f"descriptor '{name}' requires a '{kind.__name__}' object")
        return guarded_getattr(self, name)(*args, **kwargs)
    return method


for _name, _factory in _TEXT_METHODS.items():
    special(_name, (str,) if _name.startswith("format") else (str, bytes, bytearray), _factory)
special("sort", (list,), _sort_method)
special("obj", (), None)  # exceptions' `obj` (see guarded_getattr)


# obj[key] as it is: scripts reach no object whose item access is unsafe (attributes are what _getattr_ guards),
# and the C function adds no Python frame to every subscript a script makes.
guarded_getitem = operator.getitem


def guarded_iter(obj):
    """Iterate (loops are interruptible by the timer); a `for` loop takes a long range's items lazily."""
    if type(obj) is LongRange:
        return obj._loop()
    return iter(obj)


_WRITABLE = (dict, list, set, bytearray, types.SimpleNamespace)


class _AttributeWriter:
    """Proxy RestrictedPython writes through: items of plain containers, attributes of namespaces."""

    __slots__ = ("_obj",)

    def __init__(self, obj):
        object.__setattr__(self, "_obj", obj)

    def __setattr__(self, name, value):
        if name.startswith("_") or type(self._obj) is not types.SimpleNamespace:
            raise TypeError(f"attributes of {type(self._obj).__name__} objects are read-only")
        setattr(self._obj, name, value)

    def __delattr__(self, name):
        if name.startswith("_") or type(self._obj) is not types.SimpleNamespace:
            raise TypeError(f"attributes of {type(self._obj).__name__} objects are read-only")
        delattr(self._obj, name)

    def __setitem__(self, key, value):
        self._obj[key] = value

    def __delitem__(self, key):
        del self._obj[key]


def guarded_write(obj):
    """Return what a script may write through: plain containers as they are, namespaces via a proxy."""
    kind = type(obj)
    if kind is dict or isinstance(obj, (dict, list, bytearray, collections.deque)):
        return obj  # scripts cannot define classes: these are builtins or collections' own subclasses
    if kind is types.SimpleNamespace:
        return _AttributeWriter(obj)
    raise TypeError(f"{kind.__name__} objects are read-only in plugin scripts")


_INPLACE = {
    "+=": operator.iadd, "-=": operator.isub, "*=": guarded_mul, "/=": operator.itruediv,
    "//=": operator.ifloordiv, "%=": guarded_mod, "**=": guarded_pow, "<<=": guarded_lshift,
    ">>=": operator.irshift, "&=": operator.iand, "|=": operator.ior, "^=": operator.ixor,
    "@=": operator.imatmul,
}


def inplace(op: str, left, right):
    """Apply an augmented assignment operator with the same caps as the binary one."""
    if op == "*=" and type(left) is list and _is_int(right):
        _check_length(len(left) * max(right, 0))
        left *= right
        return left
    return _INPLACE[op](left, right)
