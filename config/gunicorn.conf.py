"""Production gunicorn settings for Backworks: `gunicorn -c config/gunicorn.conf.py wsgi:app`."""
import multiprocessing
import os
import queue
import signal
import shutil
import tempfile
from pathlib import Path

# Workers must see PROMETHEUS_MULTIPROC_DIR before they import backworks.metrics, so it is set here,
# when the master reads this file, before anything imports prometheus_client. Every request writes to
# the files in it through mmap: keep it on tmpfs (/dev/shm here, /run/backworks under systemd).
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    _memory_fs = "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = os.path.join(_memory_fs, f"backworks-metrics-{os.getpid()}")
    os.environ["BACKWORKS_OWNS_METRICS_DIR"] = "1"

bind = os.environ.get("BACKWORKS_BIND", "127.0.0.1:8000")
# Sync workers run plugins inline with signal timers; gthread workers use sandbox children.
worker_class = os.environ.get("BACKWORKS_WORKER_CLASS", "sync")
workers = int(os.environ.get("BACKWORKS_WORKERS", multiprocessing.cpu_count() * 2 + 1))
threads = int(os.environ.get("BACKWORKS_THREADS", "4")) if worker_class == "gthread" else 1
timeout = int(os.environ.get("BACKWORKS_TIMEOUT", "30"))
graceful_timeout = int(os.environ.get("BACKWORKS_GRACEFUL_TIMEOUT", "20"))
keepalive = 5
# Backworks writes its own access line per request (logger backworks.access); gunicorn's is optional.
accesslog = os.environ.get("BACKWORKS_GUNICORN_ACCESS_LOG") or None
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms "%(a)s"'
errorlog = "-"
loglevel = os.environ.get("BACKWORKS_LOG_LEVEL", "info")
# Keep equal to the config's server.trusted_proxies: gunicorn sets wsgi.url_scheme from them.
forwarded_allow_ips = os.environ.get("BACKWORKS_FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
limit_request_fields = 100
# gunicorn >= 25 opens a control socket for `gunicornc`, by default one shared path per user: give each
# instance its own (the systemd unit does), or none.
if os.environ.get("BACKWORKS_CONTROL_SOCKET"):
    control_socket = os.environ["BACKWORKS_CONTROL_SOCKET"]
else:
    control_socket_disable = True


def on_starting(server):
    """Prepare the metrics directory and refuse to start on a broken config."""
    from backworks import lifecycle

    lifecycle.reset_metrics_dir(Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]))
    problems = lifecycle.validate()
    if problems:
        on_exit(server)
        raise SystemExit("Backworks config is broken, not starting:\n" + "\n".join(problems))


def when_ready(server):
    """From now on a HUP validates the config first and is refused while it is broken."""
    from backworks import lifecycle

    lifecycle.guard_reload(server)


def pre_fork(server, worker):
    """Remember the newest good config before each fork (the file may have changed since the last HUP)."""
    from backworks import lifecycle

    lifecycle.validate_if_changed()


def post_fork(server, worker):
    """Keep the worker's copy of the master's signal queue for post_worker_init."""
    worker.master_signals = getattr(server, "SIG_QUEUE", None)


def post_worker_init(worker):
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


def child_exit(server, worker):
    """Drop a dead worker's live gauges from the aggregated metrics."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    """Remove the metrics directory when Backworks created it."""
    if os.environ.get("BACKWORKS_OWNS_METRICS_DIR"):
        shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)
