"""Plain data in and out of scripts: fast copies for hooks, strict validation of what they return."""
from __future__ import annotations

import collections
import logging
import marshal
import re
import sys

logger = logging.getLogger(__name__)

MAX_DEPTH = 32
MAX_BYTES = 1024 * 1024     # approximate serialised size of one returned value
# JSON needs decimal text: integers of at most the interpreter's int-to-text digits (what json.loads reads too,
# so a request's own JSON always passes). Only integers over _SAFE_INT_BITS are compared with the limit.
MAX_INT_DIGITS = sys.get_int_max_str_digits() or 4300
_INT_LIMIT = 10 ** MAX_INT_DIGITS
_SAFE_INT_BITS = int(MAX_INT_DIGITS * 3.3219) - 1  # log2(10) = 3.32193: below 10 ** MAX_INT_DIGITS
MAX_HEADERS = 1000           # headers a hook may return (servers take about 100): checked before any is looked at
_BAD_HEADER_CHARS = ("\r", "\n", "\0")
_TOKEN_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")  # RFC 9110 token: header names, methods
_BAD_VALUE = re.compile(r"[^\t\x20-\x7e\xa0-\xff]")  # header values: visible latin-1, space, tab
_SURROGATE = re.compile("[\ud800-\udfff]")
# Header names that passed _TOKEN_RE (text only: no other kind equals a str): a name hooks set on every
# request is matched once. Bounded: hooks and clients choose names.
_VALID_NAMES: set = set()
MAX_VALID_NAMES = 4096
MAX_VALID_NAME_CHARS = 64  # longer names are matched each time: a script's 1 MB name is not kept past its call
# Framing (recomputed from the body) and hop-by-hop headers (RFC 9110 7.6.1): a hook's values are ignored.
IGNORED_HEADERS = frozenset({"content-length", "transfer-encoding", "connection", "keep-alive", "proxy-connection",
                             "proxy-authenticate", "proxy-authorization", "te", "trailer", "upgrade"})

REQUEST_FIELDS = ("method", "path", "path_params", "query", "headers", "body", "json", "client_ip", "endpoint")
RESPONSE_FIELDS = ("status", "headers", "body", "json")
_REQUEST_FIELD_SET = frozenset(REQUEST_FIELDS)
_SHAPE_FIELDS = frozenset({str, type(None), dict})  # a request's field kinds copy_request copies by shape
_ATOMS = frozenset({str, int, float, bool})  # immutable values a copy may share
TEXT = frozenset({str})  # container kinds where == is exact


class InvalidValue(ValueError):
    """A hook returned something that is not valid plain data of the expected shape."""


def copy(value):
    """Deep copy of plain data (what hooks receive, so a half-done mutation never leaks)."""
    return marshal.loads(marshal.dumps(value))


def freeze(value) -> bytes:
    """The immutable serialised form of plain data: thaw() makes as many deep copies as needed from it.

    Format 2 has no back-references (plain data has no shared parts to keep): it thaws ~20% faster.
    """
    return marshal.dumps(value, 2)


thaw = marshal.loads  # thaw(frozen) -> a new deep copy of what freeze() serialised


def container_kinds(request: dict) -> set | None:
    """The kinds of value in a request's path_params, query and headers, when it has the server's shape.

    That shape: only known fields, holding text or None, except path_params, query and headers, which are
    plain dicts; no JSON body. None for anything else (then only a whole copy is exact).
    """
    params, query, headers = request.get("path_params"), request.get("query"), request.get("headers")
    if type(params) is dict and type(query) is dict and type(headers) is dict and request.keys() <= _REQUEST_FIELD_SET \
            and {*map(type, request.values())} <= _SHAPE_FIELDS and request.get("json") is None:
        return {*map(type, params.values()), *map(type, query.values()), *map(type, headers.values())}
    return None


def copy_request(request: dict) -> tuple[dict, bool]:
    """A deep copy of a request dict, and whether its containers hold only text (no JSON body).

    By its known shape when it has it (container_kinds, with text or numbers inside): strings and numbers
    are shared (immutable), so a copy costs three small dict copies instead of rebuilding every string of a
    serialised form. Anything else (a JSON body, a list in the query, a field of another kind) is copied
    whole by marshal. A request whose containers hold only text is copied by copy_text_only while it stays so.
    """
    kinds = container_kinds(request)
    if kinds is not None and kinds <= _ATOMS:
        return copy_text_only(request), kinds <= TEXT
    return marshal.loads(marshal.dumps(request, 2)), False


def copy_text_only(request: dict) -> dict:
    """A deep copy of a request whose path_params, query and headers hold only atoms (text or numbers) and that
    has no JSON body: the dict and each of those containers copied."""
    new = request.copy()
    for name in ("path_params", "query", "headers"):
        if name in new:
            new[name] = new[name].copy()
    return new


def copy_shaped(request: dict) -> dict:
    """copy_request for a request known to have the server's shape (to_dict's, or request()'s result from one).

    Every field is there, path_params and headers are dicts of text or numbers, the query a dict of text or
    lists of text: only the query's lists and the JSON body need more than a dict copy.
    """
    new = request.copy()
    query, body_json = request["query"], request["json"]
    new["path_params"], new["headers"] = request["path_params"].copy(), request["headers"].copy()
    if query and list in map(type, query.values()):
        new["query"] = {key: item.copy() if type(item) is list else item for key, item in query.items()}
    else:
        new["query"] = query.copy()
    if body_json is not None:
        new["json"] = marshal.loads(marshal.dumps(body_json, 2))
    return new


def plain(value, path: str = "value"):
    """Return a validated copy of `value`: dict/list/str/int/float/bool/None only, bounded in depth and size.

    Only what the server can send passes: finite floats, text without lone surrogates (UTF-8 encodable).
    """
    budget = [MAX_BYTES]
    try:
        return _plain(value, 0, budget)
    except _Bad as bad:  # the path is built only for the error (a string per item cost 0.2 s per MB)
        raise InvalidValue(f"{path}{''.join(reversed(bad.where))}: {bad.reason}") from None


class _Bad(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason
        self.where: list[str] = []


def _plain(value, depth, budget):
    kind = type(value)
    if kind is str:
        budget[0] -= len(value) + 2
        if not value.isascii() and _SURROGATE.search(value):
            raise _Bad("text with a lone surrogate cannot be sent (it is not valid Unicode)")
    elif kind is float:
        if value - value != 0.0:  # NaN and infinities: not JSON
            raise _Bad(f"{value!r} is not JSON (NaN and infinities cannot be sent)")
        budget[0] -= 8
    elif kind is bool or value is None:
        budget[0] -= 8
    elif kind is int:
        bits = value.bit_length()
        if bits > _SAFE_INT_BITS and not -_INT_LIMIT < value < _INT_LIMIT:
            raise _Bad(f"integer too large (more than {MAX_INT_DIGITS} digits)")
        budget[0] -= 8 if bits <= 64 else (bits * 77 >> 8) + 1  # its digits: bits * log10(2) (77 / 256)
    elif kind in (dict, list, tuple):
        if depth >= MAX_DEPTH:
            raise _Bad(f"nested deeper than {MAX_DEPTH} levels (or cyclic)")
        budget[0] -= 2 + len(value)
        if budget[0] < 0:
            raise _Bad(f"larger than {MAX_BYTES} bytes")
        if kind is dict:
            result = {}
            for key, item in value.items():
                if type(key) is not str:
                    raise _Bad(f"keys must be strings, not {type(key).__name__}")
                if not key.isascii() and _SURROGATE.search(key):
                    raise _Bad("a key with a lone surrogate cannot be sent (it is not valid Unicode)")
                budget[0] -= len(key)
                try:
                    result[key] = _plain(item, depth + 1, budget)
                except _Bad as bad:
                    bad.where.append(f".{key[:40]}")
                    raise
            return result
        result = []
        for item in value:
            try:
                result.append(_plain(item, depth + 1, budget))
            except _Bad as bad:
                bad.where.append(f"[{len(result)}]")
                raise
        return result
    else:
        raise _Bad(f"{kind.__name__} is not plain data (use dict, list, str, int, float, bool or None)")
    if budget[0] < 0:
        raise _Bad(f"larger than {MAX_BYTES} bytes")
    return value


MAX_REPR_STRING = 200
_SMALL_REPR = (bool, float, complex, type(None))
_SIZED = (list, tuple, dict, set, frozenset, bytearray, collections.deque, range)


def bounded_repr(value) -> str:
    """A repr in O(1) host work: atoms cut short, anything else its type name (and length): no recursion.

    What error messages show of a script's value: never str() or repr() of what a script built, which run
    in C outside any budget (a tuple of 10,000 4,000-digit ints takes seconds to print, and int-to-str
    past sys.int_max_str_digits raises).
    """
    kind = type(value)
    if kind is str or kind is bytes:
        return repr(value[:MAX_REPR_STRING]) + ("..." if len(value) > MAX_REPR_STRING else "")
    if kind is int:
        return repr(value) if value.bit_length() <= 256 else f"<int of {value.bit_length()} bits>"
    if kind in _SMALL_REPR:
        return repr(value)
    try:
        size = len(value) if isinstance(value, _SIZED) else None
    except Exception:  # a length that cannot be read is simply not shown
        size = None
    name = kind.__name__ if isinstance(kind.__name__, str) else "object"
    return f"<{name[:60]}>" if size is None else f"<{name[:60]} of {size} items>"


def header_items(headers):
    """The (name, value) pairs of validated headers: a dict, or a list of [name, value] pairs."""
    return headers.items() if type(headers) is dict else headers


def _check_header(name, value, path: str) -> None:
    if type(name) is not str or name not in _VALID_NAMES:  # (a pair's name may be anything, unhashable too)
        if type(name) is not str or not _TOKEN_RE.match(name):
            raise InvalidValue(f"{path}: invalid header name {bounded_repr(name)}")
        if len(_VALID_NAMES) < MAX_VALID_NAMES and len(name) <= MAX_VALID_NAME_CHARS:
            _VALID_NAMES.add(name)
    if type(value) is not str:
        raise InvalidValue(f"{path}.{name}: header values must be strings, not {type(value).__name__}")
    if not (value.isascii() and value.isprintable()) and _BAD_VALUE.search(value):
        if any(c in value for c in _BAD_HEADER_CHARS):
            raise InvalidValue(f"{path}.{name}: header values cannot contain CR, LF or NUL")
        raise InvalidValue(f"{path}.{name}: header values must be visible latin-1 text (no control characters)")


def _pairs(value, path: str) -> list:
    for pair in value:
        if type(pair) is not list or len(pair) != 2:
            raise InvalidValue(f"{path}: a header list holds [name, value] pairs")
    return value


def _request_headers(value, current: dict, budget: list, path: str = "request.headers") -> dict:
    """Lower-case names; unchanged pairs are not checked again; ignored headers keep their current values."""
    if type(value) is not dict:
        raise InvalidValue(f"{path}: must be a dict of name -> value")
    if len(value) > MAX_HEADERS:
        raise InvalidValue(f"{path}: more than {MAX_HEADERS} headers")
    # The whole dict counts against the size cap, before any value is checked: every hook's result stays
    # within it (headers do not add up across hooks), and no check walks more text than the cap. The walk
    # that sizes it also finds the pairs that differ from the server's (pairs equal to them are valid
    # already: names lower-case, values text); comparing to them reads at most the server's own text.
    get = current.get
    size = 2
    new = []
    try:
        for name, item in value.items():
            size += len(name) + len(item) + 5
            if item != get(name, _MISSING):
                new.append(name)
    except TypeError:  # a name or value without a length: refused before any text is scanned
        for name, item in value.items():
            if type(name) is not str or type(item) is not str:
                _check_header(name, item, path)  # raises InvalidValue for it
        raise InvalidValue(f"{path}: header names and values must be strings") from None
    budget[0] -= size
    if budget[0] < 0:
        raise InvalidValue(f"{path}: larger than {MAX_BYTES} bytes")
    lowered = True
    for name in new:
        _check_header(name, value[name], path)
        if lowered and name != name.lower():
            lowered = False
    result = value.copy() if lowered else _lowered(value)  # (a later spelling of one name wins)
    # Framing and hop-by-hop headers keep the server's values: nothing to do when the hook only added or
    # changed other headers (every server header kept, none of the new names ignored).
    if not (lowered and IGNORED_HEADERS.isdisjoint(new) and len(value) - len(new) == len(current)) and (
            not IGNORED_HEADERS.isdisjoint(result) or not IGNORED_HEADERS.isdisjoint(current)):
        result = _keep_ignored(result, current)
    # The same headers once lower-cased and with the server's own framing: the server's dict, in its order (a
    # sandbox child and this process then agree on the order, whatever the hook did to it).
    return current if result == current else result


def _lowered(value: dict) -> dict:
    # A hook spelled a name in capitals: lower-case it.
    return {name.lower(): item for name, item in value.items()}


def _keep_ignored(result: dict, current: dict) -> dict:
    # Framing and hop-by-hop headers are the server's: a hook's values are ignored (recomputed or kept).
    for name in IGNORED_HEADERS.intersection(result):
        if name in current:
            result[name] = current[name]
        else:
            del result[name]
    for name in IGNORED_HEADERS.intersection(current):
        result.setdefault(name, current[name])
    return result


def _response_headers(value, current, path: str = "response.headers"):
    """Validated response headers in the form given (dict, or list of pairs), without ignored headers."""
    if type(value) in (list, dict) and len(value) > MAX_HEADERS:
        raise InvalidValue(f"{path}: more than {MAX_HEADERS} headers")
    if type(value) is list:
        pairs = [pair for pair in _pairs(value, path) if _valid_pair(pair, path)]
        pairs.extend([name, item] for name, item in header_items(current or {})
                     if name.lower() in IGNORED_HEADERS)
        return pairs
    if type(value) is not dict:
        raise InvalidValue(f"{path}: must be a dict of name -> value or a list of pairs")
    known = current if type(current) is dict else {}
    result = {}
    for name, item in value.items():
        if known.get(name) == item and type(item) is str and type(name) is str:  # unchanged: valid already
            result[name] = item
            continue
        _check_header(name, item, path)
        if name.lower() not in IGNORED_HEADERS:
            result[name] = item
    for name, item in header_items(current or {}):
        if name.lower() in IGNORED_HEADERS:
            result[name] = item
    return result


def _valid_pair(pair: list, path: str) -> bool:
    _check_header(pair[0], pair[1], path)
    return pair[0].lower() not in IGNORED_HEADERS


def _str_map(value, path: str, lists: bool):
    if type(value) is not dict:
        raise InvalidValue(f"{path}: must be a dict")
    for key, item in value.items():
        ok = type(item) is str or (lists and type(item) is list and all(type(x) is str for x in item))
        if not ok:
            raise InvalidValue(f"{path}.{key}: must be a string" + (" or a list of strings" if lists else ""))
    return value


def _path_params(value) -> dict:
    """Route parameters: text, or the numbers int and float routes give (never bool)."""
    if type(value) is not dict:
        raise InvalidValue("request.path_params: must be a dict")
    for key, item in value.items():
        if type(item) not in (str, int, float):
            raise InvalidValue(f"request.path_params.{key}: must be a string or a number")
    return value


def _optional_str(value, path: str):
    if value is not None and type(value) is not str:
        raise InvalidValue(f"{path}: must be a string or None")
    return value


def _optional_str_check(path: str):
    return lambda value: _optional_str(value, path)


# Fields the server may fill with numbers (route converters, JSON): a returned value that compares equal to
# the current one may still differ in type (1 == 1.0 == True), so it is checked anyway. The other fields hold
# text only (str, dicts of str): equal there is the same value, types included.
_INEXACT = ("path_params", "json")
_MISSING = object()


def request(value, current: dict) -> dict:
    """Validate a request returned by before_request; fields it leaves out keep their current values.

    `current` is valid already: only the fields a hook changed are checked, so a hook that sets one header
    pays for the headers, not for the whole request.
    """
    return request_changes(value, current)[0]


_NOTHING: tuple = ()


def same_data(value, current) -> bool:
    """True when `value`, equal to `current`, is the same plain data: types, float signs, key order.

    The server's own values need no check (a request's JSON may be deeper or larger than what a hook may
    build): a hook that hands them back unchanged changes nothing. Costs two serialisations of `current`'s
    size (equal values are of one size). The rule of http.same_json (not imported: sandbox children load
    this module without the web stack): version 0 writes what a value is, never how it is held (interned
    strings, shared objects).
    """
    try:
        return marshal.dumps(value, 0) == marshal.dumps(current, 0)
    except ValueError:  # not plain data (an OrderedDict, say): checked as a change
        return False


def equal_is_same(request: dict) -> bool:
    """True when a value equal to `request` is the same request (no route parameters, no JSON body: text
    only, where == is exact); else request_changes must look at the value (1 == 1.0 == True)."""
    return not request.get("path_params") and request.get("json") is None


def request_changes(value, current: dict) -> tuple[dict, list | tuple]:
    """request(), and the names of the fields that may differ from `current` (none when it is `current`)."""
    if type(value) is not dict:
        plain(value, "request")  # the reason it is not plain data, if it is not
        raise InvalidValue(f"request: must be a dict, not {type(value).__name__}")
    get = current.get
    inexact = not equal_is_same(current)
    if not inexact and value == current:  # unchanged (equal is the same on text)
        return current, _NOTHING
    # The common change, the headers alone: one dict compare instead of a walk (where equal is the same only:
    # else equal headers of another kind, an OrderedDict say, would be taken for changed ones and refused).
    rest = value.copy() if not inexact and len(value) == len(current) else None
    if rest is not None:
        rest["headers"] = current.get("headers", _MISSING)
    if rest == current:
        changed = ["headers"]
    else:
        changed = []  # (a loop: a comprehension would be a function call more)
        for name, item in value.items():
            if item != get(name, _MISSING):  # unknown fields too
                changed.append(name)
    if inexact:
        for name in _INEXACT:  # equal is not the same there (1 == 1.0 == True): checked unless the same
            if name in value and name not in changed and get(name) not in (None, {}) \
                    and not same_data(value[name], get(name)):
                changed.append(name)
    if not changed:
        return current, _NOTHING
    if not _REQUEST_FIELD_SET.issuperset(changed):
        name = next(name for name in changed if name not in _REQUEST_FIELD_SET)
        raise InvalidValue(f"request: unknown field {bounded_repr(name)} (fields: {', '.join(REQUEST_FIELDS)})")
    result = dict(current)
    budget = [MAX_BYTES]
    for name in changed:
        item = value[name]
        if name == "headers":
            old = get(name)
            result[name] = _request_headers(item, old if type(old) is dict else {}, budget)
            continue
        try:
            result[name] = _plain(item, 1, budget)
        except _Bad as bad:
            raise InvalidValue(f"request.{name}{''.join(reversed(bad.where))}: {bad.reason}") from None
        _REQUEST_CHECKS.get(name, _no_check)(result[name])
    return result, changed


def _no_check(value) -> None:
    pass


def _check_request_line(name: str):
    def check(value) -> None:
        if type(value) is not str or not value:
            raise InvalidValue(f"request.{name}: must be a non-empty string")
        if any(c in value for c in _BAD_HEADER_CHARS + (" ",)):
            raise InvalidValue("request: method and path cannot contain spaces, CR, LF or NUL")
        if name == "path" and (value[0] != "/" or value.startswith("//")):  # origin-form: no other host
            raise InvalidValue(f"request.path: must start with a single '/', not {bounded_repr(value)}")
        if name == "method" and not _TOKEN_RE.match(value):
            raise InvalidValue(f"request.method: must be a token, e.g. GET, not {value[:40]!r}")
    return check


def _read_only(name: str):
    def check(value) -> None:
        raise InvalidValue(f"request.{name} is read-only (hooks may read it, not change it)")
    return check


_REQUEST_CHECKS = {
    "method": _check_request_line("method"),
    "path": _check_request_line("path"),
    "path_params": _path_params,
    "query": lambda value: _str_map(value, "request.query", lists=True),
    "body": _optional_str_check("request.body"),
    **{name: _read_only(name) for name in ("client_ip", "endpoint")},
}


def response(value, current: dict | None) -> dict:
    """Validate a response dict; with `current`, fields it leaves out keep their current values."""
    kept = type(value) is dict and type(current) is dict and "json" in value and "json" in current \
        and value["json"] == current["json"] and same_data(value["json"], current["json"])
    if kept:  # the reply's own JSON handed back unchanged (see same_data): the rest is checked
        data = plain({key: item for key, item in value.items() if key != "json"}, "response")
        data["json"] = current["json"]
    else:
        data = plain(value, "response")
    if type(data) is not dict:
        raise InvalidValue(f"response: must be a dict, not {type(value).__name__}")
    unknown = sorted(set(data) - set(RESPONSE_FIELDS))
    if unknown:
        raise InvalidValue(f"response: unknown field '{unknown[0]}' (fields: {', '.join(RESPONSE_FIELDS)})")
    if "body" in data and "json" in data:
        raise InvalidValue("response: give either body or json, not both")
    base = dict(current or {"status": 200, "headers": {}})
    if "body" in data:
        base.pop("json", None)
    if "json" in data:
        base.pop("body", None)
    result = {**base, **data}
    status = result.get("status")
    if type(status) is not int or not 200 <= status <= 599:  # 1xx are the server's (101 would switch protocols)
        raise InvalidValue(f"response.status: must be an integer from 200 to 599, not {bounded_repr(status)}")
    if "headers" in data or current is None:
        result["headers"] = _response_headers(result.get("headers", {}), (current or {}).get("headers"))
    if "body" in result and type(result["body"]) is not str:
        raise InvalidValue("response.body: must be a string (use json for data)")
    if "body" not in result and "json" not in result:
        result["body"] = ""
    return result
