"""create_app(): the Flask application, the endpoint gateway in front of it, and live reload."""
from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
import weakref

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException
from werkzeug.wsgi import ClosingIterator

from backworks import backstop
from backworks.admin import init_app as init_admin
from backworks.admin.recorder import RequestRecorder
from backworks.config.checker import config_warnings
from backworks.errors import ConfigError, HTTPError
from backworks.http import error_reply, reply_from_http_error
from backworks.inbound import client_error, declared_too_large, drain_after
from backworks.inbound import request_id as take_request_id
from backworks.loaded import Runtime, load_runtime
from backworks.logtext import log_safe
from backworks.ops import exposition, health
from backworks.pids import current_pid
from backworks.server import lifecycle, watcher

logger = logging.getLogger(__name__)
access_logger = logging.getLogger("backworks.access")

RETIRE_AFTER_S = 30.0


class Backworks:
    """Holds the live runtime, swaps it on reload, and serves endpoints ahead of Flask's own routes."""

    def __init__(self, flask_app: Flask, runtime: Runtime, config_path, overrides, options: dict):
        self.flask_app = flask_app
        self.flask_wsgi = flask_app.wsgi_app
        self.runtime = runtime
        self.config_path = config_path
        self.overrides = overrides
        self.options = options
        self.last_error: str | None = None
        self.last_reload = time.time()
        self.reloads = 0
        self._reload_lock = threading.Lock()
        self._retired: list = []
        self._watch_pid: int | None = None
        self._mtimes = self._watched()
        self.recorder = RequestRecorder(runtime.config.admin.recent_requests)

    def __call__(self, environ, start_response):
        if self._watch_pid != current_pid():
            self._start_watcher()
        path = environ.get("PATH_INFO") or "/"
        runtime = self.runtime
        if path.startswith(runtime.reserved):
            return self.flask_wsgi(environ, start_response)
        started = time.perf_counter()
        request_id = take_request_id(environ, runtime.request_id_key)
        endpoint = None
        try:
            refused = declared_too_large(environ, runtime.max_body)  # before routing: no byte of it is read
            if refused is not None:
                raise refused
            reply, endpoint = runtime.dispatch(environ, request_id)
        except HTTPError as exc:
            reply = reply_from_http_error(exc, request_id if exc.status >= 500 else None)
        except ConnectionResetError:
            self.recorder.record(environ, 0, started, endpoint, request_id)
            self._log(environ, 0, started, endpoint, request_id, None)
            raise
        except Exception as exc:
            reply = self._last_resort(environ, exc, request_id)
        if reply.status == 413 and runtime.trusted_peer(environ.get("REMOTE_ADDR") or ""):
            drain_after(reply, environ)  # answered at once; the proxy in front then finishes sending
        reply.headers.append((runtime.request_id_header, request_id))
        self.recorder.record(environ, reply.status, started, endpoint, request_id)
        if runtime.server.access_log and access_logger.isEnabledFor(logging.INFO):
            self._log(environ, reply.status, started, endpoint, request_id, reply.meta)
        body = reply(environ, start_response)
        sandbox = runtime.inline_sandbox
        if sandbox is not None and sandbox.has_garbage():
            # A script that failed left its objects (a memory bomb's, say): free them once the response
            # is sent, on no request's clock. Otherwise the next phase in this worker would.
            return ClosingIterator(body, sandbox.collect)
        return body

    def _last_resort(self, environ, exc: Exception, request_id: str):
        """A 4xx when the request's own content caused `exc`; else a 500, logged with its traceback."""
        refused = client_error(exc)
        if refused is not None:
            return reply_from_http_error(refused)
        logger.error("request %s %s failed (request id %s)", log_safe(environ.get("REQUEST_METHOD")),
                     log_safe(environ.get("PATH_INFO") or "/"), request_id, exc_info=exc)
        return error_reply(500, "internal_error", "the server failed to answer this request",
                           request_id=request_id)

    def _log(self, environ, status, started, endpoint, request_id, meta) -> None:
        duration_ms = (time.perf_counter() - started) * 1000
        name = endpoint.spec.name if endpoint else "-"
        mode = endpoint.spec.mode if endpoint else "-"
        # Clients choose the path and method: escape what could end the line and forge another one.
        path = log_safe(environ.get("PATH_INFO") or "/")
        method = log_safe(environ.get("REQUEST_METHOD"))
        if meta and "plugins" in meta:  # (plugin, outcome) pairs, formatted only when logged
            from backworks.plugins.chain import format_notes  # loaded with the plugins (the sandbox is heavy)

            meta = {**meta, "plugins": format_notes(meta["plugins"])}
        extra = "".join(f" {k}={log_safe(v)}" for k, v in meta.items()) if meta else ""
        # A record built directly skips logging's caller lookup, a third of the cost of .info().
        record = logging.LogRecord("backworks.access", logging.INFO, __file__, 0,
                                   "%s %s %s %.1fms endpoint=%s mode=%s id=%s%s",
                                   (method, path, status or "reset", duration_ms, name, mode, request_id, extra),
                                   None)
        if self.runtime.server.log_json:
            record.http = {"method": method, "path": path, "status": status, "endpoint": name, "mode": mode,
                           "duration_ms": round(duration_ms, 2), "request_id": request_id, **(meta or {})}
        access_logger.handle(record)

    def reload(self, reason: str = "requested") -> bool:
        """Load the config again; keep serving the old one if the new one is broken."""
        with self._reload_lock:
            try:
                new = load_runtime(self.config_path, self.overrides, self.options)
            except ConfigError as exc:
                self.last_error = str(exc)
                logger.error("reload (%s) refused, still serving the previous config:\n%s", reason, exc)
                return False
            except Exception as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                logger.exception("reload (%s) failed, still serving the previous config", reason)
                return False
            old, self.runtime = self.runtime, new
            self._mtimes = self._watched()
            self.last_error = None
            self.last_reload = time.time()
            self.reloads += 1
            self._retired.append((time.monotonic(), old))
            self.recorder.resize(new.config.admin.recent_requests)
            logger.info("config reloaded (%s): %d endpoints", reason, len(new.endpoints))
            return True

    def check_files(self) -> bool:
        """Reload when a watched file changed since the last load; return True when one did."""
        current = self._watched()
        if current == self._mtimes:
            return False
        self._mtimes = current
        self.reload("files changed")
        return True

    def _watched(self) -> dict:
        """watcher.watched_mtimes() of the live runtime, and the quarantine file: a quarantined script reloads."""
        stats = watcher.watched_mtimes(self.runtime)
        directory = backstop.runtime_dir()
        if directory is not None:
            stats.update(watcher.file_stats([str(directory / backstop.QUARANTINE_FILE)]))
        return stats

    def close_retired(self, now: float | None = None) -> None:
        """Close runtimes replaced long enough ago that no request still uses them."""
        now = time.monotonic() if now is None else now
        keep = []
        for retired_at, runtime in self._retired:
            if now - retired_at >= RETIRE_AFTER_S:
                runtime.close()
            else:
                keep.append((retired_at, runtime))
        self._retired = keep

    def _start_watcher(self) -> None:
        with self._reload_lock:
            if self._watch_pid == os.getpid():
                return
            self._watch_pid = os.getpid()
        if not self.runtime.server.watch:
            return
        thread = threading.Thread(target=watcher.watch, args=(weakref.ref(self),), name="backworks-watcher",
                                  daemon=True)
        thread.start()



class JsonFormatter(logging.Formatter):
    """Format a log record as one JSON object."""

    def format(self, record: logging.LogRecord) -> str:
        payload = {"time": self.formatTime(record), "level": record.levelname, "logger": record.name,
                   "message": record.getMessage()}
        if hasattr(record, "http"):
            payload.update(record.http)
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)


def configure_logging(as_json: bool) -> None:
    """Give the backworks loggers a stderr handler unless the host application configured logging."""
    root_logger = logging.getLogger("backworks")
    if root_logger.handlers or logging.getLogger().handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if as_json else
                         logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root_logger.addHandler(handler)
    root_logger.setLevel(logging.INFO)


def create_app(config_path=None, overrides: dict | None = None, options: dict | None = None) -> Flask:
    """Build the Backworks Flask app for a config file (BACKWORKS_CONFIG or config/backworks.yaml)."""
    options = dict(options or {})
    runtime, boot_error = lifecycle.load_or_fallback(config_path, overrides, options)
    configure_logging(runtime.server.log_json)
    app = Flask("backworks")
    app.json.sort_keys = False
    backworks = Backworks(app, runtime, config_path, overrides, options)
    backworks.last_error = boot_error
    app.extensions["backworks"] = backworks
    register_ops_routes(app, backworks)
    app.wsgi_app = backworks
    logger.info("loaded %s: %d endpoints", runtime.config.path, len(runtime.endpoints))
    for warning in config_warnings(runtime.config):  # what `backworks check` warns about, said at start too
        logger.warning("%s", warning)
    return app


def register_ops_routes(app: Flask, backworks: Backworks) -> None:
    """Health routes and JSON error pages for Flask's own routes; the admin blueprint when present."""

    @app.get("/healthz")
    def healthz():
        return jsonify(status="ok", pid=os.getpid())

    @app.get("/readyz")
    def readyz():
        report, ready = health.public_readiness(backworks)
        return jsonify(report), 200 if ready else 503

    @app.get("/metrics")
    def metrics():
        payload, content_type = exposition.metrics_payload(request.headers.get("Accept"))
        return payload, 200, {"Content-Type": content_type}

    init_admin(app, backworks)

    for status, code in ((404, "not_found"), (405, "method_not_allowed"), (500, "internal_error")):
        app.register_error_handler(status, _json_error(status, code))
    app.register_error_handler(Exception, _flask_last_resort)


def _flask_last_resort(exc: Exception):
    """Any other failure of a Flask route as JSON: 4xx for the request's fault (a bad Host), else 500."""
    refused = client_error(exc)
    if refused is None:
        if isinstance(exc, HTTPException):  # a 5xx werkzeug raised on purpose: its own status, no traceback
            reply = error_reply(exc.code or 500, "internal_error", "the server failed to answer")
            return reply.body_bytes(), reply.status, dict(reply.headers)
        logger.error("request %s %s failed", log_safe(request.method), log_safe(request.path), exc_info=exc)
        refused = HTTPError(500, "internal_error", "the server failed to answer")
    reply = reply_from_http_error(refused)
    return reply.body_bytes(), reply.status, dict(reply.headers)


def _json_error(status: int, code: str):
    def handler(exc):
        message = getattr(exc, "description", None) or code.replace("_", " ")
        reply = error_reply(status, code, message if status != 500 else "the server failed to answer")
        return reply.body_bytes(), status, dict(reply.headers)

    return handler
