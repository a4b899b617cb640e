"""Plain data in and out of scripts: fast copies for hooks, strict validation of what they return."""
from __future__ import annotations

import logging
import marshal

logger = logging.getLogger(__name__)

MAX_DEPTH = 32
MAX_BYTES = 1024 * 1024     # approximate serialised size of one returned value
MAX_INT_BITS = 4096          # JSON needs decimal text; bigger ints would be refused by int->str anyway
_BAD_HEADER_CHARS = ("\r", "\n", "\0")
_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")

REQUEST_FIELDS = ("method", "path", "path_params", "query", "headers", "body", "json", "client_ip", "endpoint")
RESPONSE_FIELDS = ("status", "headers", "body", "json")


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


def plain(value, path: str = "value"):
    """Return a validated copy of `value`: dict/list/str/int/float/bool/None only, bounded in depth and size."""
    budget = [MAX_BYTES]
    return _plain(value, path, 0, budget)


def _plain(value, path, depth, budget):
    kind = type(value)
    if kind is str:
        budget[0] -= len(value) + 2
    elif kind in (bool, float) or value is None:
        budget[0] -= 8
    elif kind is int:
        if value.bit_length() > MAX_INT_BITS:
            raise InvalidValue(f"{path}: integer too large")
        budget[0] -= 8
    elif kind in (dict, list, tuple):
        if depth >= MAX_DEPTH:
            raise InvalidValue(f"{path}: nested deeper than {MAX_DEPTH} levels (or cyclic)")
        budget[0] -= 2 + len(value)
        if budget[0] < 0:
            raise InvalidValue(f"{path}: larger than {MAX_BYTES} bytes")
        if kind is dict:
            result = {}
            for key, item in value.items():
                if type(key) is not str:
                    raise InvalidValue(f"{path}: keys must be strings, not {type(key).__name__}")
                budget[0] -= len(key)
                result[key] = _plain(item, f"{path}.{key[:40]}", depth + 1, budget)
            return result
        return [_plain(item, f"{path}[{i}]", depth + 1, budget) for i, item in enumerate(value)]
    else:
        raise InvalidValue(f"{path}: {kind.__name__} is not plain data (use dict, list, str, int, float, "
                           "bool or None)")
    if budget[0] < 0:
        raise InvalidValue(f"{path}: larger than {MAX_BYTES} bytes")
    return value


def _check_header(name, value, path: str) -> None:
    if type(name) is not str or not name or not set(name) <= _TOKEN:
        raise InvalidValue(f"{path}: invalid header name {str(name)[:60]!r}")
    if type(value) is not str:
        raise InvalidValue(f"{path}.{name}: header values must be strings, not {type(value).__name__}")
    if any(c in value for c in _BAD_HEADER_CHARS):
        raise InvalidValue(f"{path}.{name}: header values cannot contain CR, LF or NUL")


def _headers(value, path: str, lower: bool):
    if type(value) is dict:
        for name, item in value.items():
            _check_header(name, item, path)
        return {k.lower(): v for k, v in value.items()} if lower else value
    if type(value) is list and not lower:
        for pair in value:
            if type(pair) is not list or len(pair) != 2:
                raise InvalidValue(f"{path}: a header list holds [name, value] pairs")
            _check_header(pair[0], pair[1], path)
        return value
    raise InvalidValue(f"{path}: must be a dict of name -> value" + ("" if lower else " or a list of pairs"))


def _str_map(value, path: str, lists: bool):
    if type(value) is not dict:
        raise InvalidValue(f"{path}: must be a dict")
    for key, item in value.items():
        ok = type(item) is str or (lists and type(item) is list and all(type(x) is str for x in item))
        if not ok:
            raise InvalidValue(f"{path}.{key}: must be a string" + (" or a list of strings" if lists else ""))
    return value


def _optional_str(value, path: str):
    if value is not None and type(value) is not str:
        raise InvalidValue(f"{path}: must be a string or None")
    return value


def request(value, current: dict) -> dict:
    """Validate a request returned by before_request; fields it leaves out keep their current values."""
    data = plain(value, "request")
    if type(data) is not dict:
        raise InvalidValue(f"request: must be a dict, not {type(value).__name__}")
    unknown = sorted(set(data) - set(REQUEST_FIELDS))
    if unknown:
        raise InvalidValue(f"request: unknown field '{unknown[0]}' (fields: {', '.join(REQUEST_FIELDS)})")
    result = {**current, **data}
    for name in ("method", "path"):
        if type(result.get(name)) is not str or not result[name]:
            raise InvalidValue(f"request.{name}: must be a non-empty string")
    if any(c in result["method"] + result["path"] for c in _BAD_HEADER_CHARS + (" ",)):
        raise InvalidValue("request: method and path cannot contain spaces, CR, LF or NUL")
    _str_map(result.get("path_params", {}), "request.path_params", lists=False)
    _str_map(result.get("query", {}), "request.query", lists=True)
    result["headers"] = _headers(result.get("headers", {}), "request.headers", lower=True)
    for name in ("body", "client_ip", "endpoint"):
        _optional_str(result.get(name), f"request.{name}")
    return result


def response(value, current: dict | None) -> dict:
    """Validate a response dict; with `current`, fields it leaves out keep their current values."""
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
    if type(status) is not int or not 100 <= status <= 599:
        raise InvalidValue(f"response.status: must be an integer from 100 to 599, not {status!r}"[:200])
    result["headers"] = _headers(result.get("headers", {}), "response.headers", lower=False)
    if "body" in result and type(result["body"]) is not str:
        raise InvalidValue("response.body: must be a string (use json for data)")
    if "body" not in result and "json" not in result:
        result["body"] = ""
    return result
