"""Production gunicorn settings for Backworks: `gunicorn -c config/gunicorn.conf.py wsgi:app`."""
import multiprocessing
import os

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
forwarded_allow_ips = os.environ.get("BACKWORKS_FORWARDED_ALLOW_IPS", "127.0.0.1")
limit_request_fields = 100
