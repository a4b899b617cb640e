"""Hostile request input at the gateway: request ids, early 413, and the last-resort mapping to 4xx."""
from __future__ import annotations

import logging
import os
import re
import traceback

from werkzeug.exceptions import HTTPException

from backworks.errors import HTTPError
from backworks.http import too_large
from backworks.logtext import log_safe

logger = logging.getLogger(__name__)

# An incoming request id is kept only when it is short visible ASCII: no spaces, no control characters,
# nothing that could end a log line or pass for another field.
REQUEST_ID = re.compile(r"[!-~]{1,128}")


def request_id(environ: dict, key: str) -> str:
    """The client's request id when it is sane (visible ASCII, at most 128 characters), else a new one."""
    supplied = environ.get(key)
    if supplied and REQUEST_ID.fullmatch(supplied):
        return supplied
    return os.urandom(16).hex()


def declared_too_large(environ: dict, limit: int) -> HTTPError | None:
    """The 413 for a Content-Length over `limit`, decided before a byte of the body is read."""
    length = environ.get("CONTENT_LENGTH")
    if not length:
        return None
    length = length.strip(" \t")
    if length.isascii() and length.isdigit() and int(length) > limit:
        return too_large(int(length), limit)
    return None


# What a client's bytes can make the standard library raise while they are decoded or converted: the
# client's failure, answered 400. Anything else is a bug of ours and stays a 500 with its traceback.
_INPUT_ERRORS = {
    UnicodeError: ("invalid_encoding", "the request contains text that is not valid Unicode"),
    RecursionError: ("too_deeply_nested", "the request contains data nested too deeply"),
    OverflowError: ("value_out_of_range", "the request contains a value out of range"),
}


def client_error(exc: BaseException) -> HTTPError | None:
    """The 4xx a failure caused by the request's own content deserves, or None for a server fault."""
    if isinstance(exc, HTTPError):
        return exc
    if isinstance(exc, HTTPException) and exc.code and exc.code < 500:
        code = re.sub(r"\W+", "_", (exc.name or "bad request").lower()).strip("_")
        return HTTPError(exc.code, code, exc.description or exc.name or "bad request")
    for cls, (code, message) in _INPUT_ERRORS.items():
        if isinstance(exc, cls):
            where = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
            at = f" at {where[0].filename}:{where[0].lineno}" if where else ""
            # one line, no traceback: the request is at fault, but the place is kept for a developer
            logger.warning("request refused (400): %s: %s%s", type(exc).__name__, log_safe(exc)[:200], at)
            return HTTPError(400, code, message)
    if "digits" in str(exc) and isinstance(exc, ValueError):  # int() past sys.get_int_max_str_digits()
        return HTTPError(400, "value_out_of_range", "the request contains a number with too many digits")
    return None
