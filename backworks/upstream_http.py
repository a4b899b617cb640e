"""Hostile upstreams: strict response headers and framing, and a total deadline per exchange.

http.client splits header lines on a bare CR and keeps NUL bytes, so a malformed upstream header could
reach the client as an extra header (or make gunicorn answer an HTML 500). The connection classes here
read the raw header lines as they arrive and refuse anything outside RFC 9110 field syntax, and any
framing a proxy could misread (Transfer-Encoding with Content-Length, a non-numeric or repeated
Content-Length, a transfer coding other than chunked).
"""
from __future__ import annotations

import collections
import http.client
import logging
import os
import re
import socket
import threading
import time

from urllib3.connection import HTTPConnection, HTTPSConnection

from backworks import secrets

logger = logging.getLogger(__name__)

# field-name ":" OWS field-value OWS, one line: a token name, then visible ASCII, SP, HTAB or obs-text.
_FIELD = rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+:[\t\x20-\x7e\x80-\xff]*\r?\n"
_FIELD_LINE = re.compile(_FIELD)
_STATUS = rb"HTTP/\d\.\d \d{3}[\t\x20-\x7e\x80-\xff]*\r?\n"
_STATUS_LINE = re.compile(_STATUS)
# whole heads at once (a 1xx head may come first): the common case costs one match
_HEADS = re.compile(rb"(?:" + _STATUS + rb"(?:" + _FIELD + rb")*\r?\n)+")
_FRAMING = re.compile(rb"^(content-length|transfer-encoding):[\t ]*([^\r\n]*?)[\t ]*\r?$",
                      re.IGNORECASE | re.MULTILINE)


class InvalidUpstreamResponse(http.client.HTTPException):
    """The upstream's response head breaks HTTP syntax or framing; the message says how."""


class _LineRecorder:
    """Stands in for a response's file while http.client reads the head, keeping every line it reads."""

    __slots__ = ("fp", "lines")

    def __init__(self, fp):
        self.fp = fp
        self.lines: list = []

    def readline(self, limit: int = -1) -> bytes:
        line = self.fp.readline(limit)
        self.lines.append(line)
        return line

    def __getattr__(self, name):
        return getattr(self.fp, name)


class CheckedResponse(http.client.HTTPResponse):
    """An http.client response whose head is checked line by line before anyone reads it."""

    def begin(self) -> None:
        """Read the status line and headers, then refuse them when they are malformed."""
        if self.headers is not None:
            return
        fp = self.fp
        recorder = self.fp = _LineRecorder(fp)
        try:
            super().begin()
        finally:
            if self.fp is recorder:
                self.fp = fp
        problem = head_problem(recorder.lines)
        if problem:
            self.close()
            raise InvalidUpstreamResponse(problem)


def head_problem(lines: list) -> str | None:
    """What is wrong with the raw lines of a response head (status lines, fields, framing), or None."""
    head = b"".join(lines)
    if _HEADS.fullmatch(head) is None:
        for line in lines:
            if line in (b"\r\n", b"\n", b""):
                continue
            if line.startswith(b"HTTP/") and _STATUS_LINE.fullmatch(line):
                continue
            if not _FIELD_LINE.fullmatch(line):
                return f"malformed header line {_shown(_masked(line))}"
    lowered = head.lower()
    lengths = lowered.count(b"\ncontent-length:")
    if lengths <= 1 and b"\ntransfer-encoding:" not in lowered:
        if lengths:  # the usual single Content-Length: only its value needs a look
            start = lowered.index(b"\ncontent-length:") + 16
            value = head[start:head.index(b"\n", start)].strip(b" \t\r")
            if not value.isdigit():
                return f"Content-Length {_shown(value)} (one decimal number expected)"
        return None
    return framing_problem(_FRAMING.findall(head))


def framing_problem(found: list) -> str | None:
    """What is ambiguous in the (name, value) framing headers of a response, or None."""
    lengths = [value for name, value in found if name[0] in b"cC"]
    codings = [value for name, value in found if name[0] in b"tT"]
    if codings and lengths:
        return "both Transfer-Encoding and Content-Length (a request smuggling risk)"
    if codings and (len(codings) > 1 or codings[0].lower() != b"chunked"):
        return f"Transfer-Encoding {_shown(b', '.join(codings))} (only chunked is accepted)"
    if lengths and not (all(value.isdigit() for value in lengths) and len(set(lengths)) == 1):
        return f"Content-Length {_shown(b', '.join(lengths))} (one decimal number expected)"
    return None


def _masked(line: bytes) -> bytes:
    """The line as the client may see it: the value of a credential header (Set-Cookie...) hidden."""
    name, colon, _ = line.partition(b":")
    if colon and secrets.DEFAULT.is_secret_header(name.strip().decode("latin-1")):
        return name + b": " + secrets.MASK.encode()
    return line


def _shown(raw: bytes) -> str:
    text = repr(raw.rstrip(b"\r\n"))[2:-1]
    return f"'{text[:80]}...'" if len(text) > 80 else f"'{text}'"


class Deadline:
    """The moment one upstream exchange must be over; the watchdog cuts its connection then."""

    __slots__ = ("at", "seconds", "conn", "fired", "done")

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.at = time.monotonic() + seconds
        self.conn = None
        self.fired = False
        self.done = False


class Watchdog:
    """One thread per process that shuts down the socket of every exchange past its deadline.

    A socket timeout bounds each read, not their sum: an upstream sending a byte a second never trips
    read_timeout_ms. Shutting the socket down makes the blocked read return at once, in any worker class.
    Deadlines of one length are queued in start order, so each queue is sorted and its finished head
    entries are dropped at once: a queue holds about the exchanges in flight.
    """

    def __init__(self):
        self._local = threading.local()
        self._reset()

    def _reset(self) -> None:
        """Fresh state: also in a forked child, whose copy of the lock may be held by no living thread."""
        self._queues: dict = {}  # seconds -> deque of Deadlines, oldest first
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._pid = None

    def start(self, seconds: float) -> Deadline:
        """Begin a deadline `seconds` from now; the caller must finish() it."""
        deadline = Deadline(seconds)
        with self._lock:
            if self._pid != os.getpid():
                self._pid = os.getpid()
                self._queues = {}
                threading.Thread(target=self._run, name="backworks-deadlines", daemon=True).start()
            queue = self._queues.get(seconds)
            if queue is None:
                queue = self._queues[seconds] = collections.deque()
            queue.append(deadline)
            if len(queue) == 1:
                self._wake.notify()  # a new earliest deadline, maybe
        return deadline

    def finish(self, deadline: Deadline | None) -> None:
        """The exchange is over (its connection may go back to the pool): never cut it now."""
        if deadline is None or deadline.done:
            return
        with self._lock:
            deadline.done = True
            deadline.conn = None
            queue = self._queues.get(deadline.seconds)
            while queue and queue[0].done:
                queue.popleft()

    def current(self, deadline: Deadline | None) -> None:
        """Tie the connections this thread uses from now on to `deadline` (None: to no deadline)."""
        self._local.deadline = deadline

    def attach(self, conn) -> None:
        """Called by a connection about to send: it is the one to cut when this thread's deadline passes."""
        deadline = getattr(self._local, "deadline", None)
        if deadline is None:
            return
        with self._lock:
            if deadline.fired or time.monotonic() >= deadline.at:
                deadline.fired = True
                raise TimeoutError("the upstream exchange passed its total deadline")
            deadline.conn = conn

    def _run(self) -> None:
        with self._lock:
            while True:
                now = time.monotonic()
                earliest = None
                for queue in self._queues.values():
                    while queue and (queue[0].done or queue[0].at <= now):
                        deadline = queue.popleft()
                        if not deadline.done:
                            deadline.fired = True
                            _cut(deadline.conn)
                    if queue and (earliest is None or queue[0].at < earliest):
                        earliest = queue[0].at
                self._wake.wait(None if earliest is None else earliest - now)


def _cut(conn) -> None:
    sock = getattr(conn, "sock", None)
    if sock is None:
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed: nothing is waiting on it


WATCHDOG = Watchdog()
os.register_at_fork(after_in_child=WATCHDOG._reset)


class CheckedHTTPConnection(HTTPConnection):
    """A pooled urllib3 connection with checked responses, cut by the watchdog at its deadline."""

    response_class = CheckedResponse

    def request(self, *args, **kwargs):
        """Send a request, tied to the calling thread's deadline."""
        WATCHDOG.attach(self)
        return super().request(*args, **kwargs)


class CheckedHTTPSConnection(HTTPSConnection):
    """The TLS form of CheckedHTTPConnection."""

    response_class = CheckedResponse

    def request(self, *args, **kwargs):
        """Send a request, tied to the calling thread's deadline."""
        WATCHDOG.attach(self)
        return super().request(*args, **kwargs)
