"""Proxy mode: forward to an upstream with a pooled client, streaming both bodies."""
from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING
from urllib.parse import quote

from backworks.config.fields import HTTP_METHODS, field, header_map, listof
from backworks.errors import HTTPError
from backworks.http import Reply, RequestData, is_trusted_peer, read_input
from backworks.modes.base import LoadContext, Mode
from backworks.modes.handoff import REQUEST_HEADERS, Handoff
from backworks.modes.handoff_upstreams import NginxUpstreams, target_problem

if TYPE_CHECKING:
    from backworks.upstreams import UpstreamSet

logger = logging.getLogger(__name__)

HOP_BY_HOP = frozenset(("connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
                        "trailer", "trailers", "transfer-encoding", "upgrade", "proxy-connection"))
FORWARDED = frozenset(("x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"))
NOTED = FORWARDED | {"connection", "host", "user-agent", "accept-encoding"}
CHUNK = 64 * 1024
INLINE_LIMIT = 256 * 1024  # bodies up to this size are read whole (fast path); larger ones stream
# urllib3.util.SKIP_HEADER (a test keeps them equal): urllib3 is imported only by configs that proxy.
SKIP_HEADER = "@@@SKIP_HEADER@@@"

SCHEMA = {
    "upstream": field("string", "Name of the upstream (under `upstreams:`) requests go to.", required=True),
    "strip_prefix": field("string", "Remove this prefix from the path before forwarding.", regex=r"^/.*"),
    "add_prefix": field("string", "Put this prefix before the path when forwarding.", regex=r"^/.*"),
    "set_headers": header_map("Request headers set (replaced) before forwarding.", default={}),
    "remove_headers": listof("Request headers removed before forwarding.", {"type": "string"}, default=[]),
}
PROXY_SCHEMA = {**SCHEMA, "nginx_handoff": field(
    "boolean", "Behind the shipped nginx site, let nginx send the request to the target Backworks chose and "
    "stream the answer (X-Accel-Redirect): needs http:// targets with IP addresses and no after_response "
    "plugin; a request nginx cannot send exactly as Backworks would is proxied by Backworks. nginx keeps connections "
    "to the targets alive with the upstream blocks `backworks nginx-upstreams` writes (docs/modes/proxy.md).",
    default=False)}


def upstreams_of(ctx: LoadContext) -> UpstreamSet:
    """Return the load's shared UpstreamSet (one per config load)."""
    from backworks.upstreams import UpstreamSet  # urllib3: only for configs with proxy-like endpoints

    return ctx.shared("upstreams", lambda: UpstreamSet(ctx.config.data["upstreams"]))


class ProxyMode(Mode):
    """Forward to an upstream: prefixes, header rules, X-Forwarded-*, streamed bodies, clear failures."""

    schema = PROXY_SCHEMA
    default_methods = tuple(HTTP_METHODS)
    reads_body = False
    names_upstream = True
    handoff: Handoff | None = None

    def __init__(self, spec, ctx: LoadContext, block: dict | None = None):
        super().__init__(spec, ctx)
        if block is not None:
            self.block = block
        block = self.block
        self.upstream_name = block["upstream"]
        self.upstreams = upstreams_of(ctx)
        self.client_host = self.upstreams.upstreams[self.upstream_name].client_host
        self.strip_prefix = (block.get("strip_prefix") or "").rstrip("/")
        self.add_prefix = (block.get("add_prefix") or "").rstrip("/")
        self.set_headers = [(str(k), str(v)) for k, v in (block.get("set_headers") or {}).items()]
        self.removed = HOP_BY_HOP | {h.lower() for h in block.get("remove_headers") or []} | \
            {k.lower() for k, _ in self.set_headers} | {"host", "content-length"}
        # not copied upstream: X-Forwarded-* are rebuilt, the hand-off headers are nginx's word to Backworks
        self.dropped = self.removed | FORWARDED | REQUEST_HEADERS
        server = ctx.config.server
        self.trusted = frozenset(server.trusted_proxies)
        self.max_body = server.max_body_bytes
        self.request_id_header = server.request_id_header.lower()
        if block.get("nginx_handoff"):
            self.handoff = self.nginx_handoff(server)

    def nginx_handoff(self, server) -> Handoff | None:
        """The endpoint's hand-off to nginx, or None (with the reason logged) when nginx cannot carry it."""
        upstream = self.upstreams.upstreams[self.upstream_name]
        why = next((f"target {t.name}: {problem}" for t in upstream.targets
                    if (problem := target_problem(t.url))), None)
        if why is None and server.request_id_header.lower() != "x-request-id":
            why = "server.request_id_header is not X-Request-Id (the site echoes that header)"
        if why is not None:
            logger.warning("endpoint %s: nginx_handoff is off, Backworks proxies every request: %s", self.spec.name,
                           why)
            return None
        removed = {h.lower() for h in self.block.get("remove_headers") or []}
        blocks = self.ctx.shared("nginx_upstreams", lambda: NginxUpstreams.of(self.ctx.config))
        return Handoff(upstream, self.trusted, SKIP_HEADER, {k.lower() for k, _ in self.set_headers}, removed, blocks)

    def bind_plugins(self, chain) -> None:
        """No hand-off when an after_response hook needs the upstream's answer."""
        if self.handoff is not None and chain is not None and chain.after.plugins:
            names = ", ".join(plugin.name for plugin in chain.after.plugins)
            logger.warning("endpoint %s: nginx_handoff is off, Backworks proxies every request: after_response "
                           "hooks of %s need the upstream's answer", self.spec.name, names)
            self.handoff = None

    def handle(self, request: RequestData) -> Reply:
        """Forward the request and stream the upstream's answer back (or hand the exchange to nginx)."""
        if self.handoff is not None:
            reply = self.handoff.answer(self, request)
            if reply is not None:
                return reply
        return self.forward(request, None)

    def forward(self, request: RequestData, tap) -> Reply:
        """Forward the request; `tap` (or None) sees the bytes both ways, for recording."""
        upstream = self.upstreams.get(self.upstream_name)
        path = self.upstream_path(request)
        body, replayable, length = self.request_body(request, tap)
        headers = self.request_headers(request, length)
        deadline = upstream.deadline()
        try:
            response, target = upstream.send(request.method, path, headers, body, replayable, deadline)
        except BaseException:
            upstream.finish(deadline)
            raise
        reply_headers = response_headers(response.headers)
        if tap is not None:
            tap.answered(target, response.status, reply_headers)
        length_header = response.headers.get("content-length")
        if request.method == "HEAD" or response.status in (204, 304) or \
                (length_header and length_header.isdigit() and int(length_header) <= INLINE_LIMIT):
            return Reply(response.status, reply_headers,
                         self.read_whole(request, response, upstream, target, tap, deadline))
        streamed = StreamedBody(response, upstream, target, tap, deadline)
        streamed.start()  # the first piece is read before the status goes out: a failure there is a 502/504
        return Reply(response.status, reply_headers, streamed)

    def read_whole(self, request, response, upstream, target, tap, deadline=None) -> bytes:
        """Read a small (or empty) response body at once and give the connection back."""
        try:
            data = b"" if request.method == "HEAD" else response.read(decode_content=False)
        except Exception as exc:
            upstream.finish(deadline)
            response.close()
            upstream.done(target)
            if tap is not None:
                tap.finish(error=str(exc))
            raise upstream.failed(target, exc, deadline) from None
        upstream.finish(deadline)
        response.release_conn()
        upstream.done(target)
        if tap is not None:
            tap.response_chunk(data)
            tap.finish()
        return data

    def upstream_path(self, request: RequestData) -> str:
        """Return the path and query sent upstream, byte-exact when no plugin changed them."""
        environ = request.environ
        raw = environ.get("RAW_URI") or environ.get("REQUEST_URI") or ""
        if request.path == request.received_path and raw.startswith("/"):
            path = raw.split("?", 1)[0]
        else:
            path = quote(request.path, safe="/:@!$&'()*+,;=-._~%")
        check_forwarded_path(path)  # before the prefix rules, which a '..' could otherwise step out of
        if self.strip_prefix and (path == self.strip_prefix or path.startswith(self.strip_prefix + "/")):
            path = path[len(self.strip_prefix):] or "/"
        if self.add_prefix:
            path = self.add_prefix + path
        query = request.query_string  # the raw bytes unless a plugin replaced the query
        return f"{path}?{query}" if query else path

    def request_headers(self, request: RequestData, length: int | None) -> dict:
        """Return the headers sent upstream: end-to-end ones, X-Forwarded-*, the configured rules."""
        out: dict = {}
        seen: dict = {}
        dropped = self.dropped
        for key, value in request.header_items():
            lkey = key.lower()
            if lkey in NOTED:
                seen[lkey] = value
            if lkey in dropped:
                continue
            if lkey == self.request_id_header:  # the id this request answers with (a malformed one replaced)
                value = request.request_id
            out[key] = f"{out[key]}, {value}" if key in out else value
        if "connection" in seen:
            tokens = _connection_tokens(seen["connection"])
            out = {k: v for k, v in out.items() if k.lower() not in tokens}
        environ = request.environ
        peer = environ.get("REMOTE_ADDR") or ""
        trusted = is_trusted_peer(peer, self.trusted)
        hops = [hop for hop in (trusted and seen.get("x-forwarded-for"), peer) if hop]
        out["X-Forwarded-For"] = ", ".join(hops) or request.client_ip
        out["X-Forwarded-Proto"] = (trusted and seen.get("x-forwarded-proto")) or environ["wsgi.url_scheme"]
        out["X-Forwarded-Host"] = (trusted and seen.get("x-forwarded-host")) or seen.get("host", "")
        if self.client_host and seen.get("host"):
            out["Host"] = seen["host"]
        if length is not None:
            out["Content-Length"] = str(length)
        if "user-agent" not in seen:
            out["User-Agent"] = SKIP_HEADER  # send exactly what the client sent: nothing
        if "accept-encoding" not in seen:
            out["Accept-Encoding"] = SKIP_HEADER
        out.update(self.set_headers)
        return out

    def request_body(self, request: RequestData, tap):
        """Return (body, replayable, declared length): bytes when small or already read, else a reader."""
        if request.body_loaded:
            data = request.body
            if tap is not None:
                tap.request_chunk(data)
            return (data or None), True, None
        environ = request.environ
        if "CONTENT_LENGTH" not in environ and "HTTP_TRANSFER_ENCODING" not in environ:
            return None, True, None  # no body at all (most GETs): no werkzeug request needed
        wz = request.wz
        length = wz.content_length
        chunked = bool(wz.environ.get("wsgi.input_terminated")) and length is None and \
            "chunked" in wz.environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        if length is not None and length > self.max_body:
            raise HTTPError(413, "payload_too_large", f"request body is {length} bytes; the limit is "
                            f"{self.max_body} (server.max_body_bytes)")
        if not length and not chunked:
            return None, True, (0 if length == 0 else None)
        if length is not None and length <= INLINE_LIMIT:
            data = read_input(wz.stream, length)  # a client gone mid-body: 400, not 500
            if tap is not None:
                tap.request_chunk(data)
            return data, True, None
        return BodyReader(wz.stream, length, self.max_body, tap), False, length


DOT_SEGMENT = ("the request path has a '.' or '..' segment; it is not forwarded (the upstream would resolve "
               "it, possibly outside the proxied prefix)")
_SEPARATORS = re.compile(r"%2f|%5c|\\", re.IGNORECASE)


def check_forwarded_path(path: str) -> None:
    """400 for a path with a dot segment, also one written %2E or set off by %2F, %5C or a backslash.

    The route matched the path as sent; an upstream that resolves '..' (after decoding, or reading a
    backslash as a slash) would serve another one, outside the prefix. An encoded slash alone still passes
    byte for byte (an id like group%2Fproject).
    """
    if "/." not in path and "%" not in path and "\\" not in path:
        return  # no segment starts with a dot, and nothing is encoded: the common case
    plain = _SEPARATORS.sub("/", path.replace("%2e", ".").replace("%2E", "."))
    for segment in plain.split("/"):
        if segment.split(";", 1)[0] in (".", ".."):  # "..;" is ".." to servlet containers
            raise HTTPError(400, "invalid_path", DOT_SEGMENT)


def _connection_tokens(value: str | None) -> set:
    if not value:
        return set()
    return {token.strip().lower() for token in value.split(",") if token.strip()}


def response_headers(headers) -> list:
    """Return the upstream's headers without hop-by-hop ones and X-Accel-*, repeated headers kept.

    X-Accel-* are orders to the nginx in front (an internal redirect, buffering, rate limits): an upstream
    never gives them.
    """
    removed = HOP_BY_HOP | _connection_tokens(headers.get("connection")) if "connection" in headers else HOP_BY_HOP
    return [(k, v) for k, v in headers.iteritems()
            if (name := k.lower()) not in removed and not name.startswith("x-accel-")]


class BodyReader:
    """Reads the client's body in chunks while it is sent upstream, enforcing server.max_body_bytes."""

    def __init__(self, stream, length: int | None, limit: int, tap):
        self.stream = stream
        self.length = length
        self.limit = limit
        self.tap = tap
        self.received = 0

    def __iter__(self):
        from backworks.upstreams import RequestBodyError  # urllib3: loaded with the proxy, a lookup here

        while True:
            try:
                chunk = self.stream.read(CHUNK)
            except Exception as exc:
                raise RequestBodyError(400, "incomplete_body", f"the request body could not be read to its "
                                       f"end ({type(exc).__name__})") from None
            if not chunk:
                return
            self.received += len(chunk)
            if self.received > self.limit:
                raise RequestBodyError(413, "payload_too_large", f"request body is over the limit of "
                                       f"{self.limit} bytes (server.max_body_bytes)")
            if self.tap is not None:
                self.tap.request_chunk(chunk)
            yield chunk


SPENT = "total_timeout_ms passed; the response is cut off"


class StreamedBody:
    """A response body streamed from the upstream; the connection goes back to the pool when done."""

    def __init__(self, response, upstream, target, tap, deadline=None):
        self.response = response
        self.upstream = upstream
        self.target = target
        self.tap = tap
        self.deadline = deadline
        self.chunks = response.stream(CHUNK, decode_content=False)
        self.first = b""
        self.complete = False
        self.closed = False

    def start(self) -> None:
        """Read the first piece; UpstreamFailure (502, or 504 past the deadline) when that fails."""
        try:
            self.first = next(self.chunks, b"")
        except Exception as exc:
            self._finish(exc)
            raise self.upstream.failed(self.target, exc, self.deadline) from None

    def __iter__(self):
        error = None
        try:
            if self.first:
                if self.tap is not None:
                    self.tap.response_chunk(self.first)
                yield self.first
            for chunk in self.chunks:
                if self.tap is not None:
                    self.tap.response_chunk(chunk)
                yield chunk
            self.complete = True
        except Exception as exc:
            error = exc
            spent = self.deadline is not None and self.deadline.fired
            logger.warning("upstream %s (%s) failed while streaming the response: %s", self.upstream.name,
                           self.target.name, SPENT if spent else exc)
            raise
        finally:
            self._finish(error)

    def close(self) -> None:
        """Called by the WSGI server when the client is done (or gone)."""
        self._finish(None if self.complete else "client went away before the end of the response")

    def _finish(self, error) -> None:
        if self.closed:
            return
        self.closed = True
        self.upstream.finish(self.deadline)
        if self.complete:
            self.response.release_conn()
        else:
            self.response.close()  # a half-read connection cannot be reused
        self.upstream.done(self.target)
        if self.tap is not None:
            self.tap.finish(error=str(error) if error else None)
