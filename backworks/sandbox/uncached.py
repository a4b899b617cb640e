"""Library functions scripts call, without the process-wide caches those libraries keep.

A library's `functools.lru_cache` is shared by the whole process: what a script passes in (a 4 MB regex
template, a 4 MB URL) would stay in it after the call, charged to no budget, up to 128 entries per cache
(a memory ratchet of a gigabyte), and be shared with every later call. Scripts get these stand-ins instead;
the reachability audit (audit.cache_feeders) fails on any reachable callable that still feeds such a cache.
"""
from __future__ import annotations

import codecs
import functools
import logging
import types

import re2

logger = logging.getLogger(__name__)

_SPLIT_TEMPLATE = re2._Match._split.__wrapped__  # the function under re2's lru_cache of templates


def regex_compile(pattern):
    """re.compile without re2's cache of compiled patterns (each keeps its program and its DFA memory)."""
    if isinstance(pattern, re2._Regexp):
        return pattern
    return re2._Regexp(pattern, re2.Options())


def regex_expand(match, template):
    """Match.expand(template) as re2 does it, with the template split afresh instead of through its cache."""
    if isinstance(template, str):
        unescape = codecs.unicode_escape_decode
    elif isinstance(template, bytes):
        unescape = codecs.escape_decode
    else:
        raise TypeError(f"expand() template must be str or bytes, not {type(template).__name__}")
    empty = type(template)()
    pieces = _SPLIT_TEMPLATE(re2._Match, template)
    for index, piece in enumerate(pieces):
        if not index % 2:
            pieces[index] = unescape(piece)[0]
            continue
        group = piece[1:] if len(piece) <= 3 else piece[3:-1]  # \1 .. \99, or \g<name>
        try:
            group = int(group)
        except ValueError:
            pass
        pieces[index] = match[group] or empty
    return empty.join(pieces)


def regex_subn(regexp, repl, text, count=0):
    """Pattern.subn as re2 does it, with a template expanded by regex_expand (re2's own path caches it)."""
    replace = repl if callable(repl) else functools.partial(_expand_into, repl)
    if count < 0:
        return text, 0
    pieces = []
    end = 0
    done = 0
    for match in regexp.finditer(text):
        pieces.append(text[end:match.start()])
        pieces.append(replace(match))
        end = match.end()
        done += 1
        if done == count:
            break
    pieces.append(text[end:])
    return type(text)().join(pieces), done


def _expand_into(template, match):
    return regex_expand(match, template)


def regex_sub(regexp, repl, text, count=0):
    """Pattern.sub through regex_subn."""
    return regex_subn(regexp, repl, text, count)[0]


def without_caches(module: types.ModuleType) -> dict:
    """The module's namespace with its functions rebound to it, and each lru_cache replaced by the function under it.

    urllib.parse's urlparse, urljoin and urldefrag call its cached urlsplit, and quote its cached quoter
    factory, by global name: copies of its functions whose globals hold the uncached ones call those instead.
    """
    namespace = dict(vars(module))
    for name, value in namespace.items():
        if isinstance(value, functools._lru_cache_wrapper):
            namespace[name] = value.__wrapped__
    originals = {}
    for name, value in namespace.items():
        if isinstance(value, types.FunctionType) and value.__module__ == module.__name__:
            namespace[name] = _rebound(value, namespace)
            originals[id(value)] = namespace[name]
    for copy in originals.values():  # default values naming the module's functions (urlencode's quote_via)
        copy.__defaults__ = tuple(originals.get(id(v), v) for v in copy.__defaults__ or ()) or None
        if copy.__kwdefaults__:
            copy.__kwdefaults__ = {k: originals.get(id(v), v) for k, v in copy.__kwdefaults__.items()}
    return namespace


def _rebound(function: types.FunctionType, namespace: dict) -> types.FunctionType:
    copy = types.FunctionType(function.__code__, namespace, function.__name__, function.__defaults__,
                              function.__closure__)
    copy.__kwdefaults__ = dict(function.__kwdefaults__) if function.__kwdefaults__ else None
    copy.__qualname__ = function.__qualname__
    copy.__doc__ = function.__doc__
    copy.__module__ = function.__module__
    return copy


MAX_STRPTIME_FORMAT = 200  # characters of a strptime format: each distinct one stays in _strptime's and re's caches


def strptime(parse):
    """datetime.strptime / time.strptime with a format of at most MAX_STRPTIME_FORMAT characters.

    _strptime keeps the regex compiled from each distinct format (100 of them, and 512 in `re`'s own cache):
    capping the format bounds what scripts can leave there to a few hundred kilobytes.
    """
    def checked(*args):
        pattern = args[1] if len(args) > 1 else None
        if isinstance(pattern, str) and len(pattern) > MAX_STRPTIME_FORMAT:
            raise ValueError(f"a strptime format of {len(pattern)} characters exceeds the sandbox limit of "
                             f"{MAX_STRPTIME_FORMAT}")
        return parse(*args)
    checked.__name__ = checked.__qualname__ = "strptime"
    return checked
