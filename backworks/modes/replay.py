"""Replay mode: answer from the capture store, matching method, path, query and body."""
from __future__ import annotations

import hashlib
import logging

from backworks.config.fields import HTTP_METHODS, field, listof
from backworks.errors import HTTPError
from backworks.http import Reply, RequestData
from backworks.modes.base import LoadContext, Mode
from backworks.modes.capture import store_of
from backworks.modes.proxy import HOP_BY_HOP
from backworks.secrets import REDACTED, hide_query

logger = logging.getLogger(__name__)

MATCH_FIELDS = ["method", "path", "query", "body"]
DROPPED_HEADERS = HOP_BY_HOP | {"content-length", "date"}
REPLAY_HEADER = "X-Backworks-Replay"

SCHEMA = {
    "match": listof("What a recorded exchange must share with the request.",
                    {"type": "string", "allowed": MATCH_FIELDS}, default=list(MATCH_FIELDS), minlength=1),
    "endpoint": field("string", "Only replay exchanges recorded by this endpoint (default: any)."),
    "strip_prefix": field("string", "Remove this prefix from the request path before looking it up "
                          "(replay at /copy/... what was recorded at /rec/...: strip /copy, add /rec).",
                          regex=r"^/.*"),
    "add_prefix": field("string", "Put this prefix before the request path (after strip_prefix) before "
                        "looking it up.", regex=r"^/.*"),
}


class ReplayMode(Mode):
    """Answer from recorded exchanges (newest match wins); JSON 404 naming what was looked for."""

    schema = SCHEMA
    default_methods = tuple(HTTP_METHODS)
    block_required = False

    def __init__(self, spec, ctx: LoadContext, block: dict | None = None):
        super().__init__(spec, ctx)
        if block is not None:
            self.block = block
        self.match = frozenset(self.block.get("match") or MATCH_FIELDS)
        self.only_endpoint = self.block.get("endpoint")
        self.reads_body = "body" in self.match
        self.store = store_of(ctx, f"endpoint '{spec.name}'")
        self.strip_prefix = (self.block.get("strip_prefix") or "").rstrip("/")
        self.add_prefix = (self.block.get("add_prefix") or "").rstrip("/")

    def recorded_path(self, path: str) -> str:
        """The path the exchange was recorded at: this request's path with the prefixes mapped."""
        if self.strip_prefix and (path == self.strip_prefix or path.startswith(self.strip_prefix + "/")):
            path = path[len(self.strip_prefix):] or "/"
        return self.add_prefix + path if self.add_prefix else path

    def handle(self, request: RequestData) -> Reply:
        """Answer with the newest recorded exchange that matches, else 404."""
        from backworks.capture.redact import headers_from_json  # store_of() loaded it: a lookup

        row = self.find(request)
        if row is None:
            raise self.not_found(request)
        headers = [(k, v) for k, v in headers_from_json(row["response_headers"])
                   if k.lower() not in DROPPED_HEADERS]
        headers.append((REPLAY_HEADER, str(row["id"])))
        return Reply(row["status"], headers, bytes(row["response_body"]), meta={"replayed": row["id"]})

    def find(self, request: RequestData) -> dict | None:
        """Return the newest stored exchange matching the request, or None."""
        rows = self.store.candidates(request.method if "method" in self.match else None,
                                     self.recorded_path(request.path) if "path" in self.match else None)
        wanted_query = self.query_key(request.query_string) if "query" in self.match else None
        wanted_body = body_hash(request.body) if "body" in self.match else None
        for row in rows:
            if self.only_endpoint and row["endpoint"] != self.only_endpoint:
                continue
            if wanted_query is not None and self.query_key(row["query"]) != wanted_query:
                continue
            if wanted_body is not None and row["request_body_hash"] != wanted_body:
                continue
            return row
        return None

    def query_key(self, query: str) -> tuple:
        """Return a query in matching form, secret parameters redacted (capture stored them so)."""
        from backworks.capture.store import query_key  # SQLAlchemy: store_of() loaded it, a lookup here

        return query_key(hide_query(query, REDACTED, self.ctx.config.secrets))

    def not_found(self, request: RequestData) -> HTTPError:
        """The 404 that says what was looked for."""
        query = hide_query(request.query_string, REDACTED, self.ctx.config.secrets)
        path = self.recorded_path(request.path)
        looked = {"method": request.method, "path": path, "query": query}
        if "body" in self.match:
            looked["body_sha256"] = body_hash(request.body)
        shown = f"{request.method} {path}" + (f"?{query}" if query else "")
        fields = ", ".join(f for f in MATCH_FIELDS if f in self.match)
        return HTTPError(404, "no_recorded_exchange", f"no recorded exchange matches {shown} "
                         f"(matching on {fields})", details=looked)


def body_hash(body: bytes) -> str:
    """Return the SHA-256 of a request body, as stored by capture."""
    return hashlib.sha256(body or b"").hexdigest()
