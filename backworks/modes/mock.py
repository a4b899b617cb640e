"""Mock mode: canned responses, conditions, sequences, random choice, delays, faults, templates."""
from __future__ import annotations

import errno
import itertools
import json
import logging
import mimetypes
import random
import re
import socket
import struct
import threading
import time

from backworks.config.fields import field, header_map, listof, section, string_map
from backworks.errors import ConfigError, HTTPError
from backworks.http import JSON_TYPE, Reply, RequestData
from backworks.modes.base import LoadContext, Mode

logger = logging.getLogger(__name__)
_HEADER_BREAKS = re.compile("[\\r\\n\\0]")  # a rendered header value stays one header line

TEXT_TYPE = "text/plain; charset=utf-8"
_ANY = {"nullable": True}


def _response_fields(help_prefix: str = "") -> dict:
    return {
        "status": field("integer", f"{help_prefix}HTTP status.", min=100, max=599, default=200),
        "headers": header_map(f"{help_prefix}Response headers (values may be templates).", default={}),
        "json": {"meta": {"help": f"{help_prefix}A JSON value sent as application/json (strings may be "
                                  "templates)."}, **_ANY, "excludes": ["body", "file"]},
        "body": field("string", f"{help_prefix}A text body (may be a template).", excludes=["json", "file"]),
        "file": field("string", f"{help_prefix}Send this file (relative to the config file); read at load.",
                      excludes=["json", "body"]),
        "content_type": field("string", f"{help_prefix}Content-Type (default from json/body/file)."),
        "delay_ms": field("integer", f"{help_prefix}Wait this long before answering.", min=0, max=600000),
        "delay_max_ms": field("integer", f"{help_prefix}With delay_ms: wait a random time between the two.",
                              min=0, max=600000),
        "template": field("boolean", f"{help_prefix}Render {{{{ }}}} templates (default: when the text has them).",
                          nullable=True),
    }


WHEN = section("Conditions; every one given must hold.", {
    "method": field("string", "Request method."),
    "path": string_map("Path parameters and their values."),
    "query": string_map("Query parameters and their values ('*': present with any value)."),
    "headers": string_map("Headers (case-insensitive names) and values ('*': present)."),
    "json": {"type": "dict", "meta": {"help": "JSON body fields by dotted path (a.b.0.c) and their values."}},
    "body_contains": field("string", "Text the raw body contains."),
})

_SEQUENCE_ITEM = section("One response of a sequence.", _response_fields())
_RANDOM_ITEM = section("One response of a random choice.", {
    **_response_fields(),
    "weight": field("number", "Relative chance of this response.", min=0, default=1),
})
_CHOICE_FIELDS = {
    "sequence": listof("Answer these in turn (per worker process).", _SEQUENCE_ITEM, minlength=1),
    "sequence_end": field("string", "After the last: start again (cycle) or keep answering the last.",
                          allowed=["cycle", "repeat_last"], default="cycle"),
    "random": listof("Answer one of these at random, by weight.", _RANDOM_ITEM, minlength=1),
}
FAULT = section("Fault injection: with `probability`, fail instead of answering.", {
    "probability": field("number", "Chance (0-1) that a request gets the fault.", min=0, max=1, default=0),
    "status": field("integer", "Answer this status with a JSON error.", min=100, max=599, default=503),
    "delay_ms": field("integer", "Wait this long first.", min=0, max=600000, default=0),
    "reset": field("boolean", "Reset the connection instead of answering.", default=False),
})
SCHEMA = {
    **_response_fields(),
    **_CHOICE_FIELDS,
    "responses": listof("Conditional responses; the first whose `when` matches answers, else the defaults "
                        "above.", section("A conditional response.", {
                            "when": WHEN, **_response_fields(), **_CHOICE_FIELDS}, )),
    "fault": FAULT,
}

_env = None  # the template environment, made when a config first has a template


def _compile(text: str, where: str, enabled):
    """Compile a template string when it has template syntax (or templating is forced on)."""
    if enabled is False or (enabled is None and "{{" not in text and "{%" not in text):
        return None
    from jinja2 import TemplateSyntaxError
    from jinja2.sandbox import SandboxedEnvironment

    global _env
    if _env is None:
        _env = SandboxedEnvironment(autoescape=False, keep_trailing_newline=True)
    try:
        return _env.from_string(text)
    except TemplateSyntaxError as exc:
        raise ConfigError([f"{where}: template error: {exc.message} (template line {exc.lineno})"]) from None


class Canned:
    """One response compiled at load: static bytes, or templates rendered per request."""

    def __init__(self, spec: dict, mode: "MockMode", parts: tuple):
        at = mode.spec.at
        self.status = spec.get("status", 200)
        self.delay = (spec.get("delay_ms") or 0) / 1000
        self.delay_max = max(self.delay, (spec.get("delay_max_ms") or 0) / 1000)
        enabled = spec.get("template")
        content_type, body, self.body_template, self.json_template = self._body(spec, mode, parts, enabled)
        self.body = body
        headers = dict(spec.get("headers") or {})
        if not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = spec.get("content_type") or content_type
        self.headers = [(str(k), str(v)) for k, v in headers.items()]
        self.header_templates = [(k, _compile(v, at(*parts, "headers", k), enabled)) for k, v in self.headers]
        if not any(t for _, t in self.header_templates):
            self.header_templates = None

    def _body(self, spec, mode, parts, enabled):
        at = mode.spec.at
        if "json" in spec:
            value = spec["json"]
            template = _compile_json(value, lambda *sub: at(*parts, "json", *sub), enabled)
            return JSON_TYPE, _dump(value), None, template
        if "file" in spec:
            path = mode.ctx.config.resolve(spec["file"])
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise ConfigError([f"{at(*parts, 'file')}: cannot read {path}: {exc.strerror or exc}"]) from None
            return mimetypes.guess_type(str(path))[0] or "application/octet-stream", data, None, None
        text = spec.get("body", "")
        return TEXT_TYPE, text.encode(), _compile(text, at(*parts, "body"), enabled), None

    def reply(self, request: RequestData) -> Reply:
        """Build the reply (rendering templates when there are any)."""
        if self.delay:
            time.sleep(random.uniform(self.delay, self.delay_max) if self.delay_max > self.delay else self.delay)
        if self.body_template is None and self.json_template is None and self.header_templates is None:
            return Reply(self.status, list(self.headers), self.body)
        context = template_context(request)
        try:
            body = self.body
            if self.body_template is not None:
                body = self.body_template.render(context).encode()
            elif self.json_template is not None:
                body = _dump(_render_json(self.json_template, context))
            headers = self.headers
            if self.header_templates is not None:
                headers = [(k, t.render(context) if t else v)
                           for (k, v), (_, t) in zip(self.headers, self.header_templates, strict=True)]
        except HTTPError:
            raise
        except Exception as exc:
            logger.warning("mock template of endpoint %s failed: %s", request.endpoint, exc)
            raise HTTPError(500, "template_error", f"the mock template failed: {exc}") from exc
        return Reply(self.status, [(k, _HEADER_BREAKS.sub(" ", v)) for k, v in headers], body)


def _dump(value) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def _compile_json(value, where, enabled):
    """Return a structure with compiled templates in place of template strings, or None if static."""
    found = False

    def walk(item, path: tuple):
        nonlocal found
        if isinstance(item, str):
            template = _compile(item, where(*path), enabled)
            if template is not None:
                found = True
                return template
            return item
        if isinstance(item, dict):
            return {k: walk(v, path + (k,)) for k, v in item.items()}
        if isinstance(item, list):
            return [walk(v, path + (i,)) for i, v in enumerate(item)]
        return item

    compiled = walk(value, ())
    return compiled if found else None


def _render_json(item, context):
    if hasattr(item, "render"):
        return item.render(context)
    if isinstance(item, dict):
        return {k: _render_json(v, context) for k, v in item.items()}
    if isinstance(item, list):
        return [_render_json(v, context) for v in item]
    return item


def template_context(request: RequestData) -> dict:
    """Return what templates see: path, query, headers, json, body, method, request_id."""
    body = request.body
    return {
        "path": request.path_params,
        "query": request.query.to_dict(),
        "headers": {k.lower(): v for k, v in request.headers.items()},
        "json": request.json,
        "body": body.decode("utf-8", "replace"),
        "method": request.method,
        "request_id": request.request_id,
    }


class Choice:
    """A response source: one canned response, a sequence, or a weighted random choice."""

    def __init__(self, spec: dict, mode: "MockMode", parts: tuple):
        self.single = None
        self.items = []
        if "sequence" in spec:
            self.items = [Canned(item, mode, parts + ("sequence", i)) for i, item in enumerate(spec["sequence"])]
            self.kind = "sequence"
            self.cycle = spec.get("sequence_end", "cycle") == "cycle"
            self.counter = itertools.count()
            self.lock = threading.Lock()
        elif "random" in spec:
            self.items = [Canned(item, mode, parts + ("random", i)) for i, item in enumerate(spec["random"])]
            self.weights = [item.get("weight", 1) for item in spec["random"]]
            if not any(self.weights):
                raise ConfigError([f"{mode.spec.at(*parts, 'random')}: at least one weight must be above 0"])
            self.kind = "random"
        else:
            self.single = Canned(spec, mode, parts)
            self.kind = "single"

    def pick(self) -> Canned:
        """Return the canned response for this request."""
        if self.single is not None:
            return self.single
        if self.kind == "random":
            return random.choices(self.items, weights=self.weights)[0]
        with self.lock:
            n = next(self.counter)
        if self.cycle:
            return self.items[n % len(self.items)]
        return self.items[min(n, len(self.items) - 1)]


class Condition:
    """A compiled `when:` block."""

    def __init__(self, when: dict):
        self.method = (when.get("method") or "").upper() or None
        self.path = {k: str(v) for k, v in (when.get("path") or {}).items()}
        self.query = {k: str(v) for k, v in (when.get("query") or {}).items()}
        self.headers = {k.lower(): str(v) for k, v in (when.get("headers") or {}).items()}
        self.json = [(k.split("."), v) for k, v in (when.get("json") or {}).items()]
        self.body_contains = when.get("body_contains")

    def matches(self, request: RequestData) -> bool:
        """Return True when every condition holds for the request."""
        if self.method and request.method != self.method:
            return False
        if any(str(request.path_params.get(k)) != v for k, v in self.path.items()):
            return False
        if not _all_match(self.query, lambda k: request.query.get(k)):
            return False
        if not _all_match(self.headers, lambda k: request.headers.get(k)):
            return False
        if self.body_contains is not None and self.body_contains.encode() not in request.body:
            return False
        return all(_dig(request.json, path) == value for path, value in self.json)


def _all_match(expected: dict, lookup) -> bool:
    for key, value in expected.items():
        actual = lookup(key)
        if actual is None or (value != "*" and actual != value):
            return False
    return True


_MISSING = object()


def _dig(data, path: list):
    for part in path:
        if isinstance(data, dict) and part in data:
            data = data[part]
        elif isinstance(data, list) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        else:
            return _MISSING
    return data


class MockMode(Mode):
    """Canned responses: status, headers, json/body/file, conditions, sequences, random, faults, templates."""

    schema = SCHEMA
    default_methods = ("GET",)
    block_required = False

    def __init__(self, spec, ctx: LoadContext):
        super().__init__(spec, ctx)
        block = self.block
        self.routes = [(Condition(item.get("when") or {}), Choice(item, self, ("mock", "responses", i)))
                       for i, item in enumerate(block.get("responses") or [])]
        self.default = Choice(block, self, ("mock",))
        self.fault = block.get("fault") or {}
        self.fault_probability = self.fault.get("probability", 0)
        self.reads_body = bool(self.routes) or self._templated()

    def _templated(self) -> bool:
        canned = [self.default.single] if self.default.single else self.default.items
        return any(c.body_template or c.json_template or c.header_templates for c in canned)

    def handle(self, request: RequestData) -> Reply:
        """Answer with the first matching conditional response, else the default."""
        if self.fault_probability and random.random() < self.fault_probability:
            return self.inject_fault(request)
        for condition, choice in self.routes:
            if condition.matches(request):
                return choice.pick().reply(request)
        return self.default.pick().reply(request)

    def inject_fault(self, request: RequestData) -> Reply:
        """Fail on purpose: delay, then reset the connection or answer the configured status."""
        if self.fault.get("delay_ms"):
            time.sleep(self.fault["delay_ms"] / 1000)
        if self.fault.get("reset"):
            reset_connection(request.wz.environ)
        status = self.fault.get("status", 503)
        raise HTTPError(status, "injected_fault", f"fault injected by endpoint '{self.spec.name}'")


def reset_connection(environ) -> None:
    """Make the server close the client connection with a TCP reset instead of answering."""
    sock = environ.get("gunicorn.socket") or environ.get("werkzeug.socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    raise ConnectionResetError(errno.ECONNRESET, "connection reset by fault injection")
