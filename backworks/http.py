"""The request and response shapes shared by the gateway, the modes and the plugins."""
from __future__ import annotations

import json
import logging
import marshal
import re
import sys
from typing import Iterable

from werkzeug.datastructures import Headers, MultiDict
from werkzeug.http import HTTP_STATUS_CODES
from werkzeug.wrappers import Request
from werkzeug.wsgi import get_path_info

from backworks.errors import HTTPError

logger = logging.getLogger(__name__)

STATUS_LINES = {code: f"{code} {reason}" for code, reason in HTTP_STATUS_CODES.items()}
JSON_TYPE = "application/json"


def is_trusted_peer(peer: str, trusted: frozenset) -> bool:
    """True for a configured trusted proxy, or a unix-socket peer (no address: nginx on this host)."""
    return not peer or peer in trusted


def status_line(status: int) -> str:
    """Return the HTTP status line for a numeric status, known reason or not."""
    return STATUS_LINES.get(status) or f"{status} Unknown"


def is_json_type(content_type: str | None) -> bool:
    """Return True when a Content-Type names JSON (application/json or any +json type)."""
    if not content_type:
        return False
    mime = content_type.split(";", 1)[0].strip().lower()
    return mime == JSON_TYPE or mime.endswith("+json")


class Reply:
    """A WSGI response: status, a header list and a body (bytes or an iterable of bytes)."""

    __slots__ = ("status", "headers", "body", "meta")

    def __init__(self, status: int, headers: list[tuple[str, str]] | None = None,
                 body: bytes | Iterable[bytes] = b"", meta: dict | None = None):
        self.status = status
        self.headers = headers if headers is not None else []
        self.body = body
        self.meta = meta  # what the access log and metrics should know (fallbacks, plugin outcomes)

    def header(self, name: str) -> str | None:
        """Return the first value of a header, case-insensitively."""
        lname = name.lower()
        for key, value in self.headers:
            if key.lower() == lname:
                return value
        return None

    def body_bytes(self) -> bytes:
        """Return the whole body, draining a streamed one."""
        if isinstance(self.body, (bytes, bytearray)):
            return bytes(self.body)
        chunks = b"".join(self.body)
        close = getattr(self.body, "close", None)
        if close:
            close()
        self.body = chunks
        return chunks

    def __call__(self, environ, start_response):
        headers = self.headers
        body = self.body
        if isinstance(body, (bytes, bytearray)):
            if self.status not in (204, 304) and not _has_length(headers):
                headers = headers + [("Content-Length", str(len(body)))]
            start_response(status_line(self.status), headers)
            return [] if environ["REQUEST_METHOD"] == "HEAD" else [body]
        start_response(status_line(self.status), headers)
        if environ["REQUEST_METHOD"] == "HEAD":
            close = getattr(body, "close", None)
            if close:
                close()
            return []
        return body


def _has_length(headers: list) -> bool:
    for name, _ in headers:  # (a loop, not any() over a generator: this runs for every answer)
        if len(name) == 14 and name.lower() == "content-length":
            return True
    return False


def same_json(a, b) -> bool:
    """Equal and of the same types: == alone takes 1, 1.0 and True for one value, JSON does not."""
    # Version 0 writes what a value is, never how it is held: later versions mark interned strings and
    # objects referenced more than once, so two equal values of the same types could differ.
    return a is b or (a == b and (a is None or marshal.dumps(a, 0) == marshal.dumps(b, 0)))


def json_reply(status: int, payload: object, headers: list[tuple[str, str]] | None = None) -> Reply:
    """Serialise `payload` as a JSON response."""
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    return Reply(status, [("Content-Type", JSON_TYPE)] + list(headers or []), body)


def error_reply(status: int, code: str, message: str, headers: dict | None = None,
                details: object = None, request_id: str | None = None) -> Reply:
    """Build the JSON error every client failure gets: {"error": {"code", "message"}}."""
    error: dict = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    if request_id:
        error["request_id"] = request_id
    return json_reply(status, {"error": error}, list((headers or {}).items()))


def reply_from_http_error(exc: HTTPError, request_id: str | None = None) -> Reply:
    """Turn an HTTPError into its JSON reply."""
    return error_reply(exc.status, exc.code, exc.message, exc.headers, exc.details, request_id)


class RequestData:
    """The request as modes and plugins see it: built lazily from WSGI, or from a plugin's dict."""

    def __init__(self, environ: dict | Request, endpoint: str, path_params: dict, request_id: str,
                 max_body_bytes: int, client_ip: str):
        # The werkzeug Request is built only when something needs it: the proxy path reads the environ.
        if isinstance(environ, Request):
            self._wz: Request | None = environ
            environ = environ.environ
        else:
            self._wz = None
        self.environ = environ
        self.endpoint = endpoint
        self.path_params = path_params
        self.request_id = request_id
        self.max_body_bytes = max_body_bytes
        self.client_ip = client_ip
        self.method = environ.get("REQUEST_METHOD", "GET").upper()
        # as werkzeug's Request.path: PATH_INFO decoded as UTF-8, one leading slash. An ASCII one (the usual
        # case; isascii() is a flag lookup) decodes to itself: the decoding is skipped (0.5 us a request).
        raw_path = environ.get("PATH_INFO", "")
        self.received_path = "/" + (raw_path if raw_path.isascii() else get_path_info(environ)).lstrip("/")
        self.path = self.received_path
        self._body: bytes | None = None
        self._json: object = _UNSET
        self._query: MultiDict | None = None
        self._headers: Headers | None = None
        self._header_dict: dict | None = None  # a plugin's headers {lower-case name: value}, until asked as Headers
        self._environ_headers: list | None = None

    @property
    def wz(self) -> Request:
        """The werkzeug Request over the environ (built on first use)."""
        if self._wz is None:
            self._wz = Request(self.environ)
        return self._wz

    @property
    def query(self) -> MultiDict:
        """Query parameters (a MultiDict: `.get` gives the first, `.getlist` all)."""
        if self._query is None:
            self._query = self.wz.args
        return self._query

    @property
    def headers(self) -> Headers:
        """Request headers, case-insensitive."""
        if self._headers is None:
            self._headers = Headers(self.wz.headers if self._header_dict is None else list(self._header_dict.items()))
        return self._headers

    def header_items(self) -> Iterable[tuple[str, str]]:
        """The (name, value) pairs of the request headers, read from the environ unless replaced."""
        if self._headers is not None:
            return self._headers.items()
        if self._header_dict is not None:
            return list(self._header_dict.items())
        if self._environ_headers is None:  # read once: the proxy and the capture both want them
            self._environ_headers = environ_header_items(self.environ)
        return self._environ_headers

    @property
    def headers_replaced(self) -> bool:
        """True once the headers are no longer the environ's (a plugin's request dict gave them)."""
        return self._header_dict is not None

    @property
    def query_string(self) -> str:
        """The raw query string, as the client sent it."""
        if self._query is None or self._query is self.wz.args:
            return self.environ.get("QUERY_STRING", "")
        return _encode_query(self._query)

    @property
    def body_loaded(self) -> bool:
        """True once the body has been read (by the gateway, a plugin or a mode)."""
        return self._body is not None

    @property
    def body(self) -> bytes:
        """The whole request body, refused with 413 past server.max_body_bytes."""
        if self._body is None:
            self._body = read_body(self.wz, self.max_body_bytes)
        return self._body

    @property
    def json(self) -> object:
        """The parsed JSON body, or None when the body is empty or not declared JSON (400 if broken)."""
        if self._json is _UNSET:
            self._json = parse_json_body(self.headers.get("Content-Type"), self.body)
        return self._json

    def to_dict(self, include_body: bool = True) -> dict:
        """Return the plain-data request plugins receive (body and json None unless include_body)."""
        query: dict = {}
        if self._query is not None or self.environ.get("QUERY_STRING"):
            for key, values in self.query.lists():
                query[key] = values[0] if len(values) == 1 else list(values)
        if self._header_dict is not None and self._headers is None:  # as a plugin gave them
            headers = dict(self._header_dict)
        elif self._headers is None:  # the environ's own headers unless a plugin replaced them
            headers = environ_headers(self.environ)
        else:
            headers = {}
            for key, value in self._headers.items():
                lkey = key.lower()
                headers[lkey] = f"{headers[lkey]}, {value}" if lkey in headers else value
        environ = self.environ
        has_body = self._body is not None or (("CONTENT_LENGTH" in environ or "HTTP_TRANSFER_ENCODING" in environ)
                                              and declares_body(environ))
        body = self.body if include_body and has_body else b""
        return {
            "method": self.method,
            "path": self.path,
            "path_params": {key: value if type(value) in _PARAM_TYPES else str(value)  # a uuid route's UUID: text
                            for key, value in self.path_params.items()} if self.path_params else {},
            "query": query,
            "headers": headers,
            "body": body.decode("utf-8", "replace") if body else None,
            "json": self.json if body else None,
            "client_ip": self.client_ip,
            "endpoint": self.endpoint,
        }

    def replaced(self, data: dict, original: dict, keep_body: bool = False,
                 changed: set | None = None) -> "RequestData":
        """Return a copy of this request with a plugin's request dict applied.

        `original` is the dict this request gave (to_dict): fields equal to it keep this request's own
        values (unread body, query, headers as the client spelled them), so a plugin that sets one header
        costs one dict, not a rebuilt request. keep_body: keep this request's body and ignore the dict's.
        changed: the names of the fields that differ from `original`, when the caller knows them.
        """
        new = object.__new__(RequestData)
        new.__dict__ = self.__dict__.copy()  # (half the cost of update() on the new object's own dict)
        new._headers = None  # built again on demand: never one Headers object for two requests
        if changed is None:
            get = original.get
            changed = {name for name, value in data.items() if value != get(name)}
        params = data.get("path_params") if "path_params" in changed else self.path_params
        new.path_params = dict(params or {})
        if "method" in changed:
            new.method = str(data.get("method") or self.method).upper()
        if "path" in changed:
            new.path = str(data.get("path") or self.path)
        if "query" in changed:
            query = MultiDict()
            for key, value in (data.get("query") or {}).items():
                for item in value if isinstance(value, list) else [value]:
                    query.add(str(key), str(item))
            new._query = query
        # validated (values.request): lower-case names, text values; a new body also needs its own framing
        headers = dict(data.get("headers") or {}) if "headers" in changed or not keep_body else None
        if keep_body:
            new._body, new._json = self._body, self._json
        else:
            new_json = data.get("json")
            if new_json is not None and ("json" in changed or not same_json(new_json, original.get("json"))):
                new._json = new_json
                new._body = json.dumps(new_json).encode()
                headers["content-type"] = JSON_TYPE
            else:
                body = data.get("body")
                new._body = body.encode() if isinstance(body, str) else (body or b"")
                new._json = _UNSET
            if "content-length" in headers or new._body:
                headers["content-length"] = str(len(new._body))
        if headers is not None:
            new._header_dict = headers
        return new


_UNSET = object()
_PARAM_TYPES = (str, int, float)  # route parameters plugins get as they are; others (uuid) as text
_MAX_HEADER_KEYS = 1024  # clients choose header names: remember a bounded number of short ones
_MAX_CACHED_KEY = 128  # characters of an environ key whose header name is remembered
_MAX_LAYOUT_CHARS = 2048  # characters of all the keys of a layout that is remembered (typically 400-800)
_HEADER_NAMES: dict = {}  # environ key -> header name as werkzeug's EnvironHeaders spells it, or ""
# The header keys of each environ layout seen (its keys in order: one client sends the same headers in the
# same order), so a request's headers are read in one pass over its headers, not over every environ key:
# tuple of keys -> (((environ key, name, lower-case name), ...), two keys name one header, the HTTP_* keys).
_LAYOUTS: dict = {}
MAX_LAYOUTS = 512


def _header_name(key: str) -> str:
    if key.startswith("HTTP_") and key not in ("HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"):
        return key[5:].replace("_", "-").title()
    if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        return key.replace("_", "-").title()
    return ""


def _layout(environ: dict) -> tuple:
    """(header keys, shared, HTTP_* keys) of an environ: see _LAYOUTS."""
    keys = tuple(environ)
    layout = _LAYOUTS.get(keys)
    if layout is None:
        names = _HEADER_NAMES
        found = []
        for key in keys:
            name = names.get(key)
            if name is None:
                name = _header_name(key)
                if len(names) < _MAX_HEADER_KEYS and len(key) <= _MAX_CACHED_KEY:
                    names[key] = name
            if name:
                found.append((key, name, name.lower()))
        layout = (tuple(found), len({lower for _, _, lower in found}) < len(found),
                  tuple(key for key in keys if key[:5] == "HTTP_"))
        # Clients choose their headers: bounded in count (emptied when full, as the router's memo) and in size
        # (a layout of long or many keys is worked out again each time: ~2.5 MB each at gunicorn's limits).
        if sum(map(len, keys)) <= _MAX_LAYOUT_CHARS:
            if len(_LAYOUTS) >= MAX_LAYOUTS:
                _LAYOUTS.clear()
            _LAYOUTS[keys] = layout  # (a complete value, set at once: safe for other threads)
    return layout


def environ_header_items(environ: dict) -> list[tuple[str, str]]:
    """The request headers of a WSGI environ as (name, value) pairs, named and ordered as werkzeug does."""
    # An empty Content-Type/-Length is absent (header keys are HTTP_* or CONTENT_*).
    return [(name, value) for key, name, _ in _layout(environ)[0] if (value := environ[key]) or key[0] == "H"]


def declares_body(environ: dict) -> bool:
    """Tell whether the request announces a body: a Transfer-Encoding, or a Content-Length above 0.

    Read from the environ as werkzeug reads it, without building a werkzeug Request for this alone.
    """
    if "HTTP_TRANSFER_ENCODING" in environ:
        return True
    length = (environ.get("CONTENT_LENGTH") or "").strip(" \t")
    return length.isascii() and length.isdigit() and int(length) > 0


def environ_http_items(environ: dict, max_chars: int) -> list[tuple[str, str]]:
    """The environ's HTTP_* (key, value) pairs, in its order (the raw request headers as the server gave them),
    each value cut to `max_chars`."""
    return [(key, value if len(value := environ[key]) <= max_chars else value[:max_chars])
            for key in _layout(environ)[2]]


def environ_headers(environ: dict) -> dict:
    """The request headers of a WSGI environ as {lower-case name: value}, repeated names joined with ", "."""
    keys, shared, _ = _layout(environ)
    if not shared:  # every key has a header name of its own: one comprehension (it runs for every plugin phase)
        return {lower: value for key, _, lower in keys if (value := environ[key]) or key[0] == "H"}
    headers: dict = {}  # two environ keys name one header (a gateway's own spelling): join them as werkzeug does
    for name, value in environ_header_items(environ):
        name = name.lower()
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers


def _encode_query(query: MultiDict) -> str:
    from urllib.parse import urlencode

    return urlencode(list(query.items(multi=True)))


def read_body(wz: Request, limit: int) -> bytes:
    """Read a request body, answering 413 once it is larger than `limit` bytes (the rest is left unread)."""
    length = wz.content_length
    if length is not None and length > limit:
        raise too_large(length, limit)
    data = read_input(wz.stream, limit + 1 if length is None else length)
    if len(data) > limit:
        raise too_large(None, limit)
    return data


def too_large(length: int | None, limit: int) -> HTTPError:
    """The 413 for a body over server.max_body_bytes; the rest is not read here (see inbound.drain_after)."""
    said = f"request body is {length} bytes; the limit is {limit}" if length is not None else \
        f"request body is over the limit of {limit} bytes"
    return HTTPError(413, "payload_too_large", f"{said} (server.max_body_bytes)")


def read_input(stream, size: int) -> bytes:
    """Read up to `size` bytes of the request body; 400 when the client's framing breaks.

    A truncated or malformed chunked body, or a client gone mid-body, raises from the server's reader
    (gunicorn's NoMoreData, InvalidChunkSize, ChunkMissingTerminator; werkzeug's ClientDisconnected):
    that is the client's failure, never a 500.
    """
    try:
        return stream.read(size)
    except Exception as exc:
        raise HTTPError(400, "incomplete_body", f"the request body could not be read to its end "
                        f"({type(exc).__name__})") from None


# json.loads decodes "\\ud800" to a lone surrogate, which no later encode accepts: look for such escapes
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


class NotJson(ValueError):
    """Text Python's json module reads that is not JSON (RFC 8259): NaN, Infinity, a number too large for a
    float, a \\u escape of a lone surrogate. Such a value could not be sent on: a plugin hook handed it would
    have it refused as its own (and its breaker counted) even when it changed nothing."""


def _no_constant(name: str):
    raise NotJson(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if value - value != 0.0:  # 1e999 and the like overflow to Infinity
        raise NotJson("a number is too large for a float (it would be Infinity)")
    return value


_UTF8_BOM = b"\xef\xbb\xbf"


def loads_json(raw: bytes) -> object:
    """json.loads of JSON only (see NotJson); the json module's own errors otherwise.

    UTF-8 only (RFC 8259; a leading BOM is skipped), decoded strictly: json.loads of bytes would also take
    UTF-16 and UTF-32, and UTF-8-encoded surrogates, where the checks below could not see them.
    """
    if raw[:3] == _UTF8_BOM:
        raw = raw[3:]
    value = json.loads(raw.decode("utf-8"), parse_constant=_no_constant, parse_float=_finite_float)
    if b"\\u" in raw and _SURROGATE_ESCAPE.search(raw) and not _encodable(value):
        raise NotJson("a \\u escape encodes a lone surrogate (not a Unicode character)")
    return value


def parse_json_body(content_type: str | None, body: bytes) -> object:
    """Parse a body declared JSON; 400 with the parser's position when it does not parse."""
    if not body or not is_json_type(content_type):
        return None
    try:
        return loads_json(body)
    except NotJson as exc:
        raise HTTPError(400, "invalid_json", f"request body is not valid JSON: {exc}") from None
    except UnicodeDecodeError:
        raise HTTPError(400, "invalid_json", "request body is declared JSON but is not valid UTF-8") from None
    except json.JSONDecodeError as exc:
        raise HTTPError(400, "invalid_json",
                        f"request body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise HTTPError(400, "invalid_json", "request body is JSON nested too deeply") from None
    except ValueError:  # an integer past Python's digit limit (sys.get_int_max_str_digits())
        raise HTTPError(400, "invalid_json", f"request body has a number over {sys.get_int_max_str_digits()} "
                        f"digits long") from None


def _encodable(value) -> bool:
    """True when every string (and key) in a parsed JSON value encodes to UTF-8."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if not item.isascii():
                try:
                    item.encode("utf-8")
                except UnicodeEncodeError:
                    return False
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return True
