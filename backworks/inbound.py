"""Hostile request input at the gateway: request ids, early 413, and the last-resort mapping to 4xx."""
from __future__ import annotations

import logging
import os
import re
import time
import traceback

from werkzeug.exceptions import HTTPException

from backworks.errors import HTTPError
from backworks.http import too_large
from backworks.logtext import log_safe

logger = logging.getLogger(__name__)

# An incoming request id is kept only when it is short visible ASCII: no spaces, no control characters,
# nothing that could end a log line or pass for another field.
REQUEST_ID = re.compile(r"[!-~]{1,128}")

# New ids come from the OS's randomness, ID_BATCH ids per system call: a call releases the GIL, and in a
# gthread worker each release hands it to another thread and waits to get it back (1-4 us of CPU per call
# measured with 4 busy threads, against 0.1 us for a pop from the batch). list.pop() is atomic, so threads
# share the batch without a lock; a forked child drops its parent's, or both would hand out the same ids.
ID_BATCH = 256
_fresh_ids: list[str] = []
os.register_at_fork(after_in_child=_fresh_ids.clear)


def request_id(environ: dict, key: str) -> str:
    """The client's request id when it is sane (visible ASCII, at most 128 characters), else a new one."""
    supplied = environ.get(key)
    if supplied and REQUEST_ID.fullmatch(supplied):
        return supplied
    return new_request_id()


def new_request_id() -> str:
    """32 random hexadecimal digits (128 bits from os.urandom)."""
    while True:
        try:
            return _fresh_ids.pop()
        except IndexError:
            block = os.urandom(16 * ID_BATCH).hex()
            _fresh_ids.extend([block[at:at + 32] for at in range(0, len(block), 32)])


def declared_too_large(environ: dict, limit: int) -> HTTPError | None:
    """The 413 for a Content-Length over `limit`, decided before a byte of the body is read."""
    length = environ.get("CONTENT_LENGTH")
    if not length:
        return None
    length = length.strip(" \t")
    if length.isascii() and length.isdigit() and int(length) > limit:
        return too_large(int(length), limit)
    return None


# A refused body still on its way from a trusted proxy is read and dropped after the answer went out, so
# the proxy sees the answer rather than a reset connection (nginx sends a buffered body at full speed).
DRAIN_MAX_BYTES = 64 * 1024 * 1024
DRAIN_SECONDS = 5.0


class AnswerThenDrain:
    """The body of a refusal: sent at once; on close, the unread request body is dropped (bounded)."""

    def __init__(self, body: bytes, stream):
        self.body = body
        self.stream = stream

    def __iter__(self):
        return iter((self.body,))

    def close(self) -> None:
        """Called by the server once the answer is sent: drain at most DRAIN_MAX_BYTES for DRAIN_SECONDS."""
        deadline = time.monotonic() + DRAIN_SECONDS
        left = DRAIN_MAX_BYTES
        try:
            while left > 0 and time.monotonic() < deadline:
                chunk = self.stream.read(min(65536, left))
                if not chunk:
                    return
                left -= len(chunk)
        except Exception:  # the client is gone or its framing broke: nothing more to drain
            return


def drain_after(reply, environ: dict) -> None:
    """Make a refused request's reply drop the unread body once the reply is sent (proxies in front only)."""
    stream = environ.get("wsgi.input")
    if stream is None:
        return
    body = reply.body_bytes()
    reply.headers.append(("Content-Length", str(len(body))))
    reply.body = AnswerThenDrain(body, stream)


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
