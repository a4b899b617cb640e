"""Gunicorn settings for Backworks. gunicorn reads this file by itself when started in this folder:

    gunicorn wsgi:app

Every production guard comes from here (see backworks/server/gunicorn_hooks.py): a broken config is refused
at start and on HUP, new workers get the last good config, metrics are aggregated over workers, an inline
script that outlives its budget ends its worker and is quarantined to process isolation, and a stopping
worker writes what it captured. Settings read BACKWORKS_* environment variables; command-line flags win.
"""
import multiprocessing
import os
import tempfile

# Workers must see these before anything imports prometheus_client, so they are set when the master reads
# this file. Every request writes to the metrics files through mmap: keep them on tmpfs (/dev/shm here,
# /run/backworks under systemd).
_memory_fs = "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = os.path.join(_memory_fs, f"backworks-metrics-{os.getpid()}")
    os.environ["BACKWORKS_OWNS_METRICS_DIR"] = "1"
if not os.environ.get("BACKWORKS_RUNTIME_DIR"):  # the quarantine of scripts workers died in
    os.environ["BACKWORKS_RUNTIME_DIR"] = os.path.join(_memory_fs, f"backworks-run-{os.getpid()}")
    os.environ["BACKWORKS_OWNS_RUNTIME_DIR"] = "1"

from backworks.server.gunicorn_hooks import (  # noqa: E402,F401  (gunicorn reads these names)
    child_exit,
    on_exit,
    on_starting,
    post_fork,
    post_worker_init,
    pre_fork,
    when_ready,
    worker_exit,
)

# Loopback unless told otherwise: Backworks belongs behind nginx (config/nginx/backworks.conf).
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
