"""Per-request bookkeeping on the hot path: Prometheus counters and a bounded ring of recent requests.

Recording stores raw values only (a tuple per request); redaction and formatting happen when the
admin API reads the ring, so serving a request pays for a deque append and two metric updates.
"""
from __future__ import annotations

import logging
import time
from collections import deque

from backworks.http import environ_http_items
from backworks.metrics import REQUEST_LATENCY, REQUESTS, TALLY

logger = logging.getLogger(__name__)

# Characters of each header value a recorded request keeps: the ring holds admin.recent_requests of them per
# worker, and a client sending 100 headers of 8 KB each would otherwise make each entry weigh 800 KB.
MAX_HEADER_CHARS = 256

class RequestRecorder:
    """Counts requests into Prometheus and keeps the last `size` of them for the admin API (per worker)."""

    def __init__(self, size: int):
        self.recent: deque = deque(maxlen=size)
        self._children: dict = {}

    def resize(self, size: int) -> None:
        """Keep the most recent `size` requests from now on."""
        if size != self.recent.maxlen:
            self.recent = deque(self.recent, maxlen=size)

    def record(self, environ, status: int, started: float, endpoint, request_id: str) -> None:
        """Count one answered request and remember it."""
        duration = time.perf_counter() - started
        if endpoint is None:
            name = mode = "-"
        else:
            name, mode = endpoint.spec.name, endpoint.spec.mode
        key = (name, mode, status)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = (REQUESTS.labels(name, mode, str(status or "reset")),
                                               REQUEST_LATENCY.labels(name, mode))
        TALLY.count_and_time(children[0], children[1], duration)
        if self.recent.maxlen:
            self.recent.append((time.time(), environ.get("REQUEST_METHOD"), environ.get("PATH_INFO") or "/",
                                environ.get("QUERY_STRING", ""), status, duration, name, mode, request_id,
                                environ.get("REMOTE_ADDR", ""), environ.get("wsgi.url_scheme", "http"),
                                environ_http_items(environ, MAX_HEADER_CHARS)))

    def snapshot(self, runtime, limit: int | None = None) -> list[dict]:
        """Return recent requests, newest first, with secrets redacted."""
        rows = list(self.recent)[::-1][:limit]
        return [describe(row, runtime) for row in rows]


def describe(row: tuple, runtime) -> dict:
    """Turn one recorded tuple into the admin API's plain dict, secrets redacted by the config's policy."""
    ts, method, path, query, status, duration, name, mode, request_id, peer, scheme, raw_headers = row
    environ = {"REMOTE_ADDR": peer, "wsgi.url_scheme": scheme, **dict(raw_headers)}
    redaction = runtime.config.secrets.redaction()
    headers = dict(redaction.headers((key[5:].lower().replace("_", "-"), value) for key, value in raw_headers))
    query = redaction.query(query)
    return {
        "time": ts,
        "method": method,
        "path": redaction.text(path),
        "query": redaction.text(query),
        "status": status or "reset",
        "duration_ms": round(duration * 1000, 2),
        "endpoint": name,
        "mode": mode,
        "request_id": request_id,
        "client_ip": runtime.client_ip(environ),
        "scheme": runtime.scheme(environ),
        "headers": {key: redaction.text(value) for key, value in headers.items()},
    }
