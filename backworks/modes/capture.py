"""Capture mode: proxy, and record every exchange (redacted, capped) into the capture store."""
from __future__ import annotations

import fnmatch
import hashlib
import logging
import time
from typing import TYPE_CHECKING
from urllib.parse import quote

from backworks.capture.redact import Redactor
from backworks.errors import ConfigError
from backworks.http import Reply, RequestData
from backworks.logtext import log_safe
from backworks.modes.base import LoadContext
from backworks.modes.proxy import SCHEMA, ProxyMode

if TYPE_CHECKING:
    from backworks.capture.store import CaptureStore

logger = logging.getLogger(__name__)


def store_of(ctx: LoadContext, where: str) -> CaptureStore:
    """Return the load's shared capture store; a clear config error when `capture.store` is not usable."""
    from backworks.capture.store import CaptureStore  # SQLAlchemy: only for configs that capture or replay

    store = ctx.config.data["capture"]["store"]
    if not store.startswith(("sqlite://", "postgresql://", "postgres://", "postgresql+")):
        raise ConfigError([f"{ctx.config.where('capture', 'store')}: capture.store: unsupported store "
                           f"{store!r} (use sqlite:///file.db or postgresql://user@host/db; needed by {where})"])
    return ctx.shared("capture_store", lambda: CaptureStore.from_config(ctx.config))


class RecordFilter:
    """Which exchanges get recorded: capture.include / exclude path globs and capture.methods."""

    def __init__(self, capture: dict):
        self.include = list(capture["include"])
        self.exclude = list(capture["exclude"])
        self.methods = frozenset(capture["methods"])

    def wants(self, method: str, path: str) -> bool:
        """Return True when an exchange with this method and path is recorded."""
        if self.methods and method not in self.methods:
            return False
        if self.include and not any(fnmatch.fnmatchcase(path, p) for p in self.include):
            return False
        return not any(fnmatch.fnmatchcase(path, p) for p in self.exclude)


class Exchange:
    """Collects one exchange while it streams (bodies kept up to the cap), then queues it."""

    def __init__(self, mode: "CaptureMode", request: RequestData):
        self.mode = mode
        self.request = request
        self.started = time.perf_counter()
        self.recorded_at = time.time()
        self.cap = mode.redactor.max_body
        self.request_parts: list = []
        self.request_size = 0
        self.request_hash = hashlib.sha256()
        self.response_parts: list = []
        self.response_size = 0
        self.status = 0
        self.response_headers: list = []
        self.target = ""

    def request_chunk(self, data: bytes) -> None:
        """See a piece of the request body."""
        self.request_hash.update(data)
        if self.request_size < self.cap:
            self.request_parts.append(data)
        self.request_size += len(data)

    def answered(self, target, status: int, headers: list) -> None:
        """See the upstream's status line and headers."""
        self.target = target.name
        self.status = status
        self.response_headers = list(headers)  # the gateway appends its own headers to the reply's list

    def response_chunk(self, data: bytes) -> None:
        """See a piece of the response body."""
        if self.response_size < self.cap:
            self.response_parts.append(data)
        self.response_size += len(data)

    def finish(self, error: str | None = None) -> None:
        """Queue the exchange for the store (a broken exchange is still recorded, with what arrived)."""
        if error:
            logger.info("capture of %s %s recorded incomplete: %s", log_safe(self.request.method),
                        log_safe(self.request.path), error)
        request = self.request
        environ = request.environ
        query = request.query_string
        headers = list(request.header_items())
        host = next((value for name, value in headers if name.lower() == "host"), "")
        row = {
            "recorded_at": self.recorded_at,
            "endpoint": request.endpoint,
            "method": request.method,
            "url": f"{environ['wsgi.url_scheme']}://{host}{quote(request.path)}"
                   + (f"?{query}" if query else ""),
            "path": request.path,
            "query": query,
            "request_headers": headers,
            "request_body": b"".join(self.request_parts),
            "request_body_size": self.request_size,
            "request_body_hash": self.request_hash.hexdigest(),
            "status": self.status,
            "response_headers": self.response_headers,
            "response_body": b"".join(self.response_parts),
            "response_body_size": self.response_size,
            "duration_ms": round((time.perf_counter() - self.started) * 1000, 3),
            "upstream": f"{self.mode.upstream_name} {self.target}",
        }
        try:
            self.mode.store.record(row, self.mode.redactor.prepare)
        except Exception:
            logger.exception("capture of %s %s could not be queued", log_safe(request.method),
                             log_safe(request.path))


class CaptureMode(ProxyMode):
    """Proxy to an upstream and record each exchange (the `capture:` block takes the proxy fields)."""

    schema = SCHEMA  # without nginx_handoff: the exchange is recorded from the bytes Backworks relays

    def __init__(self, spec, ctx: LoadContext, block: dict | None = None):
        super().__init__(spec, ctx, block)
        capture = ctx.config.data["capture"]
        self.store = store_of(ctx, f"endpoint '{spec.name}'")
        self.redactor = ctx.shared("capture_redactor", lambda: Redactor(capture, ctx.config.secrets))
        self.filter = ctx.shared("capture_filter", lambda: RecordFilter(capture))

    def handle(self, request: RequestData) -> Reply:
        """Forward the request; record the exchange when the capture filters want it."""
        if not self.filter.wants(request.method, request.path):
            return self.forward(request, None)
        return self.forward(request, Exchange(self, request))
