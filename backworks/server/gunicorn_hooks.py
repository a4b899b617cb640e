"""The gunicorn server hooks of Backworks; the repository's gunicorn.conf.py binds them.

They give `gunicorn wsgi:app` its production guards: a broken config refused at start and on HUP (checked
with script code in sandbox children only), the last good config for new workers, the Prometheus
multiprocess directory, the inline backstop (watchdog and quarantine), a booting worker that keeps a
shutdown signal, and a worker that drains its buffers (captured exchanges, metrics) before it goes.
"""
from __future__ import annotations

import gc
import logging
import os
import queue
import shutil
import signal
from pathlib import Path

from backworks import backstop
from backworks.backstop import Board

DRAIN_SHARE = 0.5  # of graceful_timeout, for writing what a stopping worker still holds
_board = None  # the master's board of worker slots, inherited by each worker through fork


def on_starting(server) -> None:
    """Prepare the runtime and metrics directories and refuse to start on a broken config."""
    from backworks.server import lifecycle  # start-up cost: loads when a hook runs

    global _board
    _log_through(server)
    lifecycle.reset_metrics_dir(Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]))
    runtime = os.environ.get("BACKWORKS_RUNTIME_DIR")
    if runtime:
        Path(runtime).mkdir(parents=True, exist_ok=True)
    _board = Board()
    problems = lifecycle.validate()
    if problems:
        on_exit(server)
        raise SystemExit("Backworks config is broken, not starting:\n" + "\n".join(problems))


def _log_through(server) -> None:
    """The master's own Backworks messages (validation, watchdog) go where gunicorn's error log goes."""
    for name in ("backworks.server",):
        master_logger = logging.getLogger(name)
        master_logger.handlers = list(server.log.error_log.handlers)
        master_logger.propagate = False
        master_logger.setLevel(logging.INFO)


def when_ready(server) -> None:
    """From now on a HUP validates first; the watchdog ends workers stuck in an inline script."""
    from backworks.server import lifecycle  # start-up cost: loads when a hook runs
    from backworks.server.watchdog import Watchdog  # start-up cost: loads when a hook runs

    lifecycle.guard_reload(server)
    if _board is not None:
        server.backworks_watchdog = Watchdog(_board, lambda: _live_slots(server)).start()


def _live_slots(server) -> dict:
    return {pid: worker.backworks_slot for pid, worker in list(server.WORKERS.items())
            if getattr(worker, "backworks_slot", None) is not None}


def pre_fork(server, worker) -> None:
    """Validate the newest files again if they changed; give the new worker a free backstop slot."""
    from backworks.server import lifecycle  # start-up cost: loads when a hook runs

    lifecycle.validate_if_changed()
    share_with_workers()
    if _board is not None:
        taken = set(_live_slots(server).values())
        free = next((index for index in range(_board.slots) if index not in taken), None)
        worker.backworks_slot = free
        if free is not None:
            _board.clear(free)


def share_with_workers() -> None:
    """Load what every worker needs before fork, and keep those pages shared with the workers.

    The app's modules (Flask, the gateway, and through the validation those of the modes the config uses)
    are imported here once, so workers inherit them instead of importing them each; the worker still builds
    its own app from the config (no preload_app), so a HUP gives new workers the new config. (The validation
    imported the Backworks code into the master already: new code needs a restart, not a HUP.)

    A garbage collection writes into the header of every object it examines, so in a worker it would copy the
    pages of the objects inherited through fork(), and in the master those of the objects its workers share.
    Frozen objects are never examined: collect what was made since the last fork (old validations, say),
    then freeze the rest. Never unfreeze: the next collection would touch every page again.
    """
    from backworks import app  # noqa: F401

    gc.collect()
    gc.freeze()


def post_fork(server, worker) -> None:
    """Attach the worker to its slot; keep its copy of the master's signal queue for post_worker_init."""
    worker.master_signals = getattr(server, "SIG_QUEUE", None)
    if _board is not None and getattr(worker, "backworks_slot", None) is not None:
        backstop.attach(_board, worker.backworks_slot)


def post_worker_init(worker) -> None:
    """Stop a worker that was sent TERM, INT or QUIT while it booted.

    Until it installs its own handlers, a new worker still has the master's, which only queue the signal
    (in the worker's copy of the master's queue). Such a signal (a shutdown or reload during the boot)
    would be lost, and the master would wait graceful_timeout before killing the worker.
    """
    pending = getattr(worker, "master_signals", None)
    while pending is not None:
        try:
            sig = pending.get_nowait()
        except queue.Empty:
            break
        if sig in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
            worker.log.info("worker %s got %s while booting: stopping", worker.pid, signal.Signals(sig).name)
            worker.alive = False


def worker_exit(server, worker) -> None:
    """Write what the stopping worker still holds (captured exchanges, metrics) within its drain budget."""
    from backworks.server import draining  # start-up cost: loads when a hook runs

    budget = max(1.0, worker.cfg.graceful_timeout * DRAIN_SHARE)
    dropped = draining.drain(budget)
    if dropped:
        worker.log.error("worker %s stopped with %d captured exchange(s) not written", worker.pid, dropped)


def child_exit(server, worker) -> None:
    """Quarantine the script a dead worker was running inline; drop its live gauges from the metrics."""
    from prometheus_client import multiprocess

    index = getattr(worker, "backworks_slot", None)
    if _board is not None and index is not None:
        from backworks.server.watchdog import died_in_script  # start-up cost: loads when a hook runs

        died_in_script(_board, index, worker.pid, _live_slots(server))
    multiprocess.mark_process_dead(worker.pid)


def on_exit(server) -> None:
    """Remove the metrics and runtime directories when Backworks created them."""
    if os.environ.get("BACKWORKS_OWNS_METRICS_DIR"):
        shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)
    if os.environ.get("BACKWORKS_OWNS_RUNTIME_DIR"):
        shutil.rmtree(os.environ["BACKWORKS_RUNTIME_DIR"], ignore_errors=True)
