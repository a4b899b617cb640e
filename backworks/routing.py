"""Endpoint paths -> URL rules: `{id}`, `:id`, `{id:int}` and catch-all tails `{rest:path}` / `*rest`."""
from __future__ import annotations

import logging
import re

from werkzeug.exceptions import BadHost, MethodNotAllowed, NotFound
from werkzeug.routing import Map, RequestRedirect, Rule
from werkzeug.wsgi import get_path_info

from backworks.errors import ConfigError, HTTPError

logger = logging.getLogger(__name__)

CONVERTERS = {"": "default", "str": "default", "string": "default", "int": "int", "float": "float",
              "path": "path", "uuid": "uuid"}
_BRACE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::([A-Za-z]*))?\}")
_COLON = re.compile(r"(?<=/):([A-Za-z_][A-Za-z0-9_]*)")
_STAR = re.compile(r"(?<=/)\*([A-Za-z_][A-Za-z0-9_]*)$")


def to_rule(path: str) -> str:
    """Translate a Backworks path into a werkzeug rule string; ValueError names what is wrong."""
    def brace(match: re.Match) -> str:
        name, kind = match.group(1), (match.group(2) or "").lower()
        if kind not in CONVERTERS:
            raise ValueError(f"unknown parameter type '{kind}' in {{{name}:{kind}}} "
                             f"(use one of: {', '.join(k for k in CONVERTERS if k)})")
        converter = CONVERTERS[kind]
        return f"<{name}>" if converter == "default" else f"<{converter}:{name}>"

    rule = _BRACE.sub(brace, path)
    rule = _COLON.sub(lambda m: f"<{m.group(1)}>", rule)
    rule = _STAR.sub(lambda m: f"<path:{m.group(1)}>", rule)
    if "*" in rule:
        raise ValueError("a catch-all '*name' must be the last segment of the path")
    if "{" in rule or "}" in rule:
        raise ValueError("unbalanced or malformed '{param}' in the path")
    return rule


def route_key(path: str) -> str:
    """Return the path with parameter names erased, so /a/{id} and /a/:x compare equal."""
    try:
        rule = to_rule(path)
    except ValueError:
        return path
    return re.sub(r"<(?:(\w+):)?\w+>", lambda m: f"<{m.group(1) or ''}>", rule).rstrip("/") or "/"


RECENT_PATHS = 4096  # matched paths remembered (at most RECENT_PATH_CHARS each: 1 MB)
RECENT_PATH_CHARS = 256


class Router:
    """An immutable route table built once per config load."""

    def __init__(self, endpoints):
        rules = []
        problems = []
        for spec in endpoints:
            try:
                for path, methods in spec.routes or ((spec.path, spec.methods),):
                    rules.append(Rule(to_rule(path), endpoint=spec.name, methods=list(methods)))
            except ValueError as exc:
                problems.append(f"{spec.at('path')}: {exc}")
        if problems:
            raise ConfigError(problems)
        self.map = Map(rules, strict_slashes=False, merge_slashes=False)
        # Rules never match on host, so one adapter bound at load serves every request; building one
        # per request from the environ costs about 20 us. Redirects are rebuilt from the environ.
        self.adapter = self.map.bind("backworks.invalid")
        self.static = self._static_routes(rules)
        # The adapter's answers for paths with parameters, as asked: the same path and method always get the
        # same answer (a third of a proxy request's time in Backworks went to werkzeug's matcher).
        self.recent: dict = {}

    def _static_routes(self, rules: list) -> dict:
        """{(path, method): endpoint} for each parameterless ASCII path, as the adapter itself matches it.

        The adapter's answer depends only on the path and the method, so it is asked once here; a request
        for such a route then skips werkzeug's matcher (a third of the gateway's time for a mock answer).
        A pair the adapter answers otherwise (a redirect, another rule) stays out and is matched per request.
        For an ASCII path, the raw PATH_INFO equals it exactly when the decoded one does.
        """
        static = {}
        for rule in rules:
            if rule.arguments or not rule.rule.isascii():
                continue
            for method in rule.methods:
                try:
                    found = self.adapter.match(rule.rule, method)
                except (RequestRedirect, MethodNotAllowed, NotFound):
                    continue
                if found == (rule.endpoint, {}):
                    static[(rule.rule, method)] = rule.endpoint
        return static

    def match(self, environ) -> tuple[str, dict]:
        """Return (endpoint name, path params) or raise HTTPError 404/405 (or a 308 redirect)."""
        key = (environ.get("PATH_INFO"), environ["REQUEST_METHOD"])
        name = self.static.get(key)
        if name is not None:
            return name, {}
        known = self.recent.get(key)
        if known is not None:
            return known[0], dict(known[1])  # (params are the request's own: a copy)
        try:
            found = self.adapter.match(get_path_info(environ), environ["REQUEST_METHOD"])
        except RequestRedirect:
            return self._match_from_environ(environ)
        except (MethodNotAllowed, NotFound):
            return self._match_from_environ(environ)
        if type(key[0]) is str and len(key[0]) <= RECENT_PATH_CHARS:
            if len(self.recent) >= RECENT_PATHS:
                self.recent.clear()  # clients choose paths: a bounded memory, the hot ones come back
            self.recent[key] = (found[0], dict(found[1]))
        return found

    def _match_from_environ(self, environ) -> tuple[str, dict]:
        try:
            adapter = self.map.bind_to_environ(environ)
        except BadHost:  # a Host label over 63 characters, say: werkzeug cannot IDNA-encode it
            raise HTTPError(400, "bad_host", "the Host header is not a valid host name") from None
        try:
            return adapter.match()
        except MethodNotAllowed as exc:
            allowed = sorted(set(exc.valid_methods or []))
            raise HTTPError(405, "method_not_allowed",
                            f"method {environ['REQUEST_METHOD']} is not allowed here; allowed: "
                            f"{', '.join(allowed)}", headers={"Allow": ", ".join(allowed)}) from None
        except RequestRedirect as exc:
            raise HTTPError(308, "redirect", f"moved to {exc.new_url}", headers={"Location": exc.new_url}) from None
        except NotFound:
            raise HTTPError(404, "not_found", f"no endpoint matches {environ['REQUEST_METHOD']} "
                            f"{environ.get('PATH_INFO') or '/'}") from None
