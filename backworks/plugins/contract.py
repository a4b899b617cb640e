"""The plugin contract: the hooks a script may define, their signatures and return semantics.

A plugin script is a plain module; every hook is an optional module-level function. The host never
calls anything else in it. The request and response a hook receives are plain data and copies: a hook
that fails (raises, overruns its budget, returns something invalid) leaves them exactly as they were.
"""
from __future__ import annotations

import logging

logger = logging.getLogger(__name__)


def before_request(request: dict) -> dict | None:
    """Run before the endpoint's handler, in `order` (lowest first).

    request: {"method", "path", "path_params", "query" (str -> str, repeated keys -> list),
    "headers" (lower-case names), "body" (str or None), "json" (parsed body or None),
    "client_ip", "endpoint" (both read-only)}.
    Return None to keep the request, a request dict to replace it, or {"response": {...}} to answer
    now with that response ({"status", "headers", "body" or "json"}) and skip the handler.
    """


def after_response(request: dict, response: dict) -> dict | None:
    """Run after the handler, in reverse `order` (the first before_request plugin runs last here).

    response: {"status", "headers" (lower-case names), "body" (str or None), "json" (parsed body or None)}.
    Return None to keep the response or a response dict to replace it.
    """


def handle(request: dict) -> object:
    """Be the handler of a `runtime` endpoint.

    Return a response dict ({"status", "headers", "body" or "json"}) or any other JSON value, which is
    answered as 200 with that value as the JSON body.
    """


def on_load(config: dict) -> None:
    """Run once per (re)load with (a copy of) the plugin's `config` block; the return value is ignored.

    A failure here refuses the load: at startup the server does not start, on reload the previous
    version keeps serving.
    """


def health_check() -> object:
    """Report health to /readyz and the dashboard: truthy means healthy."""


# The hook names: the sandbox (which functions a script may define), the request chain and the docs read them here.
BEFORE_REQUEST, AFTER_RESPONSE, HANDLE, ON_LOAD, HEALTH_CHECK = (
    "before_request", "after_response", "handle", "on_load", "health_check")
HOOKS: tuple[str, ...] = (BEFORE_REQUEST, AFTER_RESPONSE, HANDLE, ON_LOAD, HEALTH_CHECK)
REQUEST_HOOKS: tuple[str, ...] = (BEFORE_REQUEST, AFTER_RESPONSE)  # the phases every request runs through
