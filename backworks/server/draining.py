"""What a process must write before it exits: each registered buffer drains within a shared deadline.

A gunicorn worker that stops (TERM, INT, QUIT, a HUP's replacement, max_requests) calls drain() from its
worker_exit hook, on a budget that is part of graceful_timeout; other processes call it at exit. A buffer
that cannot be written in time counts and logs what it drops: nothing is lost silently.
"""
from __future__ import annotations

import atexit
import logging
import time
import weakref

from backworks.metrics import TALLY

logger = logging.getLogger(__name__)

_buffers: weakref.WeakSet = weakref.WeakSet()  # objects with drain(timeout_s) -> number dropped


def register(buffer) -> None:
    """Drain `buffer` (an object with a drain(timeout_s) method) before this process exits."""
    _buffers.add(buffer)


def drain(timeout_s: float = 10.0) -> int:
    """Drain every registered buffer within `timeout_s` in all; return how many items were dropped."""
    deadline = time.monotonic() + timeout_s
    dropped = 0
    for buffer in list(_buffers):
        try:
            dropped += buffer.drain(max(0.0, deadline - time.monotonic()))
        except Exception:
            logger.exception("draining %r before exit failed", buffer)
    TALLY.flush()
    return dropped


atexit.register(drain)
