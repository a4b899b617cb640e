"""Which sandbox isolation plugins get in this process: inline only where requests run on the main thread."""
from __future__ import annotations

import logging
import os
import sys
import threading

from backworks import backstop
from backworks.sandbox import choose_isolation

logger = logging.getLogger(__name__)

# gunicorn worker classes whose requests do not run on the worker's main thread (signals cannot time them)
THREADED_WORKERS = ("gunicorn.workers.gthread", "gunicorn.workers.ggevent", "gunicorn.workers.geventlet",
                    "gunicorn.workers.gtornado")
_choices: dict = {}  # (pid, requested) -> choice made on the main thread


def on_main_thread() -> bool:
    """True in the thread that runs requests under sync workers and the dev server."""
    return threading.current_thread() is threading.main_thread()


def requests_off_main_thread() -> bool:
    """True inside a gunicorn worker whose class serves requests from threads or greenlets."""
    return any(name in sys.modules for name in THREADED_WORKERS)


def pick_isolation(requested: str) -> str:
    """Resolve auto/inline/process for the threads that will run this process's requests.

    A reload runs in the file watcher's thread, but requests still run on the main thread: it reuses
    the choice the main thread made, so a sync worker keeps its inline fast path after a reload.
    """
    if requested == "process":
        return "process"
    if requests_off_main_thread():
        if requested == "inline":
            logger.warning("isolation: inline is not possible under a threaded worker; using process isolation")
        return "process"
    key = (os.getpid(), requested)
    if not on_main_thread() and key in _choices:
        return _choices[key]
    choice = choose_isolation(requested)
    if on_main_thread():
        _choices[key] = choice
    return choice


def isolation_for(requested: str, digest: str, options: dict) -> str:
    """The isolation a script gets here: process for a check (no script code runs in the checking process)
    and for a script quarantined after a worker died inside it; else what pick_isolation() says."""
    if options.get("check_only"):
        return "process"
    if backstop.is_quarantined(digest):
        logger.warning("script %s is quarantined (a worker died inside it): process isolation until its file "
                       "changes", backstop.entries().get(backstop.digest_key(digest), {}).get("script", digest))
        return "process"
    return pick_isolation(requested)
